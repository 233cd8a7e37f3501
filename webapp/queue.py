"""The work queue (RQ on Redis). Redis only carries work: the database says what is due,
so every enqueue here is best effort and the sweep (jobs/sweep.py) makes up for a lost one."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

log = logging.getLogger(__name__)

DELIVERIES = "deliveries"
DELIVER_JOB = "jobs.delivery.deliver"
# A delivery attempt is bounded by DELIVERY_TIMEOUT; the job's own limit adds headroom for the database.
JOB_TIMEOUT_HEADROOM = 30


def redis_connection() -> Redis:
    conn = current_app.extensions.get("agenthooks_redis")
    if conn is None:
        # Short timeouts: with Redis down, the web answers at once instead of hanging a request.
        conn = Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5,
                              health_check_interval=30, **current_app.config["REDIS_OPTIONS"])
        current_app.extensions["agenthooks_redis"] = conn
    return conn


def delivery_queue() -> Queue:
    return Queue(DELIVERIES, connection=redis_connection())


def _job_options() -> dict:
    timeout = int(current_app.config["DELIVERY_TIMEOUT"]) + JOB_TIMEOUT_HEADROOM
    # Results are not read (the database records every attempt), so keep Redis small.
    return {"timeout": timeout, "result_ttl": 0, "failure_ttl": 24 * 3600}


def enqueue_deliveries(tenant_id: str, delivery_ids: list[str], trigger: str = "scheduled") -> bool:
    """Put one delivery job per id on the queue in one round trip. Returns False if Redis refused."""
    if not delivery_ids:
        return True
    queue = delivery_queue()
    options = _job_options()
    jobs = [Queue.prepare_data(DELIVER_JOB, args=(tenant_id, delivery_id, trigger), **options)
            for delivery_id in delivery_ids]
    try:
        queue.enqueue_many(jobs)
        return True
    except RedisError as exc:
        log.warning("could not enqueue %d deliveries (the sweep will): %s", len(delivery_ids), exc)
        return False


def enqueue_delivery_in(seconds: float, tenant_id: str, delivery_id: str) -> bool:
    """Schedule the next attempt of a delivery. Returns False if Redis refused."""
    try:
        options = _job_options()
        # enqueue_in() reads the job's timeout as job_timeout (timeout could be the function's own argument).
        options["job_timeout"] = options.pop("timeout")
        # RQ keeps scheduled times to the whole second, rounding down: round up instead, so an
        # attempt never starts before its time (a receiver's Retry-After is a floor, not a hint).
        due = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        due = due.replace(microsecond=0) + timedelta(seconds=1 if due.microsecond else 0)
        delivery_queue().enqueue_at(due, DELIVER_JOB, tenant_id, delivery_id, "scheduled", **options)
        return True
    except RedisError as exc:
        log.warning("could not schedule delivery %s (the sweep will): %s", delivery_id, exc)
        return False
