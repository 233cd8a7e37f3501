"""What one ingest costs the web's processes under gunicorn, against what gunicorn alone costs a request, for a few
process × thread shapes: where the web's CPU an event goes between the server, the app and their concurrency.

    .venv/bin/python bench/web_cost.py [--shapes 1x1,4x2] [--seconds 6]

For each shape it starts gunicorn twice on the Procfile's settings (webapp/gunicorn_conf.py, gthread workers):
once with a WSGI app that only reads the body and answers 202 (gunicorn's own work: parsing, the socket, the
threads), once with the product (SQLite in a temporary folder, the Redis of REDIS_URL or an embedded one,
an agent with one endpoint that nothing delivers to, as no worker runs). 8 keep-alive http.client clients
POST the benchmark's ~1 KiB event for --seconds; it prints requests/s and the gunicorn processes' CPU (user +
system) per request. Compare with `bench/cost.py ingest`, the app's own instructions in one thread.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import (PAYLOAD_DATA, ROOT, Stack, _stdlib_poster, children_of, cpu_seconds,  # noqa: E402
                        free_port, wait_until)

CLIENTS = 8


def trivial_app(environ, start_response):
    """gunicorn's floor: read the request, answer as the API does, nothing else."""
    environ["wsgi.input"].read()
    body = b'{"id":"evt_x","type":"message.received","deliveries":1}'
    start_response("202 ACCEPTED", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def load(port: int, seconds: float, body: bytes, api_key: str, gunicorn_pids: list[int]) -> tuple[float, float]:
    """Requests/s and the gunicorn processes' CPU ms per request, over ``seconds`` of CLIENTS clients, each on
    its own keep-alive connection (the benchmark's http.client poster)."""
    counts, failures, stop = [], [], time.monotonic() + seconds

    def client() -> None:
        send, done = _stdlib_poster(f"http://127.0.0.1:{port}", api_key), 0
        while time.monotonic() < stop:
            status, _ = send(body)
            if status != 202:
                failures.append(status)
                break
            done += 1
        counts.append(done)

    cpu_before, started = cpu_seconds(gunicorn_pids), time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.monotonic() - started, cpu_seconds(gunicorn_pids) - cpu_before
    if failures:
        raise SystemExit(f"the web answered {failures[0]}")
    return sum(counts) / elapsed, 1000 * cpu / sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1x1,4x2", help="processes x threads, comma-separated")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agenthooks-webcost-"))
    stack = Stack(tmp)
    try:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            sys.path.insert(0, str(ROOT))
            from webapp.embedded_redis import EmbeddedRedis
            stack.redis = EmbeddedRedis().start()
            redis_url = stack.redis.url
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTHOOKS_", "FLASK_", "WEB_"))}
        env.update(SECRET_KEY="bench-secret-key", ALLOW_PRIVATE_DESTINATIONS="1", REDIS_URL=redis_url,
                   DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}", LOG_LEVEL="WARNING", AGENT_EVENT_BUDGET="0",
                   AGENTHOOKS_INSTANCE_PATH=str(tmp / "instance"), PYTHONPATH=str(Path(__file__).resolve().parent))
        flask = [sys.executable, "-m", "flask", "--app", "webapp"]
        subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        made = subprocess.run(flask + ["tenant", "create", "--org", "Bench", "--email", "bench@example.com",
                                       "--password", "benchmark-pw", "--json"],
                              cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        api_key, agent_id = json.loads(made.stdout.strip().splitlines()[-1])["api_key"], None
        for shape in args.shapes.split(","):
            processes, threads = (int(n) for n in shape.split("x"))
            shape_env = {**env, "WEB_CONCURRENCY": str(processes), "WEB_THREADS": str(threads),
                         "GUNICORN_CMD_ARGS": "--worker-class gthread"}  # one thread would pick sync: no keep-alive
            figures = []
            for app in ("web_cost:trivial_app", "webapp:create_app()"):
                port = free_port()
                web = stack.spawn(f"web-{shape}", [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py",
                                                   "--bind", f"127.0.0.1:{port}", app], shape_env)

                def up() -> bool:
                    try:
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                        connection.request("GET", "/api/v1/openapi.json")
                        return connection.getresponse().status < 500
                    except OSError:
                        return False

                wait_until(up, 60, "gunicorn", stack)
                wait_until(lambda: len(children_of(web.pid)) == processes, 60, "gunicorn's workers", stack)
                if agent_id is None and app != "web_cost:trivial_app":
                    agent_id = _agent(port, api_key)
                body = json.dumps({"type": "message.received", "agent_id": agent_id or "agt_x",
                                   "conversation_id": "conv-1", "user": {"id": "u-1", "email": "a@example.com",
                                                                         "name": "Ada"},
                                   "data": PAYLOAD_DATA}).encode()  # the event bench/throughput.py sends
                load(port, 1.0, body, api_key, [])  # warm-up: imports, connections, statement caches
                figures.append(load(port, args.seconds, body, api_key, [web.pid, *children_of(web.pid)]))
                stack.procs.remove(web)
                web.terminate()
                web.wait(15)
            (floor_rate, floor_cpu), (rate, cpu) = figures
            print(f"{processes} x {threads}: gunicorn alone {floor_rate:.0f} requests/s, {floor_cpu:.2f} ms CPU a "
                  f"request; the product {rate:.0f} events/s, {cpu:.2f} ms CPU an event "
                  f"({cpu - floor_cpu:.2f} ms above gunicorn's own)", flush=True)
    finally:
        stack.stop()


def _agent(port: int, api_key: str) -> str:
    """An agent, and one endpoint so that each event makes a delivery (nothing delivers it)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/api/v1/agents", json.dumps({"name": "Bench agent"}), headers)
    agent = json.loads(connection.getresponse().read())
    connection.request("POST", "/api/v1/endpoints", json.dumps({"url": "http://127.0.0.1:9/hook"}), headers)
    connection.getresponse().read()
    return agent["id"]


if __name__ == "__main__":
    main()
