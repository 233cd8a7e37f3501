"""Soak test: does every accepted event reach every subscribed endpoint, or end visibly failed,
while workers and Redis are killed and restarted at random?

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 20] [--workers 2] [--fail 0.2] [--seed 1]
        [--paced 40] [--database-url postgresql://postgres@127.0.0.1:5432/soak]

For the given minutes it sends events at a steady rate (with Idempotency-Key, retrying refused
requests) to three endpoints whose receiver fails a fraction of requests at random (the third with a
rate limit of --paced deliveries a second, so that the drain holds its deliveries for their slots in
Redis and sends them in the endpoint's lane: jobs/pacing.py), while a chaos
loop kill -9s or SIGTERMs workers and stops Redis (the embedded one keeps nothing: a restart is
also a flush). Then it lets the backlog drain and prints events accepted, deliveries expected,
delivered, failed-visible, still in progress (when the drain ran out of time), lost (must be 0) and
duplicates. Exit status 1 when anything was lost or is still in progress.
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.embedded_redis import EmbeddedRedis, _free_port  # noqa: E402

RETRY_SCHEDULE = "1,2,4,8,8,8"  # short, so failures resolve within the drain


def serve_receiver(log_path: str, fail: float, seed: int) -> None:
    """A receiver (child process) that answers 500 to a random ``fail`` share; logs each request."""
    out = open(log_path, "a", buffering=1)
    lock = threading.Lock()
    rng = random.Random(seed)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                status = 500 if rng.random() < fail else 200
                out.write(f"{self.headers.get('webhook-id')} {self.path} {status} {time.time():.3f}\n")
            self.wfile.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Soak:
    def __init__(self, args, tmp: Path):
        self.args, self.tmp = args, tmp
        self.rng = random.Random(args.seed)
        self.redis = EmbeddedRedis().start()
        self.env = {**os.environ, "SECRET_KEY": "soak", "ALLOW_PRIVATE_DESTINATIONS": "1", "LOG_LEVEL": "WARNING",
                    "REDIS_URL": self.redis.url, "DELIVERY_RETRY_SCHEDULE": RETRY_SCHEDULE, "DELIVERY_TIMEOUT": "5",
                    "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'soak.sqlite3'}",
                    "AGENTHOOKS_INSTANCE_PATH": str(tmp / "instance"),
                    "AGENT_EVENT_BUDGET": "0"}  # a steady flood from few agents is the point here, not a runaway
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen | None] = [None] * args.workers
        self.lock = threading.Lock()
        self.counts = Counter()

    def spawn(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=kwargs.pop("stdout", log), stderr=log, **kwargs)
        self.procs.append(proc)
        return proc

    def flask(self, *args) -> str:
        return subprocess.run([sys.executable, "-m", "flask", "--app", "webapp", *args], cwd=ROOT, env=self.env,
                              check=True, capture_output=True, text=True).stdout

    def start_worker(self, index: int) -> None:
        self.workers[index] = self.spawn(f"worker{index}", [sys.executable, "-m", "flask", "--app", "webapp", "worker"])

    def set_up(self) -> None:
        if self.args.database_url:
            engine = create_engine(self.env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        self.flask("db", "upgrade")
        created = json.loads(self.flask("tenant", "create", "--org", "Soak", "--email", "soak@example.com",
                                        "--password", "soak-password", "--json"))
        receiver = self.spawn("receiver", [sys.executable, __file__, "--serve-receiver", str(self.tmp / "received"),
                                           str(self.args.fail), str(self.args.seed)], stdout=subprocess.PIPE)
        receiver_port = int(receiver.stdout.readline())
        self.port = _free_port()
        self.spawn("web", [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py",  # as the Procfile does
                           "--bind", f"127.0.0.1:{self.port}", "webapp:create_app()"])
        for index in range(self.args.workers):
            self.start_worker(index)
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {created['api_key']}"
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        deadline = time.time() + 60
        while True:
            try:
                self.agent = self.api.post(f"{self.base}/agents", json={"name": "soak bot"}, timeout=5).json()["id"]
                break
            except (requests.RequestException, KeyError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        for path, rate_limit in (("ep1", None), ("ep2", None), ("paced", self.args.paced or None)):
            self.api.post(f"{self.base}/endpoints", json={"url": f"http://127.0.0.1:{receiver_port}/{path}",
                                                          "rate_limit": rate_limit}, timeout=5).raise_for_status()

    def send_one(self) -> None:
        key = uuid.uuid4().hex
        for _ in range(20):  # retry what the web refused or could not answer; the key keeps it one event
            try:
                response = self.api.post(f"{self.base}/events", json={"type": "message.sent", "agent_id": self.agent},
                                         headers={"Idempotency-Key": key}, timeout=10)
                if response.status_code in (200, 202):
                    with self.lock:
                        self.counts["accepted" if response.status_code == 202 else "replayed"] += 1
                        self.counts["expected"] += response.json()["deliveries"] if response.status_code == 202 else 0
                    return
                self.counts[f"ingest {response.status_code}"] += 1
            except requests.RequestException:
                self.counts["ingest connection error"] += 1
            time.sleep(0.5)
        self.counts["gave up sending"] += 1

    def chaos(self, stop: threading.Event) -> None:
        while not stop.wait(self.rng.uniform(8, 25)):
            self.revive_dead_workers()
            action = self.rng.choice(["kill -9 worker", "SIGTERM worker", "stop Redis"])
            self.counts[action] += 1
            if action == "stop Redis":
                self.redis.stop()
                stop.wait(self.rng.uniform(2, 8))
                self.redis = EmbeddedRedis(port=self.redis.port).start()  # empty: a flush as well
            else:
                index = self.rng.randrange(len(self.workers))
                proc = self.workers[index]
                proc.send_signal(signal.SIGKILL if action.startswith("kill") else signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                stop.wait(self.rng.uniform(0.5, 3))
                self.start_worker(index)

    def revive_dead_workers(self) -> None:
        """What a platform does: start again a worker that exited on its own."""
        for index, proc in enumerate(self.workers):
            if proc.poll() is not None:
                self.counts["worker exited by itself, restarted"] += 1
                self.start_worker(index)

    def outstanding(self) -> int:
        engine = create_engine(self.env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM deliveries WHERE status IN ('pending', 'retrying') "
                                      "OR manual_pending")).scalar()
        engine.dispose()
        return count

    def report(self) -> int:
        engine = create_engine(self.env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT d.event_id, e.url, d.status FROM deliveries d "
                                     "JOIN endpoints e ON e.id = d.endpoint_id")).all()
        engine.dispose()
        received = [line.split() for line in (self.tmp / "received").read_text().splitlines()]
        ok = Counter((wid, path.strip("/")) for wid, path, status, _ in received if status == "200")
        stored = {(event_id, url.rsplit("/", 1)[1]): status for event_id, url, status in rows}
        failed_visible = {pair for pair, status in stored.items() if status == "failed"}
        # Still pending or retrying when the drain ran out of time: not lost, not done either.
        in_progress = {pair for pair, status in stored.items() if status in ("pending", "retrying")}
        delivered = set(ok)
        lost = [pair for pair in stored if pair not in delivered and pair not in failed_visible
                and pair not in in_progress]
        lines = {
            "events accepted": self.counts["accepted"],
            "deliveries expected": self.counts["expected"],
            "deliveries stored": len(stored),
            "delivered": len(delivered),
            "failed-visible": len(failed_visible - delivered),
            "still in progress": len(in_progress - delivered),
            "lost": len(lost) + max(0, self.counts["expected"] - len(stored)),
            "duplicates": sum(n - 1 for n in ok.values()),
            "receiver requests": len(received),
        }
        if self.args.paced:
            # Its rate limit counts attempts, failed ones too: the most it got in any 1 s and any 10 s. Times are
            # of receipt, so a request that took a few ms longer than the one before can add one to a 1 s window.
            times = sorted(float(at) for _, path, _, at in received if path == "/paced")
            for window in (1, 10):
                busiest = max((bisect.bisect_left(times, at + window) - n for n, at in enumerate(times)), default=0)
                lines[f"paced: most in {window} s"] = f"{busiest} (limit {self.args.paced * window})"
        for name, value in lines.items():
            print(f"{name:>22}: {value}")
        print("        chaos and ingest: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())
                                                   if k not in ("accepted", "expected")))
        return 1 if lines["lost"] or lines["still in progress"] else 0

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        self.redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20, help="events a second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fail", type=float, default=0.2, help="share of requests the receiver fails")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain-minutes", type=float, default=20,
                        help="at most this long for the backlog to clear after the last event")
    parser.add_argument("--paced", type=int, default=40,
                        help="the third endpoint's rate limit, deliveries a second (0: none); keep it above "
                             "--rate with room for retries, or its backlog only grows")
    parser.add_argument("--database-url", help="a PostgreSQL database to WIPE and use (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agenthooks-soak-") as tmp:
        soak = Soak(args, Path(tmp))
        try:
            soak.set_up()
            stop = threading.Event()
            chaos = threading.Thread(target=soak.chaos, args=(stop,), daemon=True)
            chaos.start()
            started, sent = time.monotonic(), 0
            senders = []
            while time.monotonic() - started < args.minutes * 60:
                due = int((time.monotonic() - started) * args.rate)
                while sent < due:
                    thread = threading.Thread(target=soak.send_one, daemon=True)
                    thread.start()
                    senders.append(thread)
                    sent += 1
                time.sleep(0.01)
            stop.set()
            chaos.join()
            soak.revive_dead_workers()
            for thread in senders:
                thread.join(60)
            print(f"sent {sent} events in {args.minutes:g} min; draining …", flush=True)
            drain_started = time.monotonic()
            deadline = drain_started + args.drain_minutes * 60
            while (left := soak.outstanding()) and time.monotonic() < deadline:
                soak.revive_dead_workers()
                print(f"  {left} deliveries pending or retrying", flush=True)
                time.sleep(10)
            print(f"drained in {time.monotonic() - drain_started:.0f} s", flush=True)
            return soak.report()
        finally:
            soak.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-receiver":
        serve_receiver(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())
