"""The API key's rate limit on ingest: a sliding-window counter in Redis, one round trip per request.

Flask-Limiter still guards the log-in and sign-up forms. On ingest, every event's path, it cost a quarter of
an ingest's CPU: its per-request resolution of the limits, and two Redis round trips (one to count, one to
read the window back for the X-RateLimit headers). This counts with the algorithm Flask-Limiter used here
(the `limits` library's sliding-window counter, whose storage layout and arithmetic the script keeps) and
returns the headers' numbers from the same script. Like the limiter it replaces, it fails open: with Redis
down, requests are let through uncounted, because refusing events would lose them.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

from flask import current_app
from limits import RateLimitItem, parse
from redis.commands.core import Script
from redis.exceptions import RedisError

from ..fail_open import FailOpen
from ..queue import redis_connection

_KEY = "agenthooks:ratelimit:{name}:{amount}/{expiry}:{window}"

# KEYS: the previous and the current window's counts. ARGV: the limit, the window in milliseconds.
# A window that has run its course becomes the previous one; the previous one's count weighs as much as
# it still overlaps the sliding window (its TTL). One hit is counted if it fits. Returns whether it did,
# and the counts and TTLs after it (for the headers).
_HIT = """
local limit, expiry = tonumber(ARGV[1]), tonumber(ARGV[2])
local current_ttl = redis.call('pttl', KEYS[2])
if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end
local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = math.max(0, redis.call('pttl', KEYS[1]))
local current_count = tonumber(redis.call('get', KEYS[2])) or 0
local allowed = math.floor(previous_count * previous_ttl / expiry) + current_count + 1 <= limit
if allowed then
    if redis.call('exists', KEYS[2]) == 1 then
        current_count = redis.call('incr', KEYS[2])
    else
        redis.call('set', KEYS[2], 1, 'PX', expiry * 2)
        current_count = 1
    end
end
current_ttl = math.max(0, redis.call('pttl', KEYS[2]))
return {allowed and 1 or 0, previous_count, previous_ttl, current_count, current_ttl}
"""


@dataclass(frozen=True)
class Window:
    """Where a request left its key's limit: what the X-RateLimit headers and Retry-After say."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # Unix time when the count next drops

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(int(self.reset_at))}

    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


@functools.lru_cache(maxsize=16)
def parse_limit(text: str) -> RateLimitItem:
    """``"50000 per minute"`` and the like, as Flask-Limiter reads them."""
    return parse(text)


@dataclass
class _State:
    """The app's script (registering it computes its hash; Redis sees it at the first call) and its guard."""

    script: Script
    redis: FailOpen


def _state() -> _State:
    state = current_app.extensions.get("agenthooks_ratelimit")
    if state is None:
        state = _State(redis_connection().register_script(_HIT), FailOpen("the ingest rate limit"))
        current_app.extensions["agenthooks_ratelimit"] = state
    return state


def hit(name: str, limit_text: str) -> Window | None:
    """Count one request against the limit ``limit_text`` of ``name`` (a route and an API key).

    Returns where that left the limit (``allowed`` False: over it, nothing counted), or None when Redis
    could not be asked (the request goes through uncounted)."""
    state = _state()
    if state.redis.standing_aside():
        return None
    item = parse_limit(limit_text)
    expiry = item.get_expiry()
    keys = [_KEY.format(name=name, amount=item.amount, expiry=expiry, window=window)
            for window in ("previous", "current")]
    try:
        allowed, previous_count, previous_ttl, current_count, current_ttl = state.script(
            keys, [item.amount, expiry * 1000])
    except RedisError as exc:
        state.redis.failed(exc)
        return None
    return _window(bool(allowed), item.amount, expiry, previous_count, previous_ttl / 1000,
                   current_count, current_ttl / 1000)


def _window(allowed: bool, limit: int, expiry: int, previous_count: int, previous_ttl: float,
            current_count: int, current_ttl: float) -> Window:
    """The window's state as the ``limits`` library reports it (SlidingWindowCounterRateLimiter)."""
    weighted = previous_count * previous_ttl / expiry + current_count
    remaining = max(0, limit - math.floor(weighted))
    now = time.time()
    # The count next drops when one of the previous window's hits slides out (they are taken as spread
    # evenly over it), or when the current window ends.
    previous_reset = previous_ttl % (expiry / previous_count) if previous_count else math.inf
    current_reset = current_ttl % expiry if current_count else math.inf
    soonest = min(previous_reset, current_reset)
    return Window(allowed, limit, remaining, now + (soonest if soonest != math.inf else 0))
