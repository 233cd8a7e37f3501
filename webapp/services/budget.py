"""The runaway-agent guard: each agent may send so many events a minute, then ingest answers 429.

A looping agent would otherwise flood every receiver its tenant subscribed. The budget is counted in
Redis (a moving window, with the ``limits`` library Flask-Limiter uses) per agent; it is
``AGENT_EVENT_BUDGET`` events a minute unless the agent has its own ``event_budget_per_minute``. Like the
ingest rate limit, the guard fails open: with Redis down, events are accepted uncounted, because refusing
them would lose them.

Each refusal is also counted per tenant and minute, so the dashboard can warn that an agent was throttled.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from flask import current_app
from limits import RateLimitItemPerSecond
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from ..fail_open import FailOpen
from ..models import Agent
from ..queue import redis_connection
from .common import ServiceError

log = logging.getLogger(__name__)

_THROTTLED_KEY = "agenthooks:throttled:{tenant}:{minute}"
_HOUR_MINUTES = 60
_STORAGE_ERRORS = (RedisError, StorageError, ConnectionError, TimeoutError, OSError)


class BudgetExceeded(ServiceError):
    """The agent has sent its budget of events for now; ``retry_after`` says when it may send again."""

    def __init__(self, agent_id: str, budget: int, window: int, retry_after: int):
        per = "a minute" if window == 60 else f"every {window} seconds"
        super().__init__(f"Agent {agent_id} is over its event budget of {budget} events {per}; "
                         f"retry after {retry_after} second{'s' * (retry_after != 1)}.")
        self.agent_id, self.budget, self.retry_after = agent_id, budget, retry_after


@dataclass
class _Guard:
    """The app's limiter, and whether it stands aside after a failure of Redis."""

    limiter: MovingWindowRateLimiter | None
    redis: FailOpen = field(default_factory=lambda: FailOpen("agent budgets"))

    def available(self) -> bool:
        return self.limiter is not None and not self.redis.standing_aside()


def _guard() -> _Guard:
    guard = current_app.extensions.get("agenthooks_budget")
    if guard is None:
        try:
            storage = storage_from_string(current_app.config["REDIS_URL"], key_prefix="agenthooks-budget",
                                          socket_connect_timeout=1, socket_timeout=1,
                                          **current_app.config["REDIS_OPTIONS"])
            guard = _Guard(MovingWindowRateLimiter(storage))
        except ConfigurationError as exc:  # a REDIS_URL the limits library cannot use
            log.warning("agent budgets are disabled: %s", exc)
            guard = _Guard(None)
        current_app.extensions["agenthooks_budget"] = guard
    return guard


def default_budget() -> int:
    return int(current_app.config["AGENT_EVENT_BUDGET"])


def budget_of(agent: Agent) -> int:
    """Events a minute this agent may send; 0 means no limit."""
    return agent.event_budget_per_minute or default_budget()


def spend(agent: Agent) -> None:
    """Count one event against the agent's budget.

    Raises:
        BudgetExceeded: the agent has no budget left in the current window (nothing is counted then).
    """
    budget = budget_of(agent)
    guard = _guard()
    if budget <= 0 or not guard.available():
        return
    window = max(1, int(current_app.config["AGENT_EVENT_BUDGET_WINDOW"]))
    item = RateLimitItemPerSecond(budget, window)
    try:
        if guard.limiter.hit(item, agent.tenant_id, agent.id):
            return
        stats = guard.limiter.get_window_stats(item, agent.tenant_id, agent.id)
    except _STORAGE_ERRORS as exc:
        guard.redis.failed(exc)
        return
    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
    _count_throttle(agent)
    raise BudgetExceeded(agent.id, budget, window, retry_after)


def _minute(at: float | None = None) -> int:
    return int((at if at is not None else time.time()) // 60)


def _count_throttle(agent: Agent) -> None:
    key = _THROTTLED_KEY.format(tenant=agent.tenant_id, minute=_minute())
    try:
        with redis_connection().pipeline() as pipe:
            pipe.hincrby(key, agent.id, 1)
            pipe.expire(key, (_HOUR_MINUTES + 5) * 60)
            pipe.execute()
    except RedisError as exc:
        log.warning("could not count a throttled event of agent %s: %s", agent.id, exc)


def throttled_last_hour(tenant_id: str) -> dict[str, int]:
    """How many events each of the tenant's agents had refused for its budget in the last hour
    (only agents that had any); empty when Redis cannot say."""
    now = _minute()
    keys = [_THROTTLED_KEY.format(tenant=tenant_id, minute=minute) for minute in range(now - _HOUR_MINUTES + 1, now + 1)]
    counts: dict[str, int] = {}
    try:
        with redis_connection().pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            buckets = pipe.execute()
    except RedisError as exc:
        log.warning("could not read the throttled counts: %s", exc)
        return {}
    for bucket in buckets:
        for agent_id, count in bucket.items():
            agent_id = agent_id.decode() if isinstance(agent_id, bytes) else agent_id
            counts[agent_id] = counts.get(agent_id, 0) + int(count)
    return counts
