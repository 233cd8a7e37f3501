"""SSRF: hostile destinations are refused when saved or when delivered to, and none reaches a listener.

Every test here runs with ALLOW_PRIVATE_DESTINATIONS off for the app and the sender. The shared worker
fixture allows private destinations (the other tests' receivers listen on 127.0.0.1), so deliveries here
run in-process (``jobs.delivery.deliver``) or in a worker of their own, on a Redis database of their own.
A tripwire makes sure no test, even a failing one, ever opens a connection beyond this machine.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from jobs import sender
from webapp import ROOT, destinations
from webapp.crypto import encrypt, new_signing_secret
from webapp.extensions import db
from webapp.models import Attempt, Delivery, Endpoint, Event, utcnow

from .helpers import wait_until
from .receiver import Receiver, Reply

PUBLIC = "93.184.215.14"  # a public address: refused by the tripwire, never contacted


def _is_local(address) -> bool:
    try:
        ip = ipaddress.ip_address(address[0].split("%")[0])
    except (ValueError, TypeError, IndexError):
        return True  # a Unix socket
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return ip.is_loopback or ip.is_unspecified


@pytest.fixture(autouse=True)
def tripwire(monkeypatch):
    """Refuse, as if nothing listened, any connection this test would open beyond this machine."""
    real_connect = socket.socket.connect
    attempts = []

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            attempts.append(address)
            raise ConnectionRefusedError(f"tripwire: a test tried to reach {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.fixture
def strict(app):
    """The app as in production: internal destinations refused; one attempt, no retries."""
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = False
    app.config["DELIVERY_RETRY_SCHEDULE"] = []
    return app


@pytest.fixture
def listener():
    """A listener on 127.0.0.1 that no test here may ever reach."""
    server = Receiver()
    yield server
    server.close()


def hostile_urls(port: int) -> list[str]:
    """Destinations refused as soon as they are saved: the address is plain from the URL alone."""
    return [
        f"http://127.0.0.1:{port}/hook",
        f"http://127.1:{port}/hook",                       # short dotted form
        f"http://2130706433:{port}/hook",                  # decimal
        f"http://0x7f000001:{port}/hook",                  # hexadecimal
        f"http://0x7f.1:{port}/hook",                      # mixed hexadecimal
        f"http://017700000001:{port}/hook",                # octal
        f"http://0177.0.0.1:{port}/hook",                  # dotted octal
        f"http://127.000.000.001:{port}/hook",             # zero-padded
        f"http://127.0.0.1.:{port}/hook",                  # trailing dot
        f"http://0.0.0.0:{port}/hook",                     # unspecified (Linux connects it to loopback)
        f"http://0:{port}/hook",
        f"http://[::1]:{port}/hook",
        f"http://[::]:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",          # IPv4-mapped
        f"http://[::ffff:7f00:1]:{port}/hook",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/hook",
        f"http://[::127.0.0.1]:{port}/hook",               # IPv4-compatible
        f"http://[64:ff9b::127.0.0.1]:{port}/hook",        # NAT64
        f"http://[2002:7f00:1::]:{port}/hook",             # 6to4
        f"http://localhost:{port}/hook",
        f"http://LOCALHOST.:{port}/hook",
        f"http://app.localhost:{port}/hook",
        f"http://ｌｏｃａｌｈｏｓｔ:{port}/hook",             # full-width letters fold to localhost
        f"http://127。0。0。1:{port}/hook",                  # ideographic full stops
        f"http://intranet:{port}/hook",                    # a single-label name: search domains, intranets
        "http://169.254.169.254/latest/meta-data/",        # AWS, GCP, Azure, OpenStack metadata
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",     # the same, IPv4-mapped
        "http://[fd00:ec2::254]/latest/meta-data/",        # AWS metadata over IPv6
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",        # Alibaba Cloud metadata (CGNAT range)
        "http://100.64.0.1/",                              # CGNAT
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://224.0.0.1/",                               # multicast
        "http://255.255.255.255/",                         # broadcast
        "http://240.0.0.1/",                               # reserved
        "http://[fe80::1%25eth0]/",                        # link-local with a zone
        "http://[fc00::1]/",                               # unique local
        "http://[ff02::1]/",                               # IPv6 multicast
        f"gopher://127.0.0.1:{port}/_",                    # not http(s)
        "file:///etc/passwd",
        f"http://user:secret@127.0.0.1:{port}/hook",
    ]


def add_delivery(url: str) -> str:
    """An endpoint at ``url`` saved as an earlier, permissive configuration would have, and one delivery
    due to it. Written directly: ingest would queue a job for the shared (permissive) worker."""
    now = utcnow()
    endpoint = Endpoint(url=url, secret_encrypted=encrypt(new_signing_secret()), event_types=[], agent_ids=[],
                        enabled=True)
    event = Event(type="message.sent", occurred_at=now, body='{"hello": "world"}')
    db.session.add_all([endpoint, event])
    db.session.flush()
    # enqueued_at = now: the sweep leaves it alone while the test attempts it.
    delivery = Delivery(event_id=event.id, endpoint_id=endpoint.id, event_type=event.type, next_attempt_at=now,
                        enqueued_at=now)
    db.session.add(delivery)
    db.session.commit()
    return delivery.id


def deliver_in_process(tenant, delivery_id: str) -> Attempt:
    from jobs.delivery import deliver

    deliver(tenant.id, delivery_id)
    with tenant.scope():
        return db.session.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id)).one()


def test_hostile_urls_are_refused_when_saved_and_again_when_delivered(strict, tenant, listener):
    urls = hostile_urls(listener.server.server_address[1])
    assert len(urls) >= 25
    for url in urls:
        response = tenant.api.post("/api/v1/endpoints", json={"url": url})
        assert response.status_code == 422, (url, response.json)
        assert response.json["error"]["message"].startswith("url: "), url

    # An endpoint saved before (or behind the operator's back) is refused at every delivery all the same.
    with tenant.scope():
        delivery_ids = {url: add_delivery(url) for url in urls}
    for url, delivery_id in delivery_ids.items():
        with strict.app_context():
            attempt = deliver_in_process(tenant, delivery_id)
        assert attempt.error.startswith("destination refused: "), (url, attempt.error)
        assert attempt.response_status is None
    with tenant.scope():
        statuses = set(db.session.scalars(select(Delivery.status)))
    assert statuses == {"failed"}
    assert listener.requests == []


def test_the_connection_guard_alone_refuses_them(listener, monkeypatch):
    """Even with the URL checks out of the way, the connection refuses every internal address it resolves."""
    monkeypatch.setattr(destinations, "check", lambda *args, **kwargs: None)
    port = listener.server.server_address[1]
    reaches_a_resolver = [url for url in hostile_urls(port) if url.startswith("http://") and "@" not in url]
    # Names this machine's resolver does not know (no DNS here): nothing to connect to, so nothing to refuse.
    unresolved = ("127.0.0.1.:", "LOCALHOST.:", "app.localhost", "ｌｏｃａｌｈｏｓｔ", "127。0。0。1", "intranet",
                  "metadata.google.internal")
    for url in reaches_a_resolver:
        outcome = sender.post(url, "{}", {"content-type": "application/json"}, timeout=2, allow_private=False)
        assert outcome.response_status is None and outcome.error, url
        if not any(name in url for name in unresolved):
            assert outcome.error.startswith("destination refused: resolves to an internal address"), (url, outcome.error)
    assert len(reaches_a_resolver) - len(unresolved) >= 25
    assert listener.requests == []


def test_the_system_resolver_is_checked_at_connection_time(listener, monkeypatch):
    """``localhost`` resolved by the machine's own resolver (/etc/hosts), not by a name rule."""
    monkeypatch.setattr(destinations, "check", lambda *args, **kwargs: None)
    port = listener.server.server_address[1]
    outcome = sender.post(f"http://localhost:{port}/hook", "{}", {}, timeout=2, allow_private=False)
    assert outcome.error == "destination refused: resolves to an internal address (127.0.0.1)"
    assert listener.requests == []


