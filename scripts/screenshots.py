"""Fill a tenant with demo data and save PNG screenshots of every main page of the dashboard.

    .venv/bin/python scripts/screenshots.py [outdir]      # default outdir: instance/screenshots

Everything runs from a temporary directory and stops on exit: SQLite, an embedded Redis, the web
(gunicorn) and a worker, as `scripts/run` starts them, plus three receivers on 127.0.0.1 (one that
answers 200, one that fails now and then, and one that is down). The last day of history (a few
hundred deliveries with their attempts) is written straight into the database, backdated; the newest
events go through the real ingest API and worker. Chromium (/usr/bin/chromium, driven by Playwright)
then logs in and photographs each page at desktop width, and the overview and the delivery log at
phone width too. Every PNG goes to outdir; the two the README shows (overview.png, deliveries.png)
are also copied to docs/screenshots/, so one run keeps the README current.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's webapp, as the child processes (cwd ROOT) import it

import requests
from sqlalchemy import select

from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import Attempt, Delivery, Endpoint, Event, utcnow
from webapp.services import tallies
from webapp.services.endpoints import disable, get_endpoint, signing_secrets
from webapp.services.events import isoformat
from webapp.signing import signature_header
from webapp.tenancy import current_tenant_id, tenant_scope

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
EMAIL, PASSWORD = "ada@acme-robotics.example", "correct horse battery"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
random.seed(7)  # the same demo every run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(message: str) -> None:
    print(f"screenshots: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- receivers on 127.0.0.1
def start_receiver(fail_ratio: float, slow_ms: tuple[int, int]) -> str:
    """A receiver that answers 200 (after a little while), or 503 for ``fail_ratio`` of the requests."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(random.uniform(*slow_ms) / 1000)
            failed = random.random() < fail_ratio
            body = b'{"error": "upstream unavailable"}' if failed else b'{"received": true}'
            self.send_response(503 if failed else 200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


# ---------------------------------------------------------------- the product
class Product:
    """The web and a worker as child processes, on a temporary SQLite and an embedded Redis."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.children: list[subprocess.Popen] = []
        os.environ.update({
            "SECRET_KEY": secrets.token_urlsafe(32),
            "AGENTHOOKS_INSTANCE_PATH": str(directory / "instance"),
            "DATABASE_URL": f"sqlite:///{directory / 'demo.sqlite3'}",
            "ALLOW_PRIVATE_DESTINATIONS": "1",
            # One quick retry, then a long wait: the endpoint that is down shows as retrying.
            "DELIVERY_RETRY_SCHEDULE": "1,3600",
            "DELIVERY_TIMEOUT": "3",
            "LOG_LEVEL": "WARNING",
        })
        os.environ.pop("REDIS_URL", None)
        os.environ.pop("AGENTHOOKS_ENV", None)
        from webapp.embedded_redis import ensure_redis_url
        self.redis = ensure_redis_url()

    def start(self) -> None:
        import flask_migrate

        from webapp import create_app
        from webapp.extensions import db

        self.app = create_app()
        with self.app.app_context():
            flask_migrate.upgrade()
            db.engine.dispose()
        self.log = log = open(self.directory / "product.log", "ab")  # noqa: SIM115 (the children write to it until stop())
        self.children.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py", "--bind", f"127.0.0.1:{self.port}",
             "--log-level", "warning", "webapp:create_app()"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        self.children.append(subprocess.Popen([sys.executable, "-m", "flask", "--app", "webapp", "worker"],
                                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/login", timeout=5)
                return
            except requests.RequestException:  # not listening yet, or still loading the app
                time.sleep(0.2)
        raise RuntimeError(f"the web did not start; see {self.directory / 'product.log'}")

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        if self.redis:
            self.redis.stop()
        if getattr(self, "log", None):
            self.log.close()


# ---------------------------------------------------------------- demo data
AGENTS = [("Support bot", "Answers customer tickets in the help widget."),
          ("Sales assistant", "Qualifies leads and books demos."),
          ("Research agent", "Runs long web research tasks.")]
TYPES = ["message.received", "message.sent", "tool.executed", "conversation.started", "conversation.ended",
         "user.signed_up", "credits.purchased", "error.occurred"]
TYPE_WEIGHTS = [30, 30, 18, 8, 7, 3, 2, 2]


def event_data(event_type: str, n: int) -> dict:
    return {
        "message.received": {"text": random.choice(["Where is my order A-1042?", "Can I change my plan?",
                                                    "The export fails with a 500", "hello"])},
        "message.sent": {"text": random.choice(["Your order shipped yesterday.", "Sure: Settings › Billing.",
                                                "I've opened a ticket for the export issue."])},
        "tool.executed": {"tool": random.choice(["search_orders", "lookup_customer", "create_ticket"]),
                          "duration_ms": random.randint(80, 1400), "output": {"status": "ok"}},
        "conversation.started": {"channel": random.choice(["web", "slack", "email"])},
        "conversation.ended": {"reason": random.choice(["resolved", "abandoned"]), "messages": random.randint(2, 30)},
        "user.signed_up": {"plan": "free"},
        "credits.purchased": {"credits": 500, "amount": 19.0, "currency": "USD"},
        "error.occurred": {"code": "tool_timeout", "message": "search_orders timed out"},
    }[event_type] | {"seq": n}


def create_tenant(product: Product) -> tuple[str, str]:
    from webapp.services.api_keys import create_key
    from webapp.services.tenants import create_tenant as create

    with product.app.app_context():
        tenant, _ = create("Acme Robotics", EMAIL, PASSWORD)
        with tenant_scope(tenant.id):
            create_key("Production agents")
            _, key = create_key("Staging")
            db.session.commit()
        return tenant.id, key


def api(product: Product, key: str, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{product.url}/api/v1{path}", json=body, timeout=10,
                                headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()
    return response.json()


def backfill(product: Product, tenant_id: str, agents: list[dict], endpoints: list[dict], hours: int = 24) -> int:
    """Write a day of realistic history straight into the database: events, deliveries, attempts."""
    now = utcnow()
    count = 0
    with product.app.app_context(), tenant_scope(tenant_id):
        rows = {e.id: e for e in db.session.scalars(select(Endpoint))}
        signing = {e_id: signing_secrets(e) for e_id, e in rows.items()}
        for hour in range(hours, 0, -1):
            # Busier in the (UTC) working day, quieter at night.
            moment_hour = now - timedelta(hours=hour)
            base = 14 if 8 <= moment_hour.hour <= 18 else 5
            for _ in range(random.randint(base - 3, base + 4)):
                at = moment_hour + timedelta(seconds=random.uniform(0, 3600))
                if at > now - timedelta(minutes=10):
                    continue  # the last minutes are the live events' own
                event_type = random.choices(TYPES, TYPE_WEIGHTS)[0]
                agent = random.choice(agents)
                event_id = new_id("evt", at)
                body = json.dumps({"id": event_id, "type": event_type, "timestamp": isoformat(at),
                                   "agent": {"id": agent["id"], "name": agent["name"]},
                                   "conversation_id": f"conv-{random.randint(100, 999)}", "user": {"id": "u-7"},
                                   "data": event_data(event_type, count)}, separators=(",", ":"))
                db.session.add(Event(id=event_id, type=event_type, agent_id=agent["id"], occurred_at=at,
                                     received_at=at, body=body))
                for endpoint in endpoints:
                    if endpoint["event_types"] and event_type not in endpoint["event_types"]:
                        continue
                    add_delivery(endpoint, event_id, event_type, agent["id"], at, body, signing[endpoint["id"]],
                                 now, recent=hour <= 1)
                    count += 1
        db.session.commit()
    return count


def add_delivery(endpoint: dict, event_id: str, event_type: str, agent_id: str, at, body: str, keys: list[str], now,
                 recent: bool) -> None:
    """One delivery with its attempts, as the worker would have left it."""
    profile = endpoint["profile"]
    outcomes = []  # (status, error, duration)
    if profile == "down":
        outcomes = [(None, "connection refused", random.randint(1, 4))] * 2
    else:
        fail_ratio = 0.12 if profile == "flaky" else 0.004
        while True:
            failed = random.random() < fail_ratio
            duration = int(random.lognormvariate(5.0 if profile == "flaky" else 4.3, 0.5))
            outcomes.append((503 if failed else 200, None, duration))
            if not failed or len(outcomes) == 3:
                break
    delivery_id = new_id("dlv", at)
    final_ok = outcomes[-1][0] == 200
    status = "succeeded" if final_ok else ("retrying" if recent else "failed")
    started = at + timedelta(milliseconds=random.randint(20, 300))
    attempts = []
    for number, (code, error, duration) in enumerate(outcomes):
        timestamp = int(started.timestamp())
        headers = {"content-type": "application/json", "user-agent": "AgentHooks/0.1.0", "webhook-id": event_id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": signature_header(event_id, timestamp, body, keys)}
        attempts.append(Attempt(id=new_id("att", started), delivery_id=delivery_id, endpoint_id=endpoint["id"],
                                trigger="scheduled",
                                started_at=started, duration_ms=duration, response_status=code, error=error,
                                response_body=None if code is None else ('{"received": true}' if code == 200 else
                                                                         '{"error": "upstream unavailable"}'),
                                request_headers=headers))
        last = started
        started = started + timedelta(seconds=1 if number == 0 else 3600)
        if started > now:
            break
    done = attempts[-1]
    db.session.add(Delivery(
        id=delivery_id, event_id=event_id, endpoint_id=endpoint["id"], event_type=event_type, agent_id=agent_id,
        status=status, attempt_count=len(attempts), last_attempt_at=last, last_response_status=done.response_status,
        last_error=done.error, next_attempt_at=now + timedelta(minutes=40) if status == "retrying" else None,
        created_at=at, updated_at=last))
    db.session.flush()
    db.session.add_all(attempts)
    db.session.flush()
    tallies.add(db.session.connection(), current_tenant_id(), [vars(attempt) for attempt in attempts])


def fill(product: Product) -> dict:
    """A tenant with agents, custom types, endpoints (one of them down, one disabled), history and live events."""
    tenant_id, key = create_tenant(product)
    agents = [api(product, key, "POST", "/agents", {"name": n, "description": d}) for n, d in AGENTS]
    ok, flaky = start_receiver(0.0, (15, 120)), start_receiver(0.15, (80, 700))
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    specs = [
        (ok + "/webhooks/agenthooks", "Production: the help desk backend", [], "ok"),
        (flaky + "/hooks/analytics", "Analytics pipeline (flaky on purpose)", ["message.received", "message.sent",
                                                                              "tool.executed"], "flaky"),
        (down + "/crm/webhook", "CRM sync (its server is down)", ["user.signed_up", "credits.purchased",
                                                                  "conversation.started"], "down"),
    ]
    endpoints = []
    for url, description, types, profile in specs:
        endpoint = api(product, key, "POST", "/endpoints", {"url": url, "description": description,
                                                            "event_types": types})
        endpoints.append(endpoint | {"profile": profile})
    # An endpoint that answered 410 Gone once, and was disabled for it.
    gone = api(product, key, "POST", "/endpoints", {"url": "https://legacy.acme-robotics.example/hooks",
                                                    "description": "Old Zapier hook", "event_types": ["error.occurred"]})
    with product.app.app_context(), tenant_scope(tenant_id):
        disable(get_endpoint(gone["id"]), "The endpoint answered 410 Gone on 2026-11-25T09:14:02Z.")
        db.session.commit()
    history = backfill(product, tenant_id, agents, endpoints)
    say(f"backfilled {history} deliveries over the last 24 hours")

    # The newest ones for real: through the ingest API, the queue and the worker.
    sent = 0
    for n in range(12):
        event_type = random.choices(TYPES, TYPE_WEIGHTS)[0]
        agent = random.choice(agents)
        api(product, key, "POST", "/events", {"type": event_type, "agent_id": agent["id"],
                                              "conversation_id": f"conv-{random.randint(100, 999)}",
                                              "user": {"id": "u-7", "email": "ada@example.com", "name": "Ada"},
                                              "data": event_data(event_type, n)})
        sent += 1
        time.sleep(0.3)
    wait_for_worker(product, key)
    say(f"sent {sent} events through the API")
    return {"tenant_id": tenant_id, "key": key, "endpoints": endpoints, "agents": agents}


def wait_for_worker(product: Product, key: str, timeout: float = 60) -> None:
    """Until no delivery is pending (the one endpoint that is down stays retrying)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not api(product, key, "GET", "/deliveries?status=pending")["data"]:
            time.sleep(2.5)  # the first retry of the endpoint that is down
            return
        time.sleep(0.5)
    say("warning: some deliveries are still pending")


# ---------------------------------------------------------------- the photographs
def photograph(product: Product, demo: dict, outdir: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=DESKTOP, device_scale_factor=1, color_scheme="light")
        page = context.new_page()
        page.goto(product.url + "/login")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(product.url + "/")

        def shoot(name: str, path: str, *, full_page: bool = True, target=None) -> None:
            (target or page).goto(product.url + path)
            (target or page).wait_for_load_state("networkidle")
            file = outdir / f"{name}.png"
            (target or page).screenshot(path=str(file), full_page=full_page)
            saved.append(file)
            say(f"saved {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")

        flaky = next(e for e in demo["endpoints"] if e["profile"] == "flaky")
        shoot("overview", "/")
        shoot("agents", "/agents")
        shoot("endpoints", "/endpoints")
        shoot("endpoint", f"/endpoints/{flaky['id']}")
        shoot("event-types", "/event-types")
        shoot("keys", "/keys")
        shoot("deliveries", "/deliveries", full_page=False)
        retried = api(product, demo["key"], "GET", f"/deliveries?endpoint_id={flaky['id']}&status=succeeded&limit=100")
        detail = next((d for d in retried["data"] if d["attempt_count"] > 1), retried["data"][0])
        shoot("delivery", f"/deliveries/{detail['id']}")

        # A tenant that has just signed up and registered an agent: the first-event walkthrough.
        newcomer = browser.new_context(viewport=DESKTOP)
        fresh = newcomer.new_page()
        sign_up(fresh, product.url)
        fresh.goto(product.url + "/agents/new")
        fresh.get_by_label("Name").fill("Support bot")
        fresh.get_by_role("button", name="Save agent").click()
        fresh.wait_for_url(product.url + "/agents")
        shoot("first-event", "/", target=fresh)

        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        phone.add_cookies(context.cookies())
        on_phone = phone.new_page()
        shoot("deliveries-phone", "/deliveries", full_page=False, target=on_phone)
        shoot("overview-phone", "/", target=on_phone)
        browser.close()
    return saved


def sign_up(page, url: str) -> None:
    page.goto(url + "/signup")
    page.get_by_label("Organization").fill("Newcomer Labs")
    page.get_by_label("Email").fill("grace@newcomer.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(url + "/")


README_SHOTS = ROOT / "docs" / "screenshots"
README_NAMES = ("overview.png", "deliveries.png")


def main(argv: list[str]) -> int:
    outdir = (Path(argv[0]) if argv else ROOT / "instance" / "screenshots").resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    if not Path(CHROMIUM).exists():
        say(f"{CHROMIUM} is missing: apt-get install chromium")
        return 1
    directory = Path(tempfile.mkdtemp(prefix="agenthooks-screenshots-"))
    product = Product(directory)
    try:
        product.start()
        say(f"the product runs at {product.url} (data in {directory})")
        demo = fill(product)
        saved = photograph(product, demo, outdir)
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        for file in saved:
            if file.name in README_NAMES and file.parent != README_SHOTS:
                shutil.copyfile(file, README_SHOTS / file.name)
                say(f"copied {file.name} to {README_SHOTS.relative_to(ROOT)}/ for the README")
    finally:
        product.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
