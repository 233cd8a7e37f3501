"""What one ingest costs the web process, or one delivery the worker, counted in instructions, so that a change
to either path can be judged on a machine whose speed varies by ±20 % from minute to minute.

    .venv/bin/python bench/cost.py ingest|delivery [--baseline REV] [--events 500] [--endpoints 1] [--other-agents 0]

ingest: it drives POST /api/v1/events through the WSGI app in process (no server, no client: what is left
is the product's own work on an event) against a temporary SQLite file and the Redis of REDIS_URL (or an
embedded one), under valgrind's callgrind, twice: with 50 events and with 50 + --events. The difference
divided by --events is the cost of one ingest, start-up and warm-up excluded; it repeats to the
instruction for the same code.

delivery: the same ingests, each to --endpoints endpoints on a receiver in another process (the benchmark's),
then the drain job (jobs/drain.py, as a worker runs it, without RQ around it) delivers the backlog: the
difference between a run that drains the last --events events' deliveries and one that does not, divided
by the deliveries, is what one delivery of a backlog costs the worker (its claim, signing, HTTP request and
record, in batches). The drain's waits are made instant and its patience long, so that a slow moment under
valgrind changes no path. Its lanes' threads interleave differently from run to run, so the count repeats
to within a few per cent (3 to 5 % seen on a busy machine), not to the instruction: compare in one run.

With --baseline, the same is measured for that revision (checked out in a temporary git worktree) in the
same run, and the ratio printed. Needs valgrind (Debian: apt-get install valgrind). Redis, SQLite and the
receiver run in other processes or in the kernel, so their own work is not counted, nor waits.
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


def drive(root: str, what: str, events: int, endpoints: int, receiver: str | None, drain: bool,
          other_agents: int = 0) -> None:
    """In the child (valgrind counts the whole process): ingest WARM_UP events, then ``events`` more. For a
    delivery count, the warm-up's deliveries are drained first, and the others with ``drain``. With
    ``other_agents``, the tenant also has that many other agents with an endpoint each that takes only
    that agent's events (an endpoint per customer's agent): none of them takes the measured events."""
    import io

    sys.path.insert(0, root)
    os.environ.update(AGENTHOOKS_ENV="development", ALLOW_PRIVATE_DESTINATIONS="1", LOG_LEVEL="WARNING",
                      AGENT_EVENT_BUDGET="0", AGENTHOOKS_INSTANCE_PATH=tempfile.mkdtemp())
    os.environ.pop("DATABASE_URL", None)  # SQLite in the temporary instance folder
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import Delivery
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
            for n in range(endpoints):  # for an ingest count, nothing delivers to them
                create_endpoint({"url": f"{receiver or 'http://127.0.0.1:9'}/hook/{n}"})
            for n in range(other_agents):
                other = create_agent({"name": f"customer {n}"})
                create_endpoint({"url": f"http://127.0.0.1:9/customer/{n}", "agent_ids": [other.id]})
            db.session.commit()
            agent_id, tenant_id = agent.id, tenant.id
    body = json.dumps({"type": "message.received", "agent_id": agent_id, "conversation_id": "conv-1",
                       "user": {"id": "u-1", "email": "a@example.com", "name": "Ada"},
                       "data": {"text": "x" * 960, "lang": "en"}}).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/events", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.url_scheme": "http", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "HTTP_AUTHORIZATION": f"Bearer {key}", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
               "wsgi.multiprocess": True, "wsgi.run_once": False}

    def ingest(count: int) -> None:
        for _ in range(count):
            status = []
            b"".join(app.wsgi_app({**environ, "wsgi.input": io.BytesIO(body)},
                                  lambda s, h, e=None: status.append(s)))
            if not status[0].startswith("202"):
                raise SystemExit(f"ingest answered {status[0]}")

    def deliver_backlog() -> None:
        from jobs import drain, lanes
        # No wait and no end of turn: what a drain does then depends on the instructions alone, not on how
        # slowly valgrind runs them (an attempt past SLOW_SECONDS would take the slow receiver's path).
        drain.TURN_SECONDS = drain.LONGEST_TURN_SECONDS = float("inf")
        drain.IDLE_SECONDS = drain.LINGER_SECONDS = 0
        drain.SLOW_SECONDS = lanes.SLOW_SECONDS = 3600
        with app.app_context():
            drain.deliver_due(tenant_id)
            with tenant_scope(tenant_id):
                undelivered = db.session.scalar(select(func.count()).select_from(Delivery)
                                                .where(Delivery.status != "succeeded"))
        if undelivered:
            raise SystemExit(f"{undelivered} deliveries did not succeed")

    ingest(WARM_UP)
    if what == "delivery":
        deliver_backlog()
    ingest(events)
    if drain:
        deliver_backlog()


def instructions(root: str, what: str, events: int, endpoints: int, redis_url: str, receiver: str | None = None,
                 drain: bool = False, other_agents: int = 0) -> int:
    """Instructions the whole child process ran (valgrind's callgrind total)."""
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONHASHSEED": "0"}
    argv = [sys.executable, __file__, what, "--drive", root, "--events", str(events), "--endpoints", str(endpoints),
            "--other-agents", str(other_agents)]
    if receiver:
        argv += ["--receiver", receiver]
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv,
                           *(["--drain"] if drain else [])], cwd=root, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"the run under valgrind failed:\n{done.stderr[-3000:]}")
    return int(found.group(1))


