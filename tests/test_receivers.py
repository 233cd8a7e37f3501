"""Receivers that misbehave: each attempt ends within its deadline with a clear, recorded reason.

Real servers on 127.0.0.1 that hang, drip, flood, reset, speak TLS with a certificate we do not trust, or
do not speak HTTP at all; ``jobs.sender.post`` is called directly, as the delivery job calls it.
"""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
import tracemalloc

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jobs import sender
from webapp import destinations

from .helpers import read_request

TIMEOUT = 1.0
MARGIN = 0.75  # scheduling slack on a busy 2-core machine
HUNDRED_MB = 100 * 1024 * 1024


class RawServer:
    """A TCP server on 127.0.0.1 that hands every connection to ``handle(conn)`` in a thread of its own."""

    def __init__(self, handle, tls: ssl.SSLContext | None = None):
        self.handle, self.tls = handle, tls
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handle(conn)
        except (OSError, ssl.SSLError):
            pass  # the sender hung up: that is what these tests provoke
        finally:
            conn.close()

    def url(self, scheme="http", host="127.0.0.1", path="/hook"):
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self):
        self.closed.set()
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def start(handle, tls=None) -> RawServer:
        servers.append(RawServer(handle, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def post(url, timeout=TIMEOUT, allow_private=True):
    started = time.monotonic()
    outcome = sender.post(url, '{"id": "evt_1"}', {"content-type": "application/json"}, timeout=timeout,
                          allow_private=allow_private)
    return outcome, time.monotonic() - started


def ok(conn, body=b"ok"):
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


# --- hangs and drips ------------------------------------------------------------------------------------

def test_a_receiver_that_never_answers_is_a_timeout(serve):
    server = serve(lambda conn: (read_request(conn), time.sleep(10)))
    outcome, took = post(server.url())
    assert outcome.error == "timeout" and outcome.response_status is None
    assert TIMEOUT - 0.05 <= took < TIMEOUT + MARGIN


def test_a_receiver_that_never_reads_the_request_is_a_timeout(serve):
    server = serve(lambda conn: time.sleep(10))
    outcome, took = post(server.url())
    assert outcome.error == "timeout" and took < TIMEOUT + MARGIN


def test_a_slow_drip_body_is_cut_at_the_deadline_and_the_status_counts(serve):
    def drip(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            conn.sendall(b"x")
            time.sleep(0.05)

    outcome, took = post(serve(drip).url())
    assert took < TIMEOUT + MARGIN
    assert outcome.response_status == 200 and outcome.error is None  # the receiver answered 200 in time
    assert 0 < len(outcome.response_body) < 1000


def test_dripped_headers_are_a_timeout(serve):
    """Each byte arrives well within any read timeout; only a deadline for the whole attempt stops it."""
    def drip(conn):
        read_request(conn)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    outcome, took = post(serve(drip).url())
    assert outcome.error == "timeout" and outcome.response_status is None
    assert took < TIMEOUT + MARGIN


def test_the_deadline_also_bounds_a_slow_dns_answer(monkeypatch):
    real = destinations.resolve

    def slow(host, port):
        if host == "slow-dns.example.com":
            time.sleep(3)
        return real(host, port)

    monkeypatch.setattr(destinations, "resolve", slow)
    outcome, took = post("http://slow-dns.example.com/hook")
    assert outcome.error == "timeout" and took < TIMEOUT + MARGIN


# --- floods ---------------------------------------------------------------------------------------------

def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * (1 << 12)


def test_a_100_mb_body_is_read_only_to_4_kib_and_does_not_grow_memory(serve):
    sent = []

    def flood(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUNDRED_MB)
        chunk = b"x" * 65536
        total = 0
        while total < HUNDRED_MB:  # generated as it goes: never 100 MB in memory here either
            conn.sendall(chunk)
            total += len(chunk)
            sent.append(total)

    server = serve(flood)
    rss_before = _rss_bytes()
    tracemalloc.start()
    try:
        outcome, took = post(server.url(), timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.response_status == 200 and outcome.error is None
    assert len(outcome.response_body) == sender.MAX_RESPONSE_BODY == 4096
    assert took < 2, "the sender must not read (or drain) the rest of the body"
    assert peak < 2 * 1024 * 1024, f"{peak} bytes allocated at the peak"
    assert _rss_bytes() - rss_before < 30 * 1024 * 1024
    time.sleep(0.2)
    assert (sent[-1] if sent else 0) < HUNDRED_MB  # the connection was closed long before the end


def test_a_chunked_endless_body_is_cut_at_4_kib(serve):
    def endless(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            conn.sendall(b"400\r\n" + b"e" * 1024 + b"\r\n")

    outcome, took = post(serve(endless).url())
    assert outcome.response_status == 500 and len(outcome.response_body) == 4096 and took < TIMEOUT + MARGIN


# --- broken connections ---------------------------------------------------------------------------------

def test_connection_refused_is_recorded():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: the kernel refuses
        outcome, took = post(f"http://127.0.0.1:{port}/hook")
    assert outcome.error == "connection refused" and took < TIMEOUT


def test_connection_reset_is_recorded(serve):
    def reset(conn):
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST

    outcome, _ = post(serve(reset).url())
    assert outcome.error == "connection reset" and outcome.response_status is None


def test_a_receiver_that_hangs_up_without_answering_is_recorded(serve):
    outcome, _ = post(serve(read_request).url())
    assert outcome.error == "connection closed without a response"


def test_a_receiver_that_does_not_speak_http_is_recorded(serve):
    outcome, _ = post(serve(lambda conn: (read_request(conn), conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n"))).url())
    assert outcome.error == "invalid HTTP response"


def test_dns_failure_is_recorded():
    outcome, _ = post("http://no-such-host.invalid/hook")
    assert outcome.error == "DNS lookup failed"


def test_a_redirect_is_recorded_and_not_followed(serve):
    def redirect(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 5\r\n\r\nmoved")

    server = serve(redirect)
    outcome, _ = post(server.url())
    assert (outcome.response_status, outcome.error, outcome.response_body) == (301, "redirect not followed", "moved")
    assert server.connections == 1


def test_kept_alive_connections_are_reused_and_still_bounded(serve):
    answers = iter([True, False])

    def keep_alive(conn):
        while True:
            if not read_request(conn):
                return
            if next(answers, False):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            else:
                time.sleep(10)  # the second request, on the same connection, hangs

    server = serve(keep_alive)
    first, _ = post(server.url())
    second, took = post(server.url())
    assert first.response_status == 200
    assert second.error == "timeout" and took < TIMEOUT + MARGIN
    assert server.connections == 1


# --- TLS ------------------------------------------------------------------------------------------------

def _certificate(subject: str, issuer_key, issuer_name, key, *, ca: bool, names=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a certificate it signed for ``localhost``, and a self-signed one, written as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("AgentHooks test CA", ca_key, None, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("localhost", ca_key, ca.subject, leaf_key, ca=False, names=[x509.DNSName("localhost")])
    self_key = ec.generate_private_key(ec.SECP256R1())
    self_signed = _certificate("localhost", self_key, None, self_key, ca=False, names=[
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])

    def write(name, cert, key=None):
        path = folder / name
        data = cert.public_bytes(serialization.Encoding.PEM)
        if key is not None:
            data += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        path.write_bytes(data)
        return str(path)

    return {"ca": write("ca.pem", ca), "leaf": write("leaf.pem", leaf, leaf_key),
            "self_signed": write("self.pem", self_signed, self_key)}


def _tls(pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context


def test_a_self_signed_certificate_is_a_tls_error(serve, pki):
    server = serve(ok, tls=_tls(pki["self_signed"]))
    outcome, took = post(server.url("https"))
    assert outcome.error == "TLS error: certificate verify failed (self-signed certificate)"
    assert outcome.response_status is None and took < TIMEOUT


def test_tls_verifies_the_host_name_while_connecting_to_the_checked_address(serve, pki, monkeypatch):
    """The sender connects to the address it resolved and checked, yet TLS still sends and verifies the
    host name: a trusted certificate for ``localhost`` works by name, and is refused for the bare IP."""
    monkeypatch.setattr(sender, "_managers", {True: sender.pool_manager(pki["ca"]), False: sender.pool_manager(pki["ca"])})
    server = serve(ok, tls=_tls(pki["leaf"]))
    outcome, _ = post(server.url("https", host="localhost"))
    assert (outcome.response_status, outcome.error, outcome.response_body) == (200, None, "ok")
    mismatch, _ = post(server.url("https", host="127.0.0.1"))
    assert mismatch.error.startswith("TLS error: certificate verify failed (IP address mismatch")


def test_https_to_a_plain_http_server_is_a_tls_error(serve):
    outcome, _ = post(serve(lambda conn: (conn.recv(1024), conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"))).url("https"))
    assert outcome.error.startswith("TLS error: ") and len(outcome.error) < 80


def test_a_tls_handshake_that_never_comes_is_a_timeout(serve):
    server = serve(lambda conn: time.sleep(10))  # accepts TCP, never answers the ClientHello
    outcome, took = post(server.url("https"))
    assert outcome.error == "timeout" and took < TIMEOUT + MARGIN
