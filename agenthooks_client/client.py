"""The client: one ``send`` per event, with an idempotency key, retries and a hard deadline."""
from __future__ import annotations

import email.utils
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import requests

VERSION = "0.1.0"
# Worth another try: the request may not have arrived, or the server asks us to come back.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# The least time a retry is begun with. One begun with a few milliseconds left could only time out, and its
# "timeout" would hide what the attempts before it met (a refused connection, say).
MIN_ATTEMPT_SECONDS = 0.1


class AgentHooksError(Exception):
    """Something stopped an event from being accepted.

    ``idempotency_key`` is the key every attempt carried: sending again with it later can never create
    a second event.
    """

    def __init__(self, message: str, *, idempotency_key: str, attempts: int):
        super().__init__(message)
        self.idempotency_key, self.attempts = idempotency_key, attempts


class EventRejected(AgentHooksError):
    """The API refused the event and retrying will not change that (400, 401, 404, 413, 415, 422).

    ``status`` is the HTTP status, ``code`` and ``message`` the API's error, and ``details`` (for a 422
    of the event type's schema) every violation as ``{"path": "$.data.text", "message": …}``.
    """

    def __init__(self, status: int, code: str, message: str, details: list, *, idempotency_key: str,
                 attempts: int):
        super().__init__(f"{status} {code}: {message}", idempotency_key=idempotency_key, attempts=attempts)
        self.status, self.code, self.api_message, self.details = status, code, message, details


class SendTimeout(AgentHooksError):
    """The total timeout ran out (or the attempts did) before the API accepted the event.

    The event may or may not have been stored: send it again with the same ``idempotency_key`` (within
    24 hours) and it is stored at most once. ``last_status`` is the last HTTP status seen (None when
    the last attempt got no answer) and ``last_error`` what went wrong.
    """

    def __init__(self, message: str, *, last_status: int | None, last_error: str, idempotency_key: str,
                 attempts: int):
        super().__init__(message, idempotency_key=idempotency_key, attempts=attempts)
        self.last_status, self.last_error = last_status, last_error


@dataclass(frozen=True)
class SentEvent:
    """The API accepted the event.

    ``replayed`` is true when an earlier attempt had already stored it (this answer is that attempt's);
    ``warnings`` lists schema violations of a type in "warn" mode.
    """

    id: str
    type: str
    deliveries: int
    replayed: bool
    attempts: int
    idempotency_key: str
    warnings: list = field(default_factory=list)


@dataclass
class _Answer:
    status: int | None = None
    body: Any = None
    headers: dict = field(default_factory=dict)
    error: str | None = None