def unit_cost(root: str, what: str, events: int, endpoints: int, redis_url: str, receiver: str | None,
              other_agents: int = 0) -> float:
    """Instructions of one ingest, or of one delivery."""
    if what == "ingest":
        few, many = (instructions(root, what, count, endpoints, redis_url, other_agents=other_agents)
                     for count in (FEW, FEW + events))
        return (many - few) / events
    kept, drained = (instructions(root, what, events, endpoints, redis_url, receiver, drain, other_agents)
                     for drain in (False, True))
    return (drained - kept) / (events * endpoints)


def start_receiver(log_dir: str) -> tuple[subprocess.Popen, str]:
    """The benchmark's receiver (bench/throughput.py), in a process of its own: not counted."""
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "throughput.py"), "--serve-receiver",
                                os.path.join(log_dir, "receipts.log")], stdout=subprocess.PIPE, text=True)
    return process, f"http://127.0.0.1:{int(process.stdout.readline())}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("ingest", "delivery"), help="the path to count")
    parser.add_argument("--baseline", help="a git revision to measure in the same run, for the ratio")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=1, help="endpoints each event fans out to")
    parser.add_argument("--other-agents", type=int, default=0,
                        help="other agents of the tenant, each with an endpoint that takes only its events")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--receiver", help=argparse.SUPPRESS)
    parser.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.what, args.events, args.endpoints, args.receiver, args.drain, args.other_agents)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    sys.path.insert(0, str(ROOT))
    from webapp.embedded_redis import EmbeddedRedis

    embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis().start()
    redis_url = os.environ.get("REDIS_URL") or embedded.url
    receiver, receiver_url, worktree = None, None, None
    unit = "ingest" if args.what == "ingest" else "delivery"
    try:
        started = time.monotonic()
        if args.what == "delivery":
            receiver, receiver_url = start_receiver(tempfile.mkdtemp(prefix="agenthooks-cost-"))
        code = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True)
        ours = unit_cost(str(ROOT), args.what, args.events, args.endpoints, redis_url, receiver_url, args.other_agents)
        print(f"this checkout ({code.stdout.strip() or '?'}, with any uncommitted changes): "
              f"{ours / 1e6:.3f} M instructions per {unit}", flush=True)
        if args.baseline:
            worktree = tempfile.mkdtemp(prefix="agenthooks-baseline-")
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", worktree, args.baseline],
                           check=True, capture_output=True)
            theirs = unit_cost(worktree, args.what, args.events, args.endpoints, redis_url, receiver_url,
                               args.other_agents)
            print(f"baseline {args.baseline}: {theirs / 1e6:.3f} M instructions per {unit}; "
                  f"this checkout costs {ours / theirs:.2f}x the baseline", flush=True)
        others = f", beside {args.other_agents} other agents' endpoints" if args.other_agents else ""
        print(f"({args.events} events to {args.endpoints} endpoint(s){others} counted in each, "
              f"{time.monotonic() - started:.0f} s)")
    finally:
        if worktree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", worktree], capture_output=True)
        if receiver:
            receiver.kill()
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    main()
