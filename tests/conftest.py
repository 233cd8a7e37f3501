"""Fixtures: a real database (SQLite by default, PostgreSQL when DATABASE_URL says so), a real Redis
(the machine's when REDIS_URL is set, else an embedded redis-server), a real worker process and real
HTTP receivers on 127.0.0.1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# The app under test and the worker process read the same environment: set it before importing the app.
_TMP = Path(tempfile.mkdtemp(prefix="agenthooks-tests-"))
os.environ["SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ["ALLOW_PRIVATE_DESTINATIONS"] = "1"  # receivers listen on 127.0.0.1
os.environ["DELIVERY_RETRY_SCHEDULE"] = "0.5,0.5,0.5"
os.environ["DELIVERY_TIMEOUT"] = "2"
# Every test client comes from 127.0.0.1 and Redis outlives a test: per-IP limits would add up across the
# suite. Tests of the limits set tight ones on app.config, with addresses and emails of their own.
for _limit in ("SIGNUP_RATE_LIMIT", "LOGIN_RATE_LIMIT", "LOGIN_IP_RATE_LIMIT"):
    os.environ[_limit] = "100000 per minute"
os.environ["AGENTHOOKS_INSTANCE_PATH"] = str(_TMP / "instance")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP / 'test.sqlite3'}")
os.environ.pop("AGENTHOOKS_ENV", None)

from webapp.embedded_redis import EmbeddedRedis, ensure_redis_url  # noqa: E402

_EMBEDDED_REDIS = ensure_redis_url()

from sqlalchemy import MetaData, delete  # noqa: E402

from webapp import ROOT, create_app  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.services.api_keys import create_key  # noqa: E402
from webapp.services.tenants import create_tenant  # noqa: E402
from webapp.tenancy import tenant_scope  # noqa: E402

from .helpers import ApiClient, csrf_token, wait_until  # noqa: E402
from .receiver import Receiver  # noqa: E402


def _migrate_from_empty() -> None:
    """Drop whatever a previous run left, then build the schema with the real migrations."""
    import flask_migrate

    app = create_app()
    with app.app_context():
        metadata = MetaData()
        metadata.reflect(db.engine)
        metadata.drop_all(db.engine)
        flask_migrate.upgrade()


@pytest.fixture(scope="session", autouse=True)
def _schema():
    _migrate_from_empty()
    yield


@pytest.fixture
def app():
    """A fresh app on an emptied database.

    No app context stays pushed around the test: Flask would reuse it for every request, and
    ``flask.g`` (the logged-in user, the CSRF token) would leak between requests and clients.
    Tests that touch the database directly open one: ``with app.app_context():`` or ``tenant.scope()``.
    """
    application = create_app({"TESTING": True})
    with application.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@dataclass
class TenantHandle:
    id: str
    api_key: str
    api: ApiClient
    app: object

    @contextmanager
    def scope(self):
        """An app context acting as this tenant, for tests that use the services or the database."""
        with self.app.app_context(), tenant_scope(self.id):
            yield


@pytest.fixture
def make_tenant(app):
    """Create a tenant (via the service the CLI uses) with an API key and an authenticated API client."""
    count = [0]

    def make(org: str | None = None) -> TenantHandle:
        count[0] += 1
        with app.app_context():
            tenant, _ = create_tenant(org or f"Org {count[0]}", f"owner{count[0]}@example.com",
                                      "correct horse battery")
            with tenant_scope(tenant.id):
                _, plaintext = create_key("test")
            db.session.commit()
            return TenantHandle(tenant.id, plaintext, ApiClient(app.test_client(), plaintext), app)

    return make


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("Acme")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def signup():
    """Sign up through the real form, CSRF token and all."""

    def do(client, org="Acme", email="ada@example.com", password="correct horse"):
        token = csrf_token(client.get("/signup").get_data(as_text=True))
        return client.post("/signup", data={"org": org, "email": email, "password": password, "csrf_token": token},
                           follow_redirects=True)

    return do


class WorkerProcess:
    """``flask --app webapp worker`` as a child process, as the Procfile runs it."""

    def __init__(self, name: str = "worker", env: dict | None = None):
        self.log_path = _TMP / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_start = start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "webapp", "worker"],
                                        cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: b"Listening on" in self.log_path.read_bytes()[start:] or self.process.poll() is not None,
                   timeout=30, message="the worker to start")
        assert self.process.poll() is None, self.log_path.read_text()

    def output(self) -> str:
        """What this run of the worker has logged so far."""
        return self.log_path.read_bytes()[self.log_start:].decode(errors="replace")

    def stop(self, sig=None, timeout: float = 30) -> int | None:
        """Stop the worker (SIGTERM unless ``sig`` says otherwise); return its exit code."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and hasattr(self, "log"):
            self.log.close()
        return self.process.returncode if self.process else None


_SHARED_WORKER: list = [None]


@pytest.fixture(scope="session")
def _worker_process():
    worker = WorkerProcess()
    worker.start()
    _SHARED_WORKER[0] = worker
    yield worker
    worker.stop()


@pytest.fixture
def worker(_worker_process, app):
    """A running worker (shared by the session) processing this test's deliveries."""
    assert _worker_process.process.poll() is None, "the worker died: see " + str(_worker_process.log_path)
    return _worker_process


class Stack:
    """A Redis server and workers of the test's own, to stop, kill and flush at will."""

    def __init__(self, app):
        self.redis = EmbeddedRedis().start()
        self.env = {"REDIS_URL": self.redis.url}  # add to it before start_worker() for other settings
        self.workers: list[WorkerProcess] = []
        app.config["REDIS_URL"] = self.redis.url
        app.extensions.pop("agenthooks_redis", None)

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(f"stack-worker-{len(self.workers)}", self.env)
        worker.start()
        self.workers.append(worker)
        return worker

    def stop_redis(self) -> None:
        self.redis.stop()

    def start_redis(self) -> None:
        self.redis = EmbeddedRedis(port=self.redis.port).start()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(signal.SIGKILL)
        self.redis.stop()


@pytest.fixture
def stack(app):
    """Own Redis and workers for fault injection. The session's shared worker is paused meanwhile:
    its sweep serves every tenant and would deliver what this test means to hold back."""
    shared = _SHARED_WORKER[0]
    if shared is not None:
        shared.stop()
    stack = Stack(app)
    yield stack
    stack.close()
    if shared is not None:
        shared.start()


def pytest_sessionfinish(session, exitstatus):
    if _EMBEDDED_REDIS is not None:
        _EMBEDDED_REDIS.stop()
