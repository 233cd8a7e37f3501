"""Per-endpoint pacing: deliveries to an endpoint with a ``rate_limit`` go out one every
1/rate seconds. Each delivery reserves the next free slot in Redis (shared by every worker
process, like GCRA with no burst); one whose slot is later is held in a sorted set of its own
instead of holding a worker, and the pacer thread of each worker releases it onto the queue
at its slot, to the tenth of a second (RQ's scheduler keeps whole seconds only)."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict

from redis.exceptions import RedisError

from webapp.models import Endpoint
from webapp.queue import Next, enqueue_deliveries, redis_connection

log = logging.getLogger(__name__)
HELD = "agenthooks:paced"
TICK_SECONDS = 0.05

# KEYS[1]: the endpoint's next free slot (a Unix time). ARGV: now, seconds between deliveries.
# Returns the slot this delivery gets, and moves the next free one on by the interval.
_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', math.ceil((slot + interval - now) * 1000) + 60000)
return tostring(slot)
"""
# Take the held deliveries whose slot has come, atomically, so two pacers never release one twice.
_TAKE_DUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
if #items > 0 then redis.call('ZREM', KEYS[1], unpack(items)) end
return items
"""


def reserve_slot(endpoint: Endpoint) -> float:
    """Seconds from now until this delivery may go (0 when at once); the slot is then held for it."""
    if not endpoint.rate_limit:
        return 0.0
    now = time.time()
    reserve = redis_connection().register_script(_RESERVE)
    slot = float(reserve(keys=[f"agenthooks:pacing:{endpoint.id}"], args=[repr(now), repr(1 / endpoint.rate_limit)]))
    wait = slot - now
    return wait if wait > 0.01 else 0.0


def hold(tenant_id: str, delivery: Next, trigger: str, seconds: float, job_id: str) -> bool:
    """Keep a delivery aside until its slot; returns False if Redis refused (the sweep then resends it)."""
    member = json.dumps([tenant_id, *delivery, trigger, job_id])
    try:
        redis_connection().zadd(HELD, {member: time.time() + seconds})
        return True
    except RedisError as exc:
        log.warning("could not hold paced delivery %s: %s", delivery.id, exc)
        return False


def release_due() -> int:
    """Queue every held delivery whose slot has come. Returns how many."""
    take = redis_connection().register_script(_TAKE_DUE)
    items = take(keys=[HELD], args=[repr(time.time())])
    by_tenant = defaultdict(list)
    for raw in items:
        tenant_id, delivery_id, attempt_count, manual_pending, trigger, job_id = json.loads(raw)
        by_tenant[(tenant_id, trigger)].append((Next(delivery_id, attempt_count, manual_pending), job_id))
    for (tenant_id, trigger), entries in by_tenant.items():
        enqueue_deliveries(tenant_id, [d for d, _ in entries], trigger, job_ids=[j for _, j in entries],
                           slot_reserved=True)
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
