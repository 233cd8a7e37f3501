"""Periodic work the worker runs beside its jobs: the sweep, retention, and RQ's scheduling when RQ's own
scheduler is down. With several workers, each task runs in one of them at a time (a lock in Redis)."""
from __future__ import annotations

import logging
import threading
import time

from redis.exceptions import RedisError

from webapp.queue import redis_connection

from . import retention, scheduler, sweep

log = logging.getLogger(__name__)


def _tasks(app) -> list[tuple[str, float, callable]]:
    return [("sweep", app.config["SWEEP_INTERVAL"], sweep.sweep_once),
            ("retention", app.config["RETENTION_INTERVAL"], retention.prune_once),
            ("scheduler", 1, scheduler.schedule_once)]  # RQ's scheduler looks every second too


def run_forever(app, stop: threading.Event) -> None:
    """Run each task every its interval until ``stop`` is set; a failed pass is logged, never fatal."""
    next_run = {name: time.monotonic() + min(interval, 1) for name, interval, _ in _tasks(app)}
    redis_down: set[str] = set()  # tasks whose last pass found Redis away: said once, not every second
    while not stop.wait(0.5):
        for name, interval, task in _tasks(app):
            if time.monotonic() < next_run[name]:
                continue
            next_run[name] = time.monotonic() + interval
            try:
                with app.app_context():
                    lock = redis_connection().lock(f"agenthooks:{name}-lock", timeout=max(60, interval * 4),
                                                   blocking=False)
                    if lock.acquire():
                        try:
                            task()
                        finally:
                            lock.release()
                if name in redis_down:
                    redis_down.discard(name)
                    log.info("%s runs again: Redis is back", name)
            except RedisError as exc:
                if name not in redis_down:
                    redis_down.add(name)
                    log.warning("%s skipped while Redis is unavailable: %s", name, exc)
            except Exception:  # keep the thread alive whatever one pass hit; logged with its traceback
                log.exception("%s failed", name)
