"""Concurrent sending inside a worker process: one lane per destination.

A drain job (jobs/drain.py) hands its batch's HTTP attempts to these threads instead of sending them
one after another. Each endpoint gets at most ``LANE_WIDTH`` attempts in flight per process, so a receiver
that takes seconds to answer holds a few threads of its own lane, never the job or the other endpoints'
deliveries: the job stops waiting for it after a moment and the lane records the outcome when it comes.
"""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

# Attempts in flight to one endpoint from one worker process.
LANE_WIDTH = 8
# Threads per process: lanes of several slow endpoints fit beside the fast ones. The sender keeps as many
# connections alive per host (jobs/sender.py): endpoints often share a host, and a connection that does
# not fit in its pool is closed after one request.
THREADS = 32
# How long a drain waits for its batch's attempts. An endpoint whose attempt takes longer is "slow": the
# drain leaves it to its lane and, until one of its attempts is quick again, does not wait for it at all.
SLOW_SECONDS = 0.5


class Lanes:
    def __init__(self, width: int = LANE_WIDTH, threads: int = THREADS):
        self.width = width
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lane")
        self._running: collections.Counter[str] = collections.Counter()
        self._waiting: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._slow: set[str] = set()
        self._lock = threading.Condition()

    def full(self) -> list[str]:
        """Endpoints with a whole lane in flight: a drain claims none of their deliveries for now."""
        with self._lock:
            return [endpoint for endpoint, count in self._running.items() if count >= self.width]

    def is_slow(self, endpoint_id: str) -> bool:
        return endpoint_id in self._slow

    def mark_slow(self, endpoint_id: str) -> None:
        """An attempt to the endpoint is taking longer than SLOW_SECONDS: treat it as slow from now on,
        not only once that attempt ends (until one of its attempts is fast again)."""
        with self._lock:
            self._slow.add(endpoint_id)

    def slow(self) -> list[str]:
        """Endpoints whose last attempt took longer than SLOW_SECONDS."""
        with self._lock:
            return list(self._slow)

    def submit(self, endpoint_id: str, fn, *args) -> Future:
        """Run ``fn(*args)`` in the endpoint's lane: at once if it has room, else after its earlier attempts."""
        future: Future = Future()
        with self._lock:
            if self._running[endpoint_id] < self.width:
                self._start(endpoint_id, future, fn, args)
            else:
                self._waiting[endpoint_id].append((future, fn, args))
        return future

    def _start(self, endpoint_id: str, future: Future, fn, args) -> None:
        # Called with the lock held.
        self._running[endpoint_id] += 1
        self._pool.submit(self._run, endpoint_id, future, fn, args)

    def _run(self, endpoint_id: str, future: Future, fn, args) -> None:
        started = time.monotonic()
        if future.set_running_or_notify_cancel():
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                # (Known before the result is handed on: a drain deciding what to wait for sees it.)
                with self._lock:
                    (self._slow.add if time.monotonic() - started > SLOW_SECONDS else self._slow.discard)(endpoint_id)
                future.set_result(result)
        with self._lock:
            self._running[endpoint_id] -= 1
            waiting = self._waiting.get(endpoint_id)
            if waiting:
                self._start(endpoint_id, *waiting.popleft())
            if not waiting:
                self._waiting.pop(endpoint_id, None)
            if self._running[endpoint_id] <= 0:
                del self._running[endpoint_id]
            if not self._running:
                self._lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight (a stopping worker lets its attempts finish). True if idle."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True


lanes = Lanes()
