"""What one ingest costs the web process, counted in instructions, so that a change to the ingest path can be
judged on a machine whose speed varies by ±20 % from minute to minute.

    .venv/bin/python bench/ingest_cost.py [--baseline REV] [--events 500] [--endpoints 1]

It drives POST /api/v1/events through the WSGI app in process (no server, no client: what is left is the
product's own work on an event) against a temporary SQLite file and the Redis of REDIS_URL (or an embedded
one), under valgrind's callgrind, twice: with 50 events and with 50 + --events. The difference divided by
--events is the cost of one ingest, start-up and warm-up excluded; it repeats to the instruction for the
same code. With --baseline, the same is measured for that revision (checked out in a temporary git
worktree) in the same run, and the ratio printed. Needs valgrind (Debian: apt-get install valgrind).
Redis and SQLite run in other processes or in the kernel, so their own work is not counted, nor waits.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 200  # events before counting starts in each run: caches, statement compilation, connections
FEW = 50


def drive(root: str, events: int, endpoints: int) -> None:
    """In the child: ingest WARM_UP events, then ``events`` more (valgrind counts the whole process)."""
    import io

    sys.path.insert(0, root)
    os.environ.update(AGENTHOOKS_ENV="development", ALLOW_PRIVATE_DESTINATIONS="1", LOG_LEVEL="WARNING",
                      AGENT_EVENT_BUDGET="0", AGENTHOOKS_INSTANCE_PATH=tempfile.mkdtemp())
    os.environ.pop("DATABASE_URL", None)  # SQLite in the temporary instance folder
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.extensions import db
    from webapp.services.agents import create_agent
    from webapp.services.api_keys import create_key
    from webapp.services.endpoints import create_endpoint
    from webapp.services.tenants import create_tenant
    from webapp.tenancy import tenant_scope

    app = create_app()
    with app.app_context():
        upgrade(directory=str(Path(root) / "migrations"))
        tenant, _ = create_tenant("Bench", "bench@example.com", "correct horse battery")
        with tenant_scope(tenant.id):
            _, key = create_key("bench")
            agent = create_agent({"name": "bot"})
            for n in range(endpoints):  # nothing delivers to them: no worker runs
                create_endpoint({"url": f"http://127.0.0.1:9/hook/{n}"})
            db.session.commit()
            agent_id = agent.id
    body = json.dumps({"type": "message.received", "agent_id": agent_id, "conversation_id": "conv-1",
                       "user": {"id": "u-1", "email": "a@example.com", "name": "Ada"},
                       "data": {"text": "x" * 960, "lang": "en"}}).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/events", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.url_scheme": "http", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "HTTP_AUTHORIZATION": f"Bearer {key}", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
               "wsgi.multiprocess": True, "wsgi.run_once": False}
    for _ in range(WARM_UP + events):
        status = []
        b"".join(app.wsgi_app({**environ, "wsgi.input": io.BytesIO(body)}, lambda s, h, e=None: status.append(s)))
        if not status[0].startswith("202"):
            raise SystemExit(f"ingest answered {status[0]}")


def instructions(root: str, events: int, endpoints: int, redis_url: str) -> int:
    """Instructions the whole child process ran (valgrind's callgrind total)."""
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONHASHSEED": "0"}
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                           __file__, "--drive", root, "--events", str(events), "--endpoints", str(endpoints)],
                          cwd=root, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"the run under valgrind failed:\n{done.stderr[-3000:]}")
    return int(found.group(1))


def per_ingest(root: str, events: int, endpoints: int, redis_url: str) -> float:
    few, many = (instructions(root, count, endpoints, redis_url) for count in (FEW, FEW + events))
    return (many - few) / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="a git revision to measure in the same run, for the ratio")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=1, help="endpoints each event fans out to")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.events, args.endpoints)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    sys.path.insert(0, str(ROOT))
    from webapp.embedded_redis import EmbeddedRedis

    embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis().start()
    redis_url = os.environ.get("REDIS_URL") or embedded.url
    worktree = None
    try:
        started = time.monotonic()
        code = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True)
        ours = per_ingest(str(ROOT), args.events, args.endpoints, redis_url)
        print(f"this checkout ({code.stdout.strip() or '?'}, with any uncommitted changes): "
              f"{ours / 1e6:.3f} M instructions per ingest", flush=True)
        if args.baseline:
            worktree = tempfile.mkdtemp(prefix="agenthooks-baseline-")
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", worktree, args.baseline],
                           check=True, capture_output=True)
            theirs = per_ingest(worktree, args.events, args.endpoints, redis_url)
            print(f"baseline {args.baseline}: {theirs / 1e6:.3f} M instructions per ingest; "
                  f"this checkout costs {ours / theirs:.2f}x the baseline", flush=True)
        print(f"({args.events} events to {args.endpoints} endpoint(s) counted in each, "
              f"{time.monotonic() - started:.0f} s)")
    finally:
        if worktree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", worktree], capture_output=True)
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    main()