class FakeDNS:
    """A resolver that answers from a script, per name: a list of answers (the last one repeats)."""

    def __init__(self, monkeypatch, answers: dict[str, list[list[str]]]):
        self.answers = answers
        self.calls: list[str] = []
        self.real = destinations.resolve
        monkeypatch.setattr(destinations, "resolve", self)

    def __call__(self, host: str, port: int):
        if host not in self.answers:
            return self.real(host, port)
        self.calls.append(host)
        script = self.answers[host]
        addresses = script.pop(0) if len(script) > 1 else script[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, (a, port, 0, 0) if ":" in a else (a, port))
                for a in addresses]


def test_dns_rebinding_is_refused_at_delivery(strict, tenant, listener, monkeypatch):
    port = listener.server.server_address[1]
    dns = FakeDNS(monkeypatch, {
        "rebind.example.com": [[PUBLIC], ["127.0.0.1"]],           # public when saved, loopback later
        "mapped.example.com": [[PUBLIC], ["::ffff:127.0.0.1"]],    # loopback in IPv6 clothing
        "later.example.com": [[], ["127.0.0.1"]],                  # no answer when saved, loopback later
        "metadata.example.com": [[PUBLIC], ["169.254.169.254"]],
    })
    for host, internal in (("rebind", "127.0.0.1"), ("mapped", "::ffff:127.0.0.1"), ("later", "127.0.0.1"),
                           ("metadata", "169.254.169.254")):
        url = f"http://{host}.example.com:{port}/hook"
        assert tenant.api.post("/api/v1/endpoints", json={"url": url}).status_code == 201, url
        with tenant.scope():
            delivery_id = add_delivery(url)
        with strict.app_context():
            attempt = deliver_in_process(tenant, delivery_id)
        assert attempt.error == f"destination refused: resolves to an internal address ({internal})", url
    assert listener.requests == [] and dns.calls


