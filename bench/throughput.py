"""An honest benchmark of the whole product: ingest API -> Redis -> worker -> receiver, and the log at scale.

    .venv/bin/python bench/throughput.py [--events 2000] [--concurrency 8] [--workers 2] [--endpoints 1]
        [--fanout-events 300] [--slow-rounds 3] [--scale 1000000] [--scale-days 30] [--warm-up 500]
        [--database-url postgresql://postgres@127.0.0.1:5432/bench] [--redis-url redis://127.0.0.1:6379/5]

Everything runs in child processes of this one, in a temp directory, and is stopped on exit (Ctrl-C too):
an embedded Redis (unless --redis-url), SQLite in the temp dir (unless --database-url: a PostgreSQL
database whose name contains "bench", which is WIPED first), gunicorn as the Procfile runs it, N delivery
workers (`flask worker`, the Procfile's worker), and a fast receiver (its own process, so it does not
share the GIL with the measuring code). After a warm-up (--warm-up events, delivered; then, on PostgreSQL,
ANALYZE, as autovacuum would have done by then), in one run it prints:

- raw ceiling: one process, one keep-alive requests.Session, signing and POSTing the same ~1.2 KiB body;
- ingest and end to end with one endpoint, latency at a steady half of that end-to-end rate, the
  workers' delivery capacity on a backlog (no ingest beside them), then with 10 endpoints per event
  (fan-out: with the workers running, and with them stopped, as the backlog's ingest, which is the web's
  own cost of an event to 10 endpoints against one; the workers then deliver that backlog), then beside a
  receiver that takes 5 s (the other endpoints' rate with it, as a ratio to their rate without it just
  before: the median of --slow-rounds rounds);
- scale: the log page and GET /api/v1/deliveries, first page and filtered, and the pages that show the
  endpoints' 24-hour health, at --scale bulk-loaded rows over --scale-days;
- CPU by process group and peak RSS of web and worker processes. Rates also as ratios to the raw ceiling.
The ingest's clients (8 threads) use http.client, not requests: they stand for agents on other machines but
share these cores with the product (LOAD_CLIENT=requests for the client of runs before 2026-11-28 morning).
bench/RESULTS.md has the figures of this machine.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's webapp, like the child processes (cwd ROOT) import
PAYLOAD_DATA = {"text": "x" * 960, "lang": "en"}  # with the envelope, the delivered body is ~1.2 KiB
SLOW_SECONDS = 5


# ---------------------------------------------------------------- the receiver (a child process)
def serve_receiver(log_path: str) -> None:
    """Answer every POST with 200 on HTTP/1.1 keep-alive; append "<webhook-id> <path> <time>" per request."""
    out = open(log_path, "a", buffering=1)  # line buffered: the parent counts lines while we run
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without this, and with status line and body in separate writes, Nagle + the client's delayed ACK
        # cost 40 ms per request on a keep-alive connection (a ceiling of ~25 posts/s).
        disable_nagle_algorithm = True

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            if "/slow" in self.path:
                time.sleep(SLOW_SECONDS)  # a receiver that takes its time (the slow-endpoint phase)
            at = time.time()
            with lock:
                out.write(f"{self.headers.get('webhook-id', '-')} {self.path} {at:.6f}\n")
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")  # one segment

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        # A listen backlog like a production server's (nginx: 511), not socketserver's 5: with 5, the
        # connections fresh workers open at once overflow it, and each dropped SYN costs the sender a 1 s
        # retransmit (counted below as listen-queue overflows).
        request_queue_size = 128
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def read_receipts(log_path: Path) -> list[tuple[str, str, float]]:
    rows = [line.split(" ") for line in log_path.read_text().splitlines()]
    return [(row[0], row[1], float(row[2])) for row in rows if len(row) == 3]  # the last may be half written


# ---------------------------------------------------------------- processes
class Stack:
    """Every process this run starts, each in its own session, so one killpg stops it and its children."""

    def __init__(self, tmp: Path):
        self.tmp, self.procs, self.redis = tmp, [], None

    def spawn(self, name: str, argv: list[str], env: dict, stdout=None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=stdout or log, stderr=log, start_new_session=True)
        proc.name = name
        self.procs.append(proc)
        return proc

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.returncode}; see {self.tmp / (proc.name + '.log')}:\n"
                                   + (self.tmp / f"{proc.name}.log").read_text()[-2000:])

    def stop(self) -> None:
        for proc in reversed(self.procs):  # workers first, then web, then the receiver
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.redis is not None:
            self.redis.stop()
            shutil.rmtree(self.redis.directory, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def proc_stat(pid: int | str) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (so [1] is the ppid); [] when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def children_of(pid: int) -> list[int]:
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit() and proc_stat(e)[1:2] == [str(pid)])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (a process that is gone counts 0)."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in map(proc_stat, pids) if fields)
    return ticks / os.sysconf("SC_CLK_TCK")


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (machine-wide): each
    one costs its client a SYN retransmit, 1 s or more."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1])).get("ListenOverflows", 0)) if len(lines) >= 2 else 0


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent not idle (all processes, ours and anyone else's)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _pg_engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    return create_engine(make_url(url.replace("postgres://", "postgresql://", 1)).set(drivername="postgresql+psycopg"))


def postgres_backends(url: str) -> list[int]:
    """The server processes serving this database (ours: it is a dedicated one), to count their CPU."""
    from sqlalchemy import text

    engine = _pg_engine(url)
    with engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid()")).scalars().all()
    engine.dispose()
    return list(pids)


def analyze_postgres(url: str) -> None:
    """Gather the planner's statistics, as autovacuum does in production within about a minute
    (autovacuum_naptime) of a new table's first 50 changes. This machine's PostgreSQL runs with autovacuum
    off, so without this the tables are never analyzed: plans made on near-empty tables stayed cached, and
    PostgreSQL then found deliveries by id by walking every row of the tenant (each drain's lookups took
    3-14 ms at 3,200 rows, and its server process 0.6-1.2 ms of CPU a delivery, against 0.15 analyzed).
    ANALYZE also invalidates those cached plans."""
    from sqlalchemy import text

    engine = _pg_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def wipe_postgres(url: str) -> None:
    """Start from an empty schema (the run creates a tenant with a fixed email)."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    engine = _pg_engine(url)
    if "bench" not in (engine.url.database or ""):
        sys.exit(f"refusing to wipe database {engine.url.database!r}: use a dedicated one whose name contains 'bench'")
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    except OperationalError as exc:
        sys.exit(f"cannot use {engine.url.render_as_string()}: {str(exc.orig).strip()}\n"
                 f"(a new database: createdb -h {engine.url.host} -U {engine.url.username} {engine.url.database})")
    engine.dispose()


