"""Per-endpoint pacing: deliveries to an endpoint with a ``rate_limit`` go out one every
1/rate seconds. Slots are reserved in Redis (shared by every worker process, like GCRA with no
burst): a drain reserves the next free ones for all of a batch's deliveries to the endpoint at
once, a retry's or a resend's job its own. A delivery waits for its slot in a sorted set of its
own instead of holding a worker (a drain holds every paced one; a job, one whose slot is later),
and the pacer thread of each worker releases it onto the queue at its slot, to the tenth of a
second (RQ's scheduler keeps whole seconds only)."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from typing import NamedTuple

from redis.exceptions import RedisError

from webapp.queue import Next, enqueue_deliveries, redis_connection

log = logging.getLogger(__name__)
HELD = "agenthooks:paced"
TICK_SECONDS = 0.05

# KEYS[1]: the endpoint's next free slot (a Unix time). ARGV: now, seconds between deliveries, how many slots.
# Returns the first of the slots these deliveries get (the rest follow it an interval apart), and moves the
# next free one on past them.
_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local free = slot + interval * tonumber(ARGV[3] or '1')
redis.call('SET', KEYS[1], tostring(free), 'PX', math.ceil((free - now) * 1000) + 60000)
return tostring(slot)
"""
# KEYS[1]: when the endpoint's last delivery went (a Unix time). ARGV: now, seconds between deliveries.
# Returns when this one may go: at once, or an interval after the last one.
_SPACE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local go = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0') + interval)
redis.call('SET', KEYS[1], tostring(go), 'PX', math.ceil((go - now + interval) * 1000) + 1000)
return tostring(go)
"""
# The longest a worker waits to space two deliveries (see space()).
MAX_SPACING_SECONDS = 1.0
# Take the held deliveries whose slot has come, atomically, so two pacers never release one twice.
_TAKE_DUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
if #items > 0 then redis.call('ZREM', KEYS[1], unpack(items)) end
return items
"""


def reserve_slot(endpoint_id: str, rate_limit: float | None) -> float | None:
    """The time (Unix) a delivery to the endpoint may go, held for it; None when that is now (always when
    ``rate_limit``, its deliveries a second, is None)."""
    if not rate_limit:
        return None
    slot = reserve_slots(endpoint_id, rate_limit, 1)[0]
    return slot if slot - time.time() > 0.01 else None


def reserve_slots(endpoint_id: str, rate_limit: float, count: int) -> list[float]:
    """The endpoint's next ``count`` free slots (Unix times, the first of them now at the earliest), one
    round trip for them all."""
    interval = 1 / rate_limit
    reserve = redis_connection().register_script(_RESERVE)
    first = float(reserve(keys=[f"agenthooks:pacing:{endpoint_id}"], args=[repr(time.time()), repr(interval), count]))
    return [first + interval * n for n in range(count)]


def space(endpoint_id: str, rate_limit: float | None) -> None:
    """Wait, right before a paced delivery is sent, until an interval has passed since the endpoint's
    last one. A slot says when a delivery may go, but the claim's commit between the slot and the send
    can take a while (a busy SQLite writer): a late delivery would then go out just before the next
    one, on time, in a burst. This keeps them an interval apart, waiting at most MAX_SPACING_SECONDS
    (past that, only after a pile-up, it sends rather than hold the worker)."""
    if not rate_limit:
        return
    now = time.time()
    space_out = redis_connection().register_script(_SPACE)
    go = float(space_out(keys=[f"agenthooks:pacing-last:{endpoint_id}"], args=[repr(now), repr(1 / rate_limit)]))
    time.sleep(min(max(go - now, 0.0), MAX_SPACING_SECONDS))


class Held(NamedTuple):
    """A delivery held aside until its slot (a Unix time), with the id of the job that will send it and the
    lease (an ISO time) of the claim it keeps meanwhile."""

    delivery: Next
    trigger: str
    slot: float
    job_id: str
    lease_until: str


def hold(tenant_id: str, held: list[Held]) -> bool:
    """Keep deliveries aside until their slots, in one round trip; returns False if Redis refused (the sweep
    then finds them, once their claims have run out)."""
    members = {json.dumps([tenant_id, *h.delivery, h.trigger, h.job_id, h.lease_until]): h.slot for h in held}
    try:
        redis_connection().zadd(HELD, members)
        return True
    except RedisError as exc:
        log.warning("could not hold %d paced deliveries: %s", len(held), exc)
        return False


def release_due() -> int:
    """Queue every held delivery whose slot has come. Returns how many."""
    take = redis_connection().register_script(_TAKE_DUE)
    items = take(keys=[HELD], args=[repr(time.time())])
    by_tenant = defaultdict(list)
    for raw in items:
        # (A delivery held before claims were kept has no lease: its job claims it anew.)
        tenant_id, delivery_id, attempt_count, manual_pending, trigger, job_id, *lease = json.loads(raw)
        by_tenant[(tenant_id, trigger)].append(
            (Next(delivery_id, attempt_count, manual_pending), job_id, lease[0] if lease else True))
    for (tenant_id, trigger), entries in by_tenant.items():
        deliveries, job_ids, held = zip(*entries)
        enqueue_deliveries(tenant_id, list(deliveries), trigger, job_ids=list(job_ids), held=list(held))
    return len(items)


def run_forever(app, stop: threading.Event) -> None:
    """The pacer thread: release held deliveries as their slots come."""
    while not stop.wait(TICK_SECONDS):
        try:
            with app.app_context():
                release_due()
        except RedisError as exc:
            log.warning("pacer paused, Redis unavailable: %s", exc)
            stop.wait(1)
        except Exception:  # keep the thread alive whatever one pass hit; logged with its traceback
            log.exception("pacer failed")
            stop.wait(1)
