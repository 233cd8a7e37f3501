"""One HTTP attempt: POST, bounded by one deadline, never following redirects, outcome recorded.

Two guards live here, because only the code that opens the connection can keep them:

- **SSRF at connection time.** Each new connection resolves the host itself (``destinations.resolve``),
  refuses it if any address is internal (``destinations.check_address``), and connects to the address it
  checked. A DNS answer that changes between a check and the connection (DNS rebinding) cannot slip
  through, and TLS still verifies the certificate against the host name (SNI), not the address.
- **One deadline per attempt.** ``timeout`` bounds the whole attempt: DNS, connect, TLS, sending, the
  status line, headers and the (at most 4 KiB of) body we read. Socket timeouts only bound each read, so
  a receiver that drips a byte a second would hold the worker for ever; a watchdog thread shuts the
  attempt's sockets down when its deadline passes.
"""
from __future__ import annotations

import contextvars
import email.utils
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
from datetime import datetime, timezone

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from webapp import destinations
from webapp.services.deliveries import Outcome

from .lanes import THREADS

MAX_RESPONSE_BODY = 4096
MAX_ERROR_LENGTH = 200


class _Attempt:
    """One attempt's deadline and destination policy, and the sockets it opened or reused."""

    def __init__(self, timeout: float, allow_private: bool):
        self.deadline = time.monotonic() + timeout
        self.allow_private = allow_private
        self.expired = False
        self._finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left; raises socket.timeout once none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the attempt's deadline passed")
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                _shutdown(sock)
            elif not self._finished:
                self._sockets.append(sock)

    def expire(self) -> None:
        """The deadline passed: break off whatever the attempt is waiting for."""
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    try:
        # socket.socket's own shutdown, also for an SSLSocket: a blocked read returns at once, and the
        # TLS object is left for the reading thread to find closed.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, already closed, or handed over to TLS


# How late the watchdog may expire an attempt. Every attempt stays in its heap until its deadline, ended or
# not: waking once per deadline woke a busy worker hundreds of times a second (4 % of its samples), where a
# little slack lets one wake-up take every deadline that passed within it.
_WATCHDOG_SLACK = 0.05


class _Watchdog:
    """One thread that expires attempts at their deadlines (a timer thread per attempt would cost more)."""

    def __init__(self):
        self._due: list[tuple[float, int, _Attempt]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, attempt: _Attempt) -> None:
        with self._wake:
            heapq.heappush(self._due, (attempt.deadline, next(self._order), attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="delivery-deadlines", daemon=True)
                self._thread.start()
            if self._due[0][2] is attempt:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait + _WATCHDOG_SLACK)
                    continue
                now, due = time.monotonic(), []
                while self._due and self._due[0][0] <= now:
                    due.append(heapq.heappop(self._due)[2])
            for attempt in due:
                attempt.expire()


_watchdog = _Watchdog()
_current: contextvars.ContextVar[_Attempt] = contextvars.ContextVar("delivery_attempt")


class _GuardedConnection(HTTPConnection):
    """A connection that resolves and checks its destination itself, within the attempt's deadline."""

    def _new_conn(self) -> socket.socket:
        attempt = _current.get()
        host = self._dns_host.strip("[]")
        try:
            addresses = destinations.resolve_within(host, self.port, attempt.remaining())
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"DNS lookup of {self.host} timed out") from exc
        if not attempt.allow_private:
            for _, sockaddr in addresses:
                destinations.check_address(sockaddr[0])  # raises DestinationRefused, which urllib3 lets through
        error: OSError | None = None
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(attempt.remaining())  # also bounds the TLS handshake (one deadline in CPython)
                attempt.watch(sock)
                sock.connect(sockaddr)  # the address just checked, never a fresh lookup
                return sock
            except socket.timeout as exc:
                sock.close()
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                sock.close()
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error

    def connect(self) -> None:
        super().connect()
        _current.get().watch(self.sock)

    def request(self, *args, **kwargs) -> None:
        if self.sock is not None:  # a kept-alive connection from an earlier attempt
            _current.get().watch(self.sock)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _GuardedConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def pool_manager(ca_certs: str | None = None) -> urllib3.PoolManager:
    """Connection pools that only ever open guarded connections; keep-alive connections are reused."""
    manager = urllib3.PoolManager(num_pools=100, maxsize=THREADS, block=False, retries=False,
                                  ca_certs=ca_certs or certifi.where())
    manager.pool_classes_by_scheme = {"http": _Pool, "https": _HTTPSPool}
    return manager


