"""Rows as the worker would have left them, written straight into the database for tests that need a
known history (statistics, the live log) without waiting for real deliveries. Call them inside
``tenant.scope()``; they flush, the caller commits."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import Attempt, Delivery, Endpoint, Event, utcnow
from webapp.services import tallies
from webapp.services.endpoints import create_endpoint

# Nothing listens there, and the rows below are never due, so no worker ever touches them.
QUIET_URL = "http://127.0.0.1:9/quiet"


def endpoint(url: str = QUIET_URL, **fields) -> Endpoint:
    return create_endpoint({"url": url, **fields})


def event(*, at: datetime | None = None, event_type: str = "message.received", agent_id: str | None = None,
          data: dict | None = None) -> Event:
    """An event received ``at`` (default now), with no deliveries."""
    at = at or utcnow()
    event_id = new_id("evt", at)
    body = json.dumps({"id": event_id, "type": event_type, "timestamp": at.isoformat(), "agent": None,
                       "conversation_id": None, "user": None, "data": data or {}})
    row = Event(id=event_id, type=event_type, agent_id=agent_id, occurred_at=at, received_at=at, body=body)
    db.session.add(row)
    db.session.flush()
    return row


def delivery(endpoint_: Endpoint, *, status: str = "succeeded", at: datetime | None = None,
             attempts: list[tuple[int | None, int]] | None = None, event_type: str = "message.received",
             agent_id: str | None = None, data: dict | None = None) -> Delivery:
    """A delivery created ``at`` (default now) with ``attempts`` as (response status or None, duration ms),
    one second apart. Never due: ``next_attempt_at`` stays empty, whatever the status."""
    at = at or utcnow()
    event_id = event(at=at, event_type=event_type, agent_id=agent_id, data=data).id
    row = Delivery(id=new_id("dlv", at), event_id=event_id, endpoint_id=endpoint_.id, event_type=event_type,
                   agent_id=agent_id, status=status, attempt_count=len(attempts or []), next_attempt_at=None,
                   created_at=at, updated_at=at)
    db.session.add(row)
    db.session.flush()
    stored = []
    for number, (code, duration) in enumerate(attempts or []):
        started = at + timedelta(seconds=number)
        stored.append(Attempt(id=new_id("att", started), delivery_id=row.id, endpoint_id=row.endpoint_id,
                              trigger="scheduled",
                              started_at=started, duration_ms=duration, response_status=code,
                              error=None if code else "connection refused",
                              response_body="ok" if code else None,
                              request_headers={"webhook-id": event_id, "content-type": "application/json"}))
        row.last_attempt_at, row.last_response_status = started, code
        row.last_error = None if code else "connection refused"
    db.session.add_all(stored)
    db.session.flush()
    # Counted as the worker counts what it stores, and the delivery's status.
    tallies.add(db.session.connection(), row.tenant_id, [vars(attempt) for attempt in stored])
    tallies.add_deliveries(db.session.connection(),
                        tallies.delivery_rows(row.tenant_id, [tallies.Change(row.id, row.endpoint_id, None, status)]))
    # The ORM stamps updated_at on every flush that changes the row: put it back where the test wants it.
    db.session.execute(db.update(Delivery).where(Delivery.id == row.id).values(updated_at=at))
    db.session.refresh(row)
    return row