class AgentHooks:
    """A client for the AgentHooks ingest API, for an agent to send its events with.

    Args:
        api_key: an ``ahk_…`` key; a per-agent key is the natural choice for an agent.
        base_url: where AgentHooks runs, e.g. ``https://agenthooks.example.com``.
        timeout: the most seconds one ``send`` may take, retries and waits included.
        max_attempts: the most HTTP attempts one ``send`` makes.
        backoff: the first wait between attempts in seconds; it doubles each time (with jitter), up to
            ``max_backoff``, and is never shorter than a ``Retry-After`` the API sends.
        session: a ``requests.Session`` to use (connections are kept alive between sends).

    The client is safe to share between threads.
    """

    def __init__(self, api_key: str, base_url: str = "http://127.0.0.1:5000", *, timeout: float = 10.0,
                 max_attempts: int = 8, backoff: float = 0.25, max_backoff: float = 8.0,
                 session: requests.Session | None = None):
        if timeout <= 0 or max_attempts < 1:
            raise ValueError("timeout must be positive and max_attempts at least 1")
        self.api_key, self.base_url = api_key, base_url.rstrip("/")
        self.timeout, self.max_attempts = timeout, max_attempts
        self.backoff, self.max_backoff = backoff, max_backoff
        self.session = session or requests.Session()

    # --- the API --------------------------------------------------------------------------------------

    def send(self, type: str, *, agent_id: str, data: dict | None = None, conversation_id: str | None = None,
             user: dict | None = None, run_id: str | None = None, parent_event_id: str | None = None,
             occurred_at: datetime | str | None = None, idempotency_key: str | None = None,
             traceparent: str | None = None, tracestate: str | None = None,
             timeout: float | None = None) -> SentEvent:
        """Send one event, retrying until the API accepts it or the timeout runs out.

        Every attempt carries the same ``Idempotency-Key`` (a new random one unless you pass your own), so
        a retry after a lost answer returns the first attempt's event instead of storing a second one. A
        connection error, a timeout, a 429 or a 5xx is retried after an exponential backoff with jitter,
        or after the answer's ``Retry-After`` when that is longer; anything else is final.

        Args:
            type: the event type, e.g. ``"tool.executed"``.
            agent_id: the agent sending it (``agt_…``).
            data, conversation_id, user, run_id, parent_event_id, occurred_at: the event's other fields.
            idempotency_key: reuse one to make a later, separate ``send`` of the same event harmless.
            traceparent, tracestate: W3C Trace Context to forward to receivers.
            timeout: overrides the client's total timeout for this call.

        Returns:
            SentEvent: the event's id, and how many deliveries it got.

        Raises:
            EventRejected: the API refused the event (fix the event or the key; retrying will not help).
            SendTimeout: no acceptance within the timeout; no call ever blocks longer than it.
        """
        event = {"type": type, "agent_id": agent_id}
        for name, value in (("conversation_id", conversation_id), ("user", user), ("data", data),
                            ("run_id", run_id), ("parent_event_id", parent_event_id),
                            ("occurred_at", _rfc3339(occurred_at))):
            if value is not None:
                event[name] = value
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        if traceparent:
            headers["traceparent"] = traceparent
            if tracestate:
                headers["tracestate"] = tracestate
        answer, attempts = self._post("/api/v1/events", event, headers, timeout)
        body = answer.body
        return SentEvent(id=body["id"], type=body["type"], deliveries=body["deliveries"],
                         replayed=answer.status == 200, attempts=attempts,
                         idempotency_key=headers["Idempotency-Key"], warnings=body.get("warnings", []))

    def validate(self, type: str, *, agent_id: str, timeout: float | None = None, **fields) -> list:
        """Check an event as ``send`` would, without storing it. Returns its warnings (a type in "warn" mode).

        Raises:
            EventRejected: the event would be refused (``details`` lists every schema violation).
            SendTimeout: no answer within the timeout.
        """
        event = {"type": type, "agent_id": agent_id, **{k: v for k, v in fields.items() if v is not None}}
        if "occurred_at" in event:
            event["occurred_at"] = _rfc3339(event["occurred_at"])
        answer, _ = self._post("/api/v1/events/validate", event, {"Idempotency-Key": str(uuid.uuid4())}, timeout)
        return answer.body.get("warnings", [])

    # --- attempts -------------------------------------------------------------------------------------

    def _post(self, path: str, event: dict, headers: dict, timeout: float | None) -> tuple[_Answer, int]:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        key = headers["Idempotency-Key"]
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": f"agenthooks-client/{VERSION}",
                   **headers}
        answer = _Answer(error="no attempt made")
        attempt = 0
        while attempt < self.max_attempts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempt += 1
            answer = self._attempt(self.base_url + path, event, headers, remaining)
            if answer.status is not None and 200 <= answer.status < 300:
                return answer, attempt
            if answer.status is not None and answer.status not in RETRY_STATUSES:
                error = (answer.body or {}).get("error", {}) if isinstance(answer.body, dict) else {}
                raise EventRejected(answer.status, error.get("code", "error"), error.get("message", str(answer.body)),
                                    error.get("details", []), idempotency_key=key, attempts=attempt)
            if attempt >= self.max_attempts:
                break
            wait = self._wait(attempt, _retry_after(answer.headers.get("Retry-After")))
            if time.monotonic() + wait + MIN_ATTEMPT_SECONDS >= deadline:
                break  # no time left for another attempt after the wait: say so now rather than at the deadline
            time.sleep(wait)
        raise SendTimeout(f"the event was not accepted within {attempt} attempt{'s' * (attempt != 1)} and the "
                          f"timeout ({answer.error or answer.status}); send it again later with "
                          f"idempotency_key={key!r}", last_status=answer.status, last_error=answer.error or "",
                          idempotency_key=key, attempts=attempt)

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        return max(wait, retry_after) if retry_after is not None else wait

    def _attempt(self, url: str, event: dict, headers: dict, remaining: float) -> _Answer:
        """One POST, bounded by ``remaining`` seconds however slowly the server answers.

        requests' timeouts bound each socket operation, not the whole request (nor the DNS lookup), so the
        request runs in a thread the caller stops waiting for at the deadline.
        """
        answer = _Answer(error="timeout")

        def post():
            try:
                response = self.session.post(url, json=event, headers=headers, timeout=(remaining, remaining))
                try:
                    body = response.json()
                except ValueError:
                    body = response.text[:200]
                answer.status, answer.body, answer.headers, answer.error = (
                    response.status_code, body, dict(response.headers), None)
            except requests.Timeout:
                answer.error = "timeout"
            except requests.RequestException as exc:
                answer.error = f"connection error: {type(exc).__name__}"

        worker = threading.Thread(target=post, name="agenthooks-send", daemon=True)
        worker.start()
        worker.join(remaining)
        if worker.is_alive():
            return _Answer(error="timeout")  # abandoned: it ends by itself, its answer unread
        return answer


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def _rfc3339(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