def test_one_internal_answer_among_public_ones_is_refused(strict, tenant, listener, monkeypatch):
    port = listener.server.server_address[1]
    FakeDNS(monkeypatch, {"multi.example.com": [[PUBLIC, "127.0.0.1"]]})
    response = tenant.api.post("/api/v1/endpoints", json={"url": f"http://multi.example.com:{port}/"})
    assert response.status_code == 422
    assert response.json["error"]["message"] == "url: resolves to an internal address (127.0.0.1)"
    outcome = sender.post(f"http://multi.example.com:{port}/", "{}", {}, timeout=2, allow_private=False)
    assert outcome.error == "destination refused: resolves to an internal address (127.0.0.1)"
    assert listener.requests == []


def test_the_sender_connects_to_the_address_it_checked(listener, monkeypatch, tripwire):
    """No second lookup between the check and the connection: a resolver that turns to loopback on the
    second question never gets asked it."""
    port = listener.server.server_address[1]
    dns = FakeDNS(monkeypatch, {"toctou.example.com": [[PUBLIC], ["127.0.0.1"]]})
    outcome = sender.post(f"http://toctou.example.com:{port}/hook", "{}", {}, timeout=2, allow_private=False)
    assert dns.calls == ["toctou.example.com"]
    assert tripwire == [(PUBLIC, port)]  # it went for the checked, public address (and the tripwire stopped it)
    assert outcome.error == "connection refused"
    assert listener.requests == []


def test_a_redirect_to_a_private_address_is_not_followed(listener):
    redirector = Receiver()
    try:
        redirector.default = Reply(302, b"", {"Location": f"http://127.0.0.1:{listener.server.server_address[1]}/"})
        # The redirector itself listens on 127.0.0.1, so this one attempt allows private destinations.
        outcome = sender.post(redirector.url, "{}", {}, timeout=2, allow_private=True)
    finally:
        redirector.close()
    assert outcome.response_status == 302 and outcome.error == "redirect not followed"
    assert listener.requests == []


def test_the_endpoint_form_refuses_internal_urls_with_the_reason(strict, client, signup):
    from .helpers import csrf_token

    signup(client)
    for url, reason in (("http://0x7f.1/", "resolves to an internal address (127.0.0.1)"),
                        ("http://169.254.169.254/", "resolves to an internal address (169.254.169.254)"),
                        ("http://localhost/", "points at an internal host name (localhost)")):
        token = csrf_token(client.get("/endpoints/new").get_data(as_text=True))
        response = client.post("/endpoints/new", data={"url": url, "enabled": "y", "csrf_token": token})
        assert response.status_code == 422 and reason in response.get_data(as_text=True), url


def test_a_worker_without_allow_private_refuses_at_delivery(app, tenant, listener, tmp_path):
    """End to end: the real worker process, configured as in production, on a Redis database of its own
    (so the shared, permissive worker never sees the job)."""
    base = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    redis_url = f"{base}/7"
    app.config["REDIS_URL"] = redis_url
    app.extensions.pop("agenthooks_redis", None)
    url = f"http://127.0.0.1:{listener.server.server_address[1]}/hook"
    # Saved while the operator allowed private destinations (as the test configuration does)...
    endpoint = tenant.api.post("/api/v1/endpoints", json={"url": url}).json
    agent = tenant.api.post("/api/v1/agents", json={"name": "bot"}).json
    # ...then delivered by a worker that refuses them.
    env = {**os.environ, "REDIS_URL": redis_url, "ALLOW_PRIVATE_DESTINATIONS": "", "DELIVERY_RETRY_SCHEDULE": ""}
    log_path = tmp_path / "strict-worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "webapp", "worker", "--no-maintenance"],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: b"Listening on" in log_path.read_bytes() or worker.poll() is not None, timeout=30,
                   message="the strict worker to start")
        event = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"]}).json
        delivery_id = tenant.api.get(f"/api/v1/events/{event['id']}").json["deliveries"][0]["id"]
        delivery = wait_until(lambda: (d := tenant.api.get(f"/api/v1/deliveries/{delivery_id}").json)["status"]
                              == "failed" and d, timeout=30, message="the delivery to fail")
    finally:
        worker.terminate()
        worker.wait(20)
    assert [a["error"] for a in delivery["attempts"]] == [
        "destination refused: resolves to an internal address (127.0.0.1)"]
    assert delivery["endpoint_id"] == endpoint["id"] and listener.requests == []
    assert Path(log_path).exists()
