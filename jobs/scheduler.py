"""Keeps RQ's scheduled jobs (retries, paced attempts, recover's resends) moving through Redis outages.

RQ's scheduler runs in a child process of a worker; that process exits at its first Redis error, and the
worker starts a new one only in its maintenance, every 10 minutes or more: after a Redis restart, every
retry would wait that long (the sweep cannot tell, since the retry's job is there, scheduled). So the
worker's maintenance thread also schedules: each pass takes RQ's scheduler lock of every queue that no
scheduler holds (a live RQ scheduler keeps its own) and moves the due jobs of those queues to their
queues, with RQ's own code."""
from __future__ import annotations

from redis.exceptions import RedisError
from rq.scheduler import RQScheduler

from webapp.queue import queue_names, redis_connection

# This process's scheduler: its name owns the locks it takes (a worker killed outright leaves them a minute).
_scheduler: RQScheduler | None = None


def schedule_once() -> int:
    """Move due scheduled jobs of the queues whose lock this process holds or gets; returns how many
    queues that was."""
    global _scheduler
    if _scheduler is None:
        _scheduler = RQScheduler(queue_names(), connection=redis_connection())
    queues = _scheduler.acquire_locks()
    if queues:
        _scheduler.enqueue_scheduled_jobs()
    return len(queues)


def release() -> None:
    """Give back the locks this process holds (a stopping worker), so another takes over at once."""
    if _scheduler is not None:
        try:
            _scheduler.release_locks()
        except RedisError:
            pass  # Redis is away: the locks run out within a minute anyway
