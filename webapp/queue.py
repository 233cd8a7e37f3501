"""The work queue (RQ on Redis). Redis only carries work: the database says what is due,
so every enqueue here is best effort and the sweep (jobs/sweep.py) makes up for a lost one."""
from __future__ import annotations

import logging
import time
import zlib
from typing import NamedTuple
from datetime import datetime, timedelta, timezone

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus

log = logging.getLogger(__name__)

DELIVER_JOB = "jobs.delivery.deliver"
DRAIN_JOB = "jobs.drain.deliver_due"
# While a tenant's drain job waits in its queue, this key says so: one waiting drain job serves every
# delivery committed before it starts, so further wake-ups need not queue another. The TTL bounds the
# damage of a key whose job was lost some other way (a second job is harmless: claims are atomic).
_DRAIN_WAITING = "agenthooks:drain-waiting:{}"
DRAIN_WAITING_TTL = 60
# Tenants are spread over several queues that every worker serves in turn (round robin), so a
# tenant with a flood of events delays its own deliveries, not everyone else's. Fixed: jobs
# already queued would be stranded if the number changed.
QUEUE_SHARDS = 8
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


def queue_names() -> list[str]:
    return [f"deliveries-{shard}" for shard in range(QUEUE_SHARDS)]


def delivery_queue(tenant_id: str) -> Queue:
    return Queue(f"deliveries-{zlib.crc32(tenant_id.encode()) % QUEUE_SHARDS}", connection=redis_connection())


class Next(NamedTuple):
    """What the queue needs of a delivery (rows expire at commit; this does not)."""

    id: str
    attempt_count: int = 0
    manual_pending: bool = False


def next_of(delivery) -> Next:
    return Next(delivery.id, delivery.attempt_count, delivery.manual_pending)


def job_id(delivery) -> str:
    """The id of the job for a delivery's next attempt: the same whoever enqueues it, so the
    sweep can tell a queued attempt from a lost one."""
    return f"{delivery.id}-{delivery.attempt_count}{'-m' if delivery.manual_pending else ''}"


def _job_options() -> dict:
    timeout = int(current_app.config["DELIVERY_TIMEOUT"]) + JOB_TIMEOUT_HEADROOM
    # Results are not read (the database records every attempt), so keep Redis small.
    return {"timeout": timeout, "result_ttl": 0, "failure_ttl": 24 * 3600}


def enqueue_deliveries(tenant_id: str, deliveries, trigger: str = "scheduled", job_ids: list[str] | None = None,
                       held: list | None = None) -> bool:
    """Put one job per delivery on the tenant's queue in one round trip. Returns False if Redis refused.

    Args:
        deliveries: rows (or anything with ``id``, ``attempt_count`` and ``manual_pending``).
        job_ids: ids to use instead of ``job_id(delivery)``.
        held: for deliveries whose pacing slot has come (jobs/pacing.py), what each job needs of its hold:
            the lease of the claim it kept (or True: it claims anew).
    """
    if not deliveries:
        return True
    queue = delivery_queue(tenant_id)
    options = _job_options()
    ids = job_ids or [job_id(d) for d in deliveries]
    extras = [(h,) for h in held] if held else [()] * len(deliveries)
    # A delivery whose pacing slot has come has waited its turn already: it goes to the front.
    jobs = [Queue.prepare_data(DELIVER_JOB, args=(tenant_id, d.id, trigger, *extra), job_id=jid,
                               at_front=bool(held), **options)
            for d, jid, extra in zip(deliveries, ids, extras)]
    try:
        queue.enqueue_many(jobs)
        return True
    except RedisError as exc:
        log.warning("could not enqueue %d deliveries (the sweep will): %s", len(jobs), exc)
        return False


def wake_drain(tenant_id: str, force: bool = False) -> bool:
    """Make sure a drain job (jobs.drain.deliver_due) will look at the tenant's due deliveries after
    this call: queue one unless one is waiting already. Returns False if Redis refused.

    ``force``: queue one whatever the key says (the sweep: the key may outlive a job that Redis lost)."""
    queue = delivery_queue(tenant_id)
    key = _DRAIN_WAITING.format(tenant_id)
    try:
        connection = redis_connection()
        if not connection.set(key, "1", nx=not force, ex=DRAIN_WAITING_TTL):
            return True  # a waiting job will claim what was committed before now
        job = Queue.prepare_data(DRAIN_JOB, args=(tenant_id,), job_id=f"drain-{tenant_id}-{time.time_ns()}",
                                 **_job_options())
        try:
            queue.enqueue_many([job])
        except RedisError:
            connection.delete(key)
            raise
        return True
    except RedisError as exc:
        log.warning("could not wake the drain of tenant %s (the sweep will): %s", tenant_id, exc)
        return False


def others_waiting(tenant_id: str) -> bool:
    """Whether a job other than the tenant's own next drain waits on the delivery queues (one round trip):
    a drain that lingers for more of its tenant's events gives way to it. True if Redis cannot say."""
    try:
        with redis_connection().pipeline(transaction=False) as pipe:
            pipe.exists(_DRAIN_WAITING.format(tenant_id))
            for name in queue_names():
                pipe.llen(Queue.redis_queue_namespace_prefix + name)
            own_successor, *lengths = pipe.execute()
    except RedisError:
        return True
    return sum(lengths) > own_successor


def drain_started(tenant_id: str) -> None:
    """A drain job calls this before it claims: a wake-up after this point queues a new job."""
    redis_connection().delete(_DRAIN_WAITING.format(tenant_id))


def _whole_second_after(seconds: float) -> datetime:
    # RQ keeps scheduled times to the whole second, rounding down: round up instead, so an
    # attempt never starts before its time (a receiver's Retry-After is a floor, not a hint).
    due = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return due.replace(microsecond=0) + timedelta(seconds=1 if due.microsecond else 0)


def enqueue_delivery_in(seconds: float, tenant_id: str, delivery, trigger: str = "scheduled",
                        job_id_suffix: str = "") -> bool:
    """Schedule the next attempt of a delivery. Returns False if Redis refused."""
    return enqueue_deliveries_at([(seconds, delivery)], tenant_id, trigger, job_id_suffix)


def enqueue_deliveries_at(items, tenant_id: str, trigger: str = "scheduled", job_id_suffix: str = "") -> bool:
    """Schedule several deliveries, each ``(seconds from now, delivery)``, in one round trip."""
    queue = delivery_queue(tenant_id)
    options = _job_options()
    # enqueue_at() reads the job's timeout as job_timeout (timeout could be the function's own argument).
    options["job_timeout"] = options.pop("timeout")
    try:
        with redis_connection().pipeline() as pipe:
            for seconds, delivery in items:
                queue.enqueue_at(_whole_second_after(seconds), DELIVER_JOB, tenant_id, delivery.id, trigger,
                                 job_id=job_id(delivery) + job_id_suffix, pipeline=pipe, **options)
            pipe.execute()
        return True
    except RedisError as exc:
        log.warning("could not schedule %d deliveries (the sweep will): %s", len(items), exc)
        return False


def live_job_ids(ids: list[str]) -> set[str]:
    """Which of these jobs Redis still holds, waiting or running."""
    live = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
    jobs = Job.fetch_many(ids, connection=redis_connection())
    return {job.id for job in jobs if job is not None and job.get_status(refresh=False) in live}