# ---------------------------------------------------------------- measurements
def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def delivered_body(event_id: str, seq: int) -> str:
    return json.dumps({"id": event_id, "type": "message.received", "timestamp": "2026-11-26T12:00:00Z",
                       "agent": {"id": "agt_" + "a" * 24, "name": "Bench agent"}, "conversation_id": f"conv-{seq}",
                       "user": {"id": f"u-{seq}", "email": "a@example.com", "name": "Ada"}, "data": PAYLOAD_DATA},
                      separators=(",", ":"))


def raw_ceiling(url: str, seconds: float = 5.0) -> tuple[float, int]:
    """One plain process, one keep-alive session: sign (as the product does) and POST the same body."""
    from webapp.signing import signature_header

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 of 24 bytes, like an endpoint secret
    session, sent, started = requests.Session(), 0, time.monotonic()
    while time.monotonic() - started < seconds:
        msg_id, stamp = f"raw_{sent}", int(time.time())
        body = delivered_body(msg_id, sent)
        headers = {"content-type": "application/json", "user-agent": "AgentHooks/bench", "webhook-id": msg_id,
                   "webhook-timestamp": str(stamp), "webhook-signature": signature_header(msg_id, stamp, body, [secret])}
        session.post(url, data=body.encode(), headers=headers, timeout=15).raise_for_status()
        sent += 1
    return sent / (time.monotonic() - started), sent


