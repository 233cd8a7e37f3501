"""CPU one Redis command costs the installed redis-py, against a bare socket's round trip: what decides the cap on
redis-py in pyproject.toml (an ingest makes two commands, RQ ~65 a job).

    .venv/bin/python bench/redis_client.py [--redis-url redis://127.0.0.1:6379/0] [--commands 20000]

To compare releases, run it from venvs that differ only in redis-py, e.g.
    python3 -m venv /tmp/r7 && /tmp/r7/bin/pip install 'redis[hiredis]==7.4.1'
    /tmp/r7/bin/python bench/redis_client.py --redis-url redis://127.0.0.1:6379/0
With REDIS_URL unset and no --redis-url, it starts the embedded Redis that scripts/run and the other benchmarks use.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis


def cpu_per_call(call, count: int) -> float:
    """Microseconds of this process's CPU per call, after a warm-up."""
    for _ in range(1000):
        call()
    started = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--commands", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    embedded = None
    if not args.redis_url:  # imported here: a venv with redis-py alone can still measure a server of its own
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from webapp.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis().start()
    redis_url = args.redis_url or embedded.url
    client = redis.Redis.from_url(redis_url)
    client.set("agenthooks-bench-key", "1")
    url = urlparse(redis_url)
    raw = socket.create_connection((url.hostname, url.port or 6379))

    def bare_ping() -> None:
        raw.sendall(b"*1\r\n$4\r\nPING\r\n")
        raw.recv(64)

    calls = {"SET NX EX (the drain's wake-up)": lambda: client.set("agenthooks-bench-key", "1", nx=True, ex=60),
             "GET": lambda: client.get("agenthooks-bench-key"), "a bare socket's PING": bare_ping}
    print(f"redis-py {redis.__version__} on {redis_url}; CPU per command, {args.rounds} rounds "
          f"of {args.commands}:")
    for name, call in calls.items():
        figures = [cpu_per_call(call, args.commands) for _ in range(args.rounds)]
        print(f"  {name}: " + ", ".join(f"{us:.1f}" for us in figures) + " µs")
    raw.close()
    if embedded is not None:
        embedded.stop()


if __name__ == "__main__":
    main()
