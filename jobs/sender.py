"""One HTTP attempt: POST, bounded by the timeout, never following redirects, outcome recorded."""
from __future__ import annotations

import email.utils
import socket
import time
from datetime import datetime, timezone

import requests
import urllib3

from webapp import destinations
from webapp.services.deliveries import Outcome

MAX_RESPONSE_BODY = 4096
# One session per worker process: keep-alive connections to each destination are reused.
_session = requests.Session()


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
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def _describe(exc: requests.RequestException) -> str:
    """A short reason for a failed request, as the contract words it."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    text = str(exc)
    chain, cause = [], exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, socket.gaierror) for c in chain) or "NameResolutionError" in text \
            or "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "DNS lookup failed"
    if any(isinstance(c, ConnectionRefusedError) for c in chain) or "Connection refused" in text:
        return "connection refused"
    if any(isinstance(c, ConnectionResetError) for c in chain) or "Connection reset" in text:
        return "connection reset"
    return "connection error"


def post(url: str, body: str, headers: dict, *, timeout: float, allow_private: bool) -> Outcome:
    """POST ``body`` to ``url`` and describe what happened; never raises for the receiver's faults."""
    started_at = datetime.now(timezone.utc)
    clock = time.monotonic()

    def outcome(**fields) -> Outcome:
        return Outcome(started_at=started_at, duration_ms=int((time.monotonic() - clock) * 1000),
                       request_headers=headers, **fields)

    try:
        destinations.check(url, allow_private=allow_private, at_delivery=True)
    except destinations.DestinationRefused as exc:
        return outcome(error=f"destination refused: {exc}")
    try:
        response = _session.post(url, data=body.encode(), headers=headers, timeout=(timeout, timeout),
                                 allow_redirects=False, stream=True)
    except requests.RequestException as exc:
        return outcome(error=_describe(exc))
    try:
        # Read at most 4 KiB and close: a huge body never reaches memory.
        raw = response.raw.read(MAX_RESPONSE_BODY, decode_content=True) or b""
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
        # The receiver broke off or stalled mid-body; the status line is what counts.
        raw = b""
    finally:
        response.close()
    return outcome(
        response_status=response.status_code,
        response_body=raw[:MAX_RESPONSE_BODY].decode("utf-8", errors="replace"),
        error="redirect not followed" if 300 <= response.status_code < 400 else None,
        retry_after=_retry_after(response.headers.get("retry-after")),
    )