def ingest(base: str, api_key: str, agent_id: str, events: int, concurrency: int,
           type_of=lambda seq: "message.received", rate: float | None = None) -> list[dict]:
    """POST events from `concurrency` threads, each with its own keep-alive connection; one record per request.
    With ``rate``, event number n leaves at n / rate seconds after the start (a steady load), else at once.

    The clients stand for agents on other machines, yet share these two cores with the product: they use
    http.client, which costs a fraction of requests' CPU per call (LOAD_CLIENT=requests for the earlier one)."""
    results, lock, counter = [], threading.Lock(), iter(range(events))
    started = time.monotonic()
    post = _requests_poster if os.environ.get("LOAD_CLIENT") == "requests" else _stdlib_poster

    def client() -> None:
        send = post(base, api_key)
        while True:
            with lock:
                seq = next(counter, None)
            if seq is None:
                return
            if rate:
                time.sleep(max(0.0, started + seq / rate - time.monotonic()))
            body = {"type": type_of(seq), "agent_id": agent_id, "conversation_id": f"conv-{seq}",
                    "user": {"id": f"u-{seq}", "email": "a@example.com", "name": "Ada"}, "data": PAYLOAD_DATA}
            sent = time.time()
            status, answer = send(json.dumps(body).encode())
            with lock:
                results.append({"sent": sent, "at": time.time(), "status": status, "id": answer.get("id"),
                                "deliveries": answer.get("deliveries", 0)})

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _stdlib_poster(base: str, api_key: str):
    """A function that POSTs an event on one keep-alive http.client connection: (status, answer)."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def attempt(body: bytes) -> tuple[int, dict]:
        connection.request("POST", "/api/v1/events", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        return response.status, (json.loads(answer) if response.status == 202 else {})

    def send(body: bytes) -> tuple[int | str, dict]:
        reused = connection.sock is not None
        try:
            try:
                return attempt(body)
            except (http.client.RemoteDisconnected, ConnectionError):
                connection.close()
                if not reused:
                    raise
                return attempt(body)  # a keep-alive connection the server had closed: again, as urllib3 does
        except (OSError, http.client.HTTPException) as exc:
            connection.close()  # the next request connects again
            return type(exc).__name__, {}

    return send


def _requests_poster(base: str, api_key: str):
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})

    def send(body: bytes) -> tuple[int | str, dict]:
        try:
            response = session.post(f"{base}/api/v1/events", data=body, timeout=60)
            return response.status_code, (response.json() if response.status_code == 202 else {})
        except requests.RequestException as exc:
            return type(exc).__name__, {}

    return send


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="delivery worker processes")
    parser.add_argument("--fanout-events", type=int, default=300,
                        help="events for the 10-endpoint and slow-endpoint phases (0 skips them)")
    parser.add_argument("--slow-rounds", type=int, default=3,
                        help="rounds of 10 endpoints without, then beside, a 5 s receiver (the median ratio counts)")
    parser.add_argument("--scale", type=int, default=1_000_000,
                        help="deliveries to bulk-load before timing the log and the API (0 skips it)")
    parser.add_argument("--scale-days", type=float, default=30,
                        help="days the loaded deliveries span, oldest first (1: a million in the dashboard's day)")
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--warm-up", type=int, default=500,
                        help="events ingested and delivered before the first measured phase (0: none)")
    parser.add_argument("--database-url", help="PostgreSQL URL of a dedicated 'bench' database (wiped first)")
    parser.add_argument("--redis-url", help="an existing Redis (its delivery queues must not be shared)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for every delivery")
    parser.add_argument("--serve-receiver", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        return serve_receiver(args.serve_receiver)

    signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` cleans up like Ctrl-C
    tmp = Path(tempfile.mkdtemp(prefix="agenthooks-bench-"))
    stack = Stack(tmp)
    try:
        run(args, tmp, stack)
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path, stack: Stack) -> None:
    py = sys.executable
    if args.redis_url:
        redis_url = args.redis_url
    else:
        from webapp.embedded_redis import EmbeddedRedis
        stack.redis = EmbeddedRedis().start()
        redis_url = stack.redis.url
    if args.database_url:
        wipe_postgres(args.database_url)
    database_url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DELIVERY_", "ENDPOINT_", "INGEST_", "AGENTHOOKS_", "FLASK_"))}
    # AGENT_EVENT_BUDGET=0: one agent sends everything here; the runaway-agent guard would cap it at 600 a minute.
    env.update(SECRET_KEY="bench-secret-key", ALLOW_PRIVATE_DESTINATIONS="1", DATABASE_URL=database_url,
               REDIS_URL=redis_url, LOG_LEVEL="WARNING", AGENTHOOKS_INSTANCE_PATH=str(tmp / "instance"),
               AGENT_EVENT_BUDGET="0")
    flask = [py, "-m", "flask", "--app", "webapp"]
    code = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = [line[3:] for line in subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "webapp",
                                                  "jobs", "migrations"], capture_output=True, text=True).stdout.splitlines()]
    print(f"code: {ROOT} at {code.stdout.strip()[:70] or '(not a git checkout)'}"
          + (f"; {len(dirty)} uncommitted files ({', '.join(dirty[:4])}{', …' if len(dirty) > 4 else ''})"
             if dirty else ""), flush=True)
    print(f"config: events={args.events} concurrency={args.concurrency} workers={args.workers} "
          f"endpoints={args.endpoints} database={'sqlite (temp)' if not args.database_url else args.database_url} "
          f"redis={'embedded' if not args.redis_url else redis_url} cpus={os.cpu_count()}", flush=True)

    # The receiver first, and the raw ceiling while nothing else runs.
    overflows_at_start = listen_overflows()
    receipts = tmp / "receipts.log"
    receipts.touch()
    receiver = stack.spawn("receiver", [py, __file__, "--serve-receiver", str(receipts)], env, stdout=subprocess.PIPE)
    hook = f"http://127.0.0.1:{int(receiver.stdout.readline())}/hook"
    ceiling, sent = raw_ceiling(hook + "/raw")
    print(f"raw ceiling: {ceiling:.0f} posts/s ({sent} signed ~1.2 KiB POSTs in 5 s, one keep-alive session)", flush=True)

    subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    made = subprocess.run(flask + ["tenant", "create", "--org", "Bench", "--email", "bench@example.com",
                                   "--password", "benchmark-pw", "--json"],
                          cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    created = json.loads(made.stdout.strip().splitlines()[-1])
    api_key, tenant_id = created["api_key"], created["tenant_id"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The Procfile's web process (WEB_CONCURRENCY workers of WEB_THREADS threads each: webapp/gunicorn_conf.py).
    web = stack.spawn("web", [py, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}",
                              "webapp:create_app()"], env)
    workers = [stack.spawn(f"worker{i}", flask + ["worker"], env) for i in range(args.workers)]

    from redis import Redis

    def web_up() -> bool:
        try:
            return requests.get(f"{base}/api/v1/openapi.json", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def workers_up() -> bool:
        from rq import Worker
        pids = {w.pid for w in Worker.all(connection=Redis.from_url(redis_url))}  # whatever queues they serve
        return all(w.pid in pids for w in workers)

    wait_until(web_up, 60, "gunicorn", stack)
    wait_until(workers_up, 60, "the delivery workers", stack)
    api = requests.Session()
    api.headers.update({"Authorization": f"Bearer {api_key}"})
    agent = api.post(f"{base}/api/v1/agents", json={"name": "Bench agent"}, timeout=10)
    agent.raise_for_status()
    for i in range(args.endpoints):
        api.post(f"{base}/api/v1/endpoints", json={"url": f"{hook}/{i}", "event_types": []},
                 timeout=10).raise_for_status()

    agent_id = agent.json()["id"]

    def jobs_run() -> int:
        """Jobs the current delivery workers have run (RQ keeps the counts in Redis)."""
        from rq import Worker
        pids = {p.pid for p in workers}
        return sum(w.successful_job_count + w.failed_job_count
                   for w in Worker.all(connection=Redis.from_url(redis_url)) if w.pid in pids)

    def phase(label: str, events: int, expected_per_event=None, type_of=lambda seq: "message.received",
              counts=lambda path: True, rate: float | None = None) -> dict:
        """Ingest ``events`` (the workers deliver meanwhile, as in production; at ``rate`` a second, else as
        fast as the clients go), then wait for one receipt per expected delivery whose path ``counts``;
        print and return the rates and latencies."""
        cpu_at_start = {name: cpu_seconds(pids) for name, pids in groups.items() if name in ("gunicorn", "workers")}
        jobs_at_start = jobs_run()
        results = ingest(base, api_key, agent_id, events, args.concurrency, type_of, rate)
        accepted = [r for r in results if r["status"] == 202]
        errors = dict(collections.Counter(r["status"] for r in results if r["status"] != 202))
        if not accepted:
            raise RuntimeError(f"no event was accepted: {errors}; see {tmp / 'web.log'}")
        first_sent, first_accept = min(r["sent"] for r in results), min(r["at"] for r in accepted)
        ingest_rate = len(accepted) / (max(r["at"] for r in accepted) - first_sent)
        latencies = [(r["at"] - r["sent"]) * 1000 for r in accepted]
        print(f"[{label}] ingest: {ingest_rate:.0f} events/s ({len(accepted)}/{len(results)} accepted"
              f"{', errors ' + str(errors) if errors else ''}), latency p50 {pct(latencies, 50):.1f} ms "
              f"p99 {pct(latencies, 99):.1f} ms; {ingest_rate / ceiling:.3f}x raw ceiling", flush=True)
        accepted_at = {r["id"]: r["at"] for r in accepted}
        expected = sum(expected_per_event(r) if expected_per_event else r["deliveries"] for r in accepted)

        def ours() -> list[tuple[str, str, float]]:
            return [row for row in read_receipts(receipts) if row[0] in accepted_at and counts(row[1])]

        deadline, got = time.monotonic() + args.timeout, []
        while time.monotonic() < deadline:
            got = ours()
            if len(got) >= expected:
                break
            stack.check_alive()
            time.sleep(0.25)
        distinct = {(i, path) for i, path, _ in got}
        last = max((at for _, _, at in got), default=first_accept)
        e2e_rate = len(distinct) / (last - first_accept) if got else 0.0
        e2e = [(at - accepted_at[i]) * 1000 for i, _, at in got]
        print(f"[{label}] end to end: {e2e_rate:.0f} deliveries/s ({len(distinct)}/{expected} delivered"
              f"{f', {len(got) - len(distinct)} duplicates' if len(got) > len(distinct) else ''}"
              f"{'' if len(distinct) >= expected else f', gave up after {args.timeout:.0f} s'}; "
              f"first accept to last receipt {last - first_accept:.1f} s), accept-to-receipt p50 {pct(e2e, 50):.0f} ms "
              f"p99 {pct(e2e, 99):.0f} ms; {e2e_rate / ceiling:.3f}x raw ceiling; cpu per delivery: " + ", ".join(
                  f"{name} {1000 * (cpu_seconds(groups[name]) - seconds) / max(1, len(got)):.2f} ms"
                  for name, seconds in cpu_at_start.items()) + f" ({jobs_run() - jobs_at_start} jobs)", flush=True)
        return {"ingest": ingest_rate, "ingest_p50": pct(latencies, 50), "ingest_p99": pct(latencies, 99),
                "e2e": e2e_rate, "e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99)}

    # CPU accounting over the first phase, to see who is busy (and whether anything else on the machine is).
    worker_pids = [pid for w in workers for pid in [w.pid] + children_of(w.pid)]  # + RQ's scheduler process
    redis_pid = Redis.from_url(redis_url).info("server")["process_id"]
    groups = {"gunicorn": [web.pid] + children_of(web.pid), "workers": worker_pids, "receiver": [receiver.pid],
              "redis" if stack.redis else "redis (whole shared server)": [redis_pid]}
    if args.warm_up:
        # A new database's first events pay for connections, caches and compiled statements; on PostgreSQL,
        # then the statistics that autovacuum would have gathered by now (analyze_postgres).
        phase("warm-up", args.warm_up)
        if args.database_url:
            analyze_postgres(database_url)
            print("warm-up: ANALYZE (PostgreSQL)", flush=True)
    cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    web_cpu_before = {pid: cpu_seconds([pid]) for pid in groups["gunicorn"]}
    pg_before = {pid: cpu_seconds([pid]) for pid in postgres_backends(database_url)} if args.database_url else {}
    bench_before, busy_before, wall_before = sum(os.times()[:2]), machine_busy_seconds(), time.monotonic()

    one = phase(f"{args.endpoints} endpoint{'s' if args.endpoints > 1 else ''}", args.events)

    print(f"jobs run by the delivery workers so far: {jobs_run()}", flush=True)
    wall = time.monotonic() - wall_before
    used = {name: cpu_seconds(pids) - cpu_before[name] for name, pids in groups.items()}
    if args.database_url:  # backends that connected during the run count from 0
        used["postgres backends"] = sum(cpu_seconds([p]) - pg_before.get(p, 0) for p in postgres_backends(database_url))
    used["bench client"] = sum(os.times()[:2]) - bench_before
    used["rest of machine (kernel, other users)"] = machine_busy_seconds() - busy_before - sum(used.values())
    print(f"cpu over that phase ({wall:.1f} s wall x {os.cpu_count()} cpus): "
          + ", ".join(f"{name} {seconds:.1f} s ({100 * seconds / wall:.0f}%)" for name, seconds in used.items())
          # Each gunicorn process is bound by its GIL: one core at most, however many threads it has.
          + "; gunicorn by process (master first): "
          + ", ".join(f"{cpu_seconds([pid]) - seconds:.1f} s" for pid, seconds in web_cpu_before.items()), flush=True)

    # Latency when the pipeline is not saturated: a steady load at half the end-to-end rate just measured.
    half = one["e2e"] / 2
    steady = phase(f"1 endpoint at {half:.0f} events/s", max(20, int(half * 20)), rate=half)
    print(f"at half the end-to-end rate: accept-to-receipt p50 {steady['e2e_p50']:.0f} ms, "
          f"p99 {steady['e2e_p99']:.0f} ms", flush=True)

    worker_peaks: list[float] = []  # of each generation of workers, before it is stopped

    def stop_workers() -> None:
        nonlocal workers
        worker_peaks.extend(peak_rss_mib(pid) for pid in worker_pids)
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(60)
        stack.procs = [proc for proc in stack.procs if proc not in workers]
        workers = []

    def start_workers(label: str) -> None:
        nonlocal workers
        workers = [stack.spawn(f"worker{i}-{label}", flask + ["worker"], env) for i in range(args.workers)]

    def track_workers() -> None:
        """Count the new workers' CPU, with their RQ scheduler children (started by now)."""
        nonlocal worker_pids
        worker_pids = [pid for w in workers for pid in [w.pid] + children_of(w.pid)]
        groups["workers"] = worker_pids

    def ingest_alone(label: str, events: int) -> tuple[float, set[str], int]:
        """Ingest with the delivery workers stopped (as on a web dyno of its own): the web's own rate and
        CPU an event. Returns the rate, the accepted events' ids and their deliveries."""
        web_cpu_before, bench_before, wall_before = cpu_seconds(groups["gunicorn"]), sum(os.times()[:2]), time.monotonic()
        results = ingest(base, api_key, agent_id, events, args.concurrency)
        wall = time.monotonic() - wall_before
        web_cpu, bench_cpu = cpu_seconds(groups["gunicorn"]) - web_cpu_before, sum(os.times()[:2]) - bench_before
        accepted = [r for r in results if r["status"] == 202]
        rate = len(accepted) / (max(r["at"] for r in accepted) - min(r["sent"] for r in results))
        latencies = [(r["at"] - r["sent"]) * 1000 for r in accepted]
        print(f"[{label}] ingest with the delivery workers stopped: {rate:.0f} events/s, latency p50 "
              f"{pct(latencies, 50):.1f} ms p99 {pct(latencies, 99):.1f} ms; {rate / ceiling:.3f}x raw ceiling; cpu per "
              f"event: gunicorn {1000 * web_cpu / len(results):.2f} ms, bench client {1000 * bench_cpu / len(results):.2f} ms "
              f"({wall:.1f} s wall)", flush=True)
        return rate, {r["id"] for r in accepted}, sum(r["deliveries"] for r in accepted)

    def delivered(ids: set[str]) -> list[float]:
        """The receipt times of the deliveries of the events ``ids``, first to last."""
        return sorted(at for i, _, at in read_receipts(receipts) if i in ids)

    def all_delivered(ids: set[str], deliveries: int) -> bool:
        """Whether every delivery of the events ``ids`` has arrived (each event and path once: a repeat
        of one does not stand for another)."""
        return len({(i, path) for i, path, _ in read_receipts(receipts) if i in ids}) >= deliveries

    # Delivery capacity: the workers alone on a backlog (stopped while the events are accepted, then
    # started), from the first receipt to the last: what the delivery side can do without ingest beside it.
    stop_workers()
    alone, backlog_ids, backlog_deliveries = ingest_alone(f"backlog of {args.events}", args.events)
    overflows_before = listen_overflows()
    start_workers("again")
    wait_until(lambda: all_delivered(backlog_ids, backlog_deliveries), args.timeout, "the backlog to be delivered",
               stack)
    track_workers()
    times = delivered(backlog_ids)
    capacity = (len(times) - 1) / (times[-1] - times[0])
    print(f"[backlog of {len(backlog_ids)}] delivery capacity of {args.workers} workers: {capacity:.0f} deliveries/s "
          f"(first to last receipt {times[-1] - times[0]:.1f} s); {capacity / ceiling:.3f}x raw ceiling; "
          f"listen-queue overflows meanwhile: {listen_overflows() - overflows_before}", flush=True)

    if args.fanout_events:
        # Fan-out: every event to 10 endpoints.
        for i in range(args.endpoints, 10):
            api.post(f"{base}/api/v1/endpoints", json={"url": f"{hook}/{i}", "event_types": []},
                     timeout=10).raise_for_status()
        ten = phase("10 endpoints", args.fanout_events)
        print(f"fan-out: an event to 10 endpoints costs {one['ingest'] / ten['ingest']:.2f}x the ingest time of one "
              f"to {args.endpoints} (p50 latency {ten['ingest_p50'] / one['ingest_p50']:.2f}x), with the workers "
              f"delivering ten times as much on the same cores", flush=True)
        # The same with the workers stopped: what accepting an event for 10 endpoints costs the web itself.
        stop_workers()
        ten_alone, ten_ids, ten_deliveries = ingest_alone(f"{args.events} events to 10 endpoints", args.events)
        print(f"fan-out, the web alone: an event to 10 endpoints costs {alone / ten_alone:.2f}x the ingest time of one "
              f"to {args.endpoints}", flush=True)
        start_workers("after-fan-out")
        wait_until(lambda: all_delivered(ten_ids, ten_deliveries), args.timeout,
                   "the 10-endpoint backlog to be delivered", stack)
        track_workers()

        # A slow receiver (5 s) on one more endpoint that gets every 20th event: the others' rate beside it.
        # Phases of a few seconds vary by ±15 % on this kind of machine whatever they do, so the rate with it
        # is compared with a rate without it measured just before, in rounds, and the median ratio counts.
        slow = api.post(f"{base}/api/v1/endpoints", json={"url": f"{hook}/slow", "event_types": ["tool.executed"]},
                        timeout=10)
        slow.raise_for_status()
        ratios, slow_sent = [], 0
        for n in range(1, args.slow_rounds + 1):
            without = ten if n == 1 else phase(f"10 endpoints, round {n}", args.fanout_events)
            beside = phase(f"10 endpoints + a 5 s one, round {n}", args.fanout_events,
                           type_of=lambda seq: "tool.executed" if seq % 20 == 0 else "message.received",
                           expected_per_event=lambda r: 10, counts=lambda path: "/slow" not in path)
            ratios.append(beside["e2e"] / without["e2e"])
            # The next round starts once the slow receiver has answered this one's (they take a while).
            slow_sent += len(range(0, args.fanout_events, 20))
            wait_until(lambda: sum("/slow" in path for _, path, _ in read_receipts(receipts)) >= slow_sent,
                       args.timeout, "the slow receiver's deliveries", stack)
        print(f"slow receiver: the 10 fast endpoints got {statistics.median(ratios):.2f}x their rate without it "
              f"(median of {len(ratios)} rounds: " + ", ".join(f"{r:.2f}" for r in ratios) + ")", flush=True)
        api.delete(f"{base}/api/v1/endpoints/{slow.json()['id']}", timeout=30)

    if args.scale:
        from bench import scale

        endpoint_ids = [e["id"] for e in api.get(f"{base}/api/v1/endpoints?limit=100", timeout=30).json()["data"]]
        seconds = scale.load(database_url, tenant_id, agent_id, endpoint_ids, args.scale, days=args.scale_days)
        print(f"scale: loaded {args.scale:,} deliveries (and their events and attempts) over {args.scale_days:g} days "
              f"in {seconds:.0f} s", flush=True)
        if args.database_url:
            # Autovacuum analyzes a table that grew by 10 % within a minute; without it, the planner still
            # took the tables for the warm-up's few hundred rows and read the day's rows by sequential scans
            # (the overview 0.6 s, its two statements of a day's rows 250-380 ms each).
            analyze_postgres(database_url)
            print("scale: ANALYZE (PostgreSQL), as autovacuum would after the load", flush=True)
        page = scale.log_in(base, "bench@example.com", "benchmark-pw")
        filtered = f"status=failed&endpoint_id={endpoint_ids[0]}"
        # A filter that matches nothing reads the most without its index: a new agent, a type never sent.
        quiet_agent = api.post(f"{base}/api/v1/agents", json={"name": "quiet"}, timeout=30).json()["id"]
        raw_ms = 1000 / ceiling
        for label, session, path in (("/deliveries first page", page, "/deliveries"),
                                     ("/deliveries filtered", page, f"/deliveries?{filtered}"),
                                     ("GET /api/v1/deliveries first page", api, "/api/v1/deliveries"),
                                     ("GET /api/v1/deliveries filtered", api, f"/api/v1/deliveries?{filtered}"),
                                     ("/deliveries of an agent with none", page, f"/deliveries?agent_id={quiet_agent}"),
                                     ("GET /api/v1/deliveries of a type with none", api,
                                      "/api/v1/deliveries?event_type=conversation.ended"),
                                     # The dashboard's pages with the endpoints' 24-hour health.
                                     ("/ (overview)", page, "/"),
                                     ("/endpoints", page, "/endpoints"),
                                     ("/endpoints/<id>", page, f"/endpoints/{endpoint_ids[0]}"),
                                     # Each agent's count of events.
                                     ("/agents", page, "/agents"),
                                     # The latest conversations and runs (the loaded events have no run).
                                     ("/conversations", page, "/conversations")):
            t = scale.timings(session, base + path)
            print(f"scale: {label}: p50 {t['p50']:.1f} ms, p95 {t['p95']:.1f} ms ({t['bytes'] // 1024} KiB) at "
                  f"{args.scale:,} rows; p95 = {t['p95'] / raw_ms:.1f}x one raw post", flush=True)
        t = scale.walk_timings(api, f"{base}/api/v1/deliveries?{filtered}")
        print(f"scale: GET /api/v1/deliveries filtered, {t['pages']} pages one after another: p50 {t['p50']:.1f} ms, "
              f"p95 {t['p95']:.1f} ms at {args.scale:,} rows; p95 = {t['p95'] / raw_ms:.1f}x one raw post", flush=True)

    print(f"listen-queue overflows on the machine during the run: {listen_overflows() - overflows_at_start}",
          flush=True)
    gunicorn_workers = children_of(web.pid)
    print("peak RSS (VmHWM): gunicorn workers "
          + ", ".join(f"{peak_rss_mib(p):.0f} MiB" for p in gunicorn_workers)
          + f" (master {peak_rss_mib(web.pid):.0f} MiB); delivery workers "
          + ", ".join(f"{peak_rss_mib(w.pid):.0f} MiB" for w in workers)
          + " (before their restarts, with their schedulers: "
          + ", ".join(f"{peak:.0f} MiB" for peak in worker_peaks) + ")"
          + " (RQ scheduler children " + ", ".join(f"{peak_rss_mib(p):.0f} MiB" for p in worker_pids
                                                  if p not in {w.pid for w in workers}) + ")", flush=True)


if __name__ == "__main__":
    main()
