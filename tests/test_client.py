"""The agent-side client against a real server: the app served over HTTP on 127.0.0.1 (werkzeug, threaded),
with a TCP proxy in between that can drop a connection after the server has answered."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from agenthooks_client import AgentHooks, EventRejected, SendTimeout

from .helpers import make_agent, read_request


class LiveServer:
    """The app on a real port, served by werkzeug in a thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live(app):
    server = LiveServer(app)
    yield server
    server.close()


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 to ``port``. The first ``drop`` connections have their request forwarded and
    answered by the server, then are closed before the answer reaches the client; later ones are relayed."""

    def __init__(self, port: int, drop: int = 1):
        self.port, self.drop = port, drop
        self.dropped: list[bytes] = []  # the answers the client never saw
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket):
        upstream = socket.create_connection(("127.0.0.1", self.port))
        if len(self.dropped) < self.drop:
            upstream.sendall(read_request(client))
            answer = upstream.recv(65536)  # the server has handled the request: the event is stored
            self.dropped.append(answer)
            client.close()  # ... and the client never hears about it
            upstream.close()
            return
        pipes = [threading.Thread(target=self._pipe, args=pair, daemon=True)
                 for pair in ((client, upstream), (upstream, client))]
        for pipe in pipes:
            pipe.start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket):
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


class SilentServer:
    """Accepts connections and reads, but never answers."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self):
        self.listener.close()
        for conn in self.connections:
            conn.close()


def events_of(tenant, agent_id) -> list[dict]:
    return tenant.api.get(f"/api/v1/events?agent_id={agent_id}").json["data"]


def test_send_returns_the_accepted_event(live, tenant):
    agent = make_agent(tenant.api)
    hooks = AgentHooks(tenant.api_key, live.url, timeout=5)
    sent = hooks.send("tool.executed", agent_id=agent["id"], conversation_id="conv-1", run_id="run-1",
                      data={"tool": "search", "duration_ms": 12})
    assert sent.id.startswith("evt_") and sent.type == "tool.executed" and sent.deliveries == 0
    assert (sent.attempts, sent.replayed, sent.warnings) == (1, False, [])
    event = tenant.api.get(f"/api/v1/events/{sent.id}").json
    assert (event["conversation_id"], event["run_id"], event["data"]["tool"]) == ("conv-1", "run-1", "search")


def test_an_idempotent_retry_after_a_dropped_connection_creates_one_event(live, tenant):
    agent = make_agent(tenant.api)
    proxy = DroppingProxy(live.server.server_port, drop=1)
    try:
        hooks = AgentHooks(tenant.api_key, proxy.url, timeout=10, backoff=0.05)
        sent = hooks.send("message.sent", agent_id=agent["id"], data={"text": "hi"})
    finally:
        proxy.close()
    assert len(proxy.dropped) == 1 and proxy.dropped[0].startswith(b"HTTP/1.1 202")  # stored, answer lost
    assert sent.attempts == 2 and sent.replayed is True  # the retry got the first attempt's answer
    assert [e["id"] for e in events_of(tenant, agent["id"])] == [sent.id]


def test_concurrent_sends_with_one_idempotency_key_store_one_event(live, tenant):
    agent = make_agent(tenant.api)
    headers = {"Authorization": f"Bearer {tenant.api_key}", "Idempotency-Key": "order-42"}
    body = {"type": "message.sent", "agent_id": agent["id"], "data": {"text": "hi"}}
    start = threading.Barrier(6)
    answers = []

    def send():
        start.wait()
        answers.append(requests.post(f"{live.url}/api/v1/events", json=body, headers=headers, timeout=30))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One stored it (202); every other got its answer (200), whichever lost the race to the database.
    assert sorted(a.status_code for a in answers) == [200] * 5 + [202], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert [e["id"] for e in events_of(tenant, agent["id"])] == [answers[0].json()["id"]]


def test_retries_honour_retry_after_from_the_agents_budget(app, live, tenant):
    app.config.update(AGENT_EVENT_BUDGET=1, AGENT_EVENT_BUDGET_WINDOW=2)
    agent = make_agent(tenant.api)
    hooks = AgentHooks(tenant.api_key, live.url, timeout=10, backoff=0.05)
    first = hooks.send("message.sent", agent_id=agent["id"])
    started = time.monotonic()
    second = hooks.send("message.sent", agent_id=agent["id"])
    waited = time.monotonic() - started
    assert first.attempts == 1 and second.attempts >= 2 and second.id != first.id
    assert waited >= 0.9  # the 429's Retry-After (1 or 2 s), not the 0.05 s backoff
    assert len(events_of(tenant, agent["id"])) == 2


def test_a_retry_after_beyond_the_timeout_gives_up_at_once(app, live, tenant):
    app.config.update(AGENT_EVENT_BUDGET=1, AGENT_EVENT_BUDGET_WINDOW=30)
    agent = make_agent(tenant.api)
    hooks = AgentHooks(tenant.api_key, live.url, timeout=3)
    hooks.send("message.sent", agent_id=agent["id"])
    started = time.monotonic()
    with pytest.raises(SendTimeout) as caught:
        hooks.send("message.sent", agent_id=agent["id"], idempotency_key="loop-1")
    assert time.monotonic() - started < 1
    assert caught.value.last_status == 429 and caught.value.attempts == 1
    assert caught.value.idempotency_key == "loop-1"


def test_a_rejected_event_is_not_retried_and_carries_the_violations(live, tenant):
    agent = make_agent(tenant.api)
    hooks = AgentHooks(tenant.api_key, live.url, timeout=5)
    with pytest.raises(EventRejected) as caught:
        hooks.send("message.received", agent_id=agent["id"], data={"text": 5, "attachments": "none"})
    error = caught.value
    assert (error.status, error.code, error.attempts) == (422, "validation_failed", 1)
    assert [d["path"] for d in error.details] == ["$.data.attachments", "$.data.text"]
    assert hooks.validate("message.received", agent_id=agent["id"], data={"text": "ok"}) == []
    with pytest.raises(EventRejected):
        AgentHooks("ahk_" + "x" * 40, live.url, timeout=5).send("message.sent", agent_id=agent["id"])
    assert events_of(tenant, agent["id"]) == []


def test_a_silent_server_never_blocks_the_agent_past_the_timeout():
    server = SilentServer()
    try:
        hooks = AgentHooks("ahk_" + "x" * 40, server.url, timeout=1.0, backoff=0.05)
        started = time.monotonic()
        with pytest.raises(SendTimeout) as caught:
            hooks.send("message.sent", agent_id="agt_x")
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert elapsed < 1.5, elapsed
    assert caught.value.last_status is None and caught.value.last_error == "timeout"


def test_a_refused_connection_is_retried_until_the_timeout():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    hooks = AgentHooks("ahk_" + "x" * 40, f"http://127.0.0.1:{port}", timeout=1.0, backoff=0.05)
    started = time.monotonic()
    with pytest.raises(SendTimeout) as caught:
        hooks.send("message.sent", agent_id="agt_x")
    assert time.monotonic() - started < 1.5
    assert caught.value.attempts > 1 and caught.value.last_error.startswith("connection error")