# One pool manager per policy: a connection opened while private destinations were allowed is never
# reused by an attempt that refuses them. Proxy settings in the environment are ignored on purpose.
_managers = {False: pool_manager(), True: pool_manager()}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (urllib3 keeps the original in ``reason`` or its arguments)."""
    seen, pending = [], [exc]
    while pending and len(seen) < 20:
        current = pending.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(link for link in linked if isinstance(link, BaseException))
    return seen


def _tls_reason(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = (error.verify_message or "").rstrip(".")
        return f"TLS error: certificate verify failed ({detail})" if detail else "TLS error: certificate verify failed"
    reason = getattr(error, "reason", None)
    text = reason.lower().replace("_", " ") if reason else str(error)
    return f"TLS error: {text}"


def describe(exc: BaseException, attempt: _Attempt | None = None) -> str:
    """A short reason for a failed request, as the contract words it (``timeout``, ``connection refused``…)."""
    if attempt is not None and attempt.expired:
        return "timeout"
    causes = _causes(exc)

    def found(*kinds) -> BaseException | None:
        return next((c for c in causes if isinstance(c, kinds)), None)

    if found(NameResolutionError, socket.gaierror):
        return "DNS lookup failed"
    if found(ssl.SSLCertVerificationError):
        return _tls_reason(found(ssl.SSLCertVerificationError))
    if found(ConnectionRefusedError):
        return "connection refused"
    if found(http.client.RemoteDisconnected):  # a ConnectionResetError, but no RST: a plain close
        return "connection closed without a response"
    if found(ConnectionResetError, BrokenPipeError):
        return "connection reset"
    if found(ssl.SSLError):
        return _tls_reason(found(ssl.SSLError))
    if found(TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError):
        return "timeout"
    if found(http.client.BadStatusLine, http.client.LineTooLong, http.client.HTTPException):
        return "invalid HTTP response"
    if found(OSError) and getattr(found(OSError), "strerror", None):
        return f"connection error: {found(OSError).strerror}"
    return "connection error"


def post(url: str, body: str, headers: dict, *, timeout: float, allow_private: bool) -> Outcome:
    """POST ``body`` to ``url`` and describe what happened; never raises for the receiver's faults.

    Args:
        url: the endpoint's URL.
        body: the JSON body, exactly as signed.
        headers: the request headers (content type, signatures…).
        timeout: seconds the whole attempt may take.
        allow_private: the operator's ALLOW_PRIVATE_DESTINATIONS; when False, internal addresses are refused.
    """
    started_at = datetime.now(timezone.utc)
    clock = time.monotonic()

    def outcome(**fields) -> Outcome:
        if fields.get("error"):
            fields["error"] = fields["error"][:MAX_ERROR_LENGTH]
        return Outcome(started_at=started_at, duration_ms=int((time.monotonic() - clock) * 1000),
                       request_headers=headers, **fields)

    try:
        destinations.check(url, allow_private=allow_private, lookup=False)
    except destinations.DestinationRefused as exc:
        return outcome(error=f"destination refused: {exc}")
    attempt = _Attempt(timeout, allow_private)
    _watchdog.add(attempt)
    token = _current.set(attempt)
    try:
        try:
            response = _managers[allow_private].urlopen(
                "POST", url, body=body.encode(), headers=headers, redirect=False, retries=False,
                preload_content=False, timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except destinations.DestinationRefused as exc:
            return outcome(error=f"destination refused: {exc}")
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException, ValueError) as exc:
            return outcome(error=describe(exc, attempt))
        if attempt.expired:  # the headers were still coming in when the deadline cut them short
            response.close()
            response.release_conn()
            return outcome(error="timeout")
        raw, complete = _read_some(response, attempt)
        if complete:
            response.release_conn()  # fully read: the connection can carry the next attempt
        else:
            response.close()  # a huge or unfinished body is never drained: drop the connection
            response.release_conn()
        return outcome(
            response_status=response.status,
            response_body=raw.decode("utf-8", errors="replace"),
            error="redirect not followed" if 300 <= response.status < 400 else None,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    finally:
        attempt.finish()
        _current.reset(token)


def _read_some(response: urllib3.BaseHTTPResponse, attempt: _Attempt) -> tuple[bytes, bool]:
    """Read at most MAX_RESPONSE_BODY bytes of the body, until the deadline. Returns (bytes, whether the
    body ended). The status line counts, whatever the body does: a receiver that broke off or stalled
    mid-body answered all the same."""
    raw = bytearray()
    try:
        while len(raw) < MAX_RESPONSE_BODY:
            chunk = response.read1(MAX_RESPONSE_BODY - len(raw))
            if not chunk:
                return bytes(raw), not attempt.expired
            raw += chunk
    except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException, ValueError):
        pass
    return bytes(raw[:MAX_RESPONSE_BODY]), False
