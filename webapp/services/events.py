"""Ingest: validate an agent's event, store it with its deliveries, and queue them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..catalogue import INGESTIBLE, TEST_EVENT_TYPE
from ..extensions import db
from ..ids import new_id
from ..models import Agent, Delivery, Endpoint, Event, IdempotencyKey, utcnow
from ..queue import Next, enqueue_deliveries
from ..tenancy import require_tenant
from .common import ValidationError, get_owned, text_field
from .event_types import is_custom_type

IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass
class Accepted:
    event: Event
    deliveries: int
    replayed: bool = False  # an Idempotency-Key repeat: nothing new was created


def isoformat(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as every timestamp in the API and payloads."""
    if moment is None:
        return None
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.astimezone(timezone.utc).isoformat(timespec=spec).replace("+00:00", "Z")


def parse_time(data: dict, field: str) -> datetime | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be an RFC 3339 date-time string")
    value = value.upper()  # RFC 3339 allows a lower-case t and z
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, "must be an RFC 3339 date-time, like 2026-11-26T12:00:00Z") from None
    if moment.tzinfo is None or "T" not in value:
        raise ValidationError(field, "must be an RFC 3339 date-time with a time zone, like 2026-11-26T12:00:00Z")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationError(field, "is out of range") from None


def _object(data: dict, field: str) -> dict | None:
    value = data.get(field)
    if value is not None and not isinstance(value, dict):
        raise ValidationError(field, "must be a JSON object")
    return value


def validate(data: dict) -> dict:
    """Check an event against the contract; return its clean fields. Raises ValidationError naming the field."""
    event_type = text_field(data, "type", max_length=255, required=True)
    if event_type not in INGESTIBLE and not is_custom_type(event_type):
        raise ValidationError("type", f"{event_type!r} is neither a built-in event type nor one of your custom types")
    agent_id = text_field(data, "agent_id", max_length=40, required=True)
    agent = db.session.scalars(select(Agent).where(Agent.id == agent_id)).one_or_none()
    if agent is None:
        raise ValidationError("agent_id", f"{agent_id!r} is not one of your agents")
    return {
        "type": event_type,
        "agent": agent,
        "conversation_id": text_field(data, "conversation_id", max_length=255),
        "user": _object(data, "user"),
        "data": _object(data, "data") or {},
        "occurred_at": parse_time(data, "occurred_at"),
    }


def _body(event_id: str, event_type: str, occurred_at: datetime, agent: Agent | None, fields: dict) -> str:
    """The JSON a receiver gets, serialised once and sent byte-for-byte on every attempt."""
    return json.dumps({
        "id": event_id,
        "type": event_type,
        "timestamp": isoformat(occurred_at),
        "agent": {"id": agent.id, "name": agent.name} if agent else None,
        "conversation_id": fields.get("conversation_id"),
        "user": fields.get("user"),
        "data": fields.get("data") or {},
    }, separators=(",", ":"), ensure_ascii=False)


def _store(event_type: str, agent: Agent | None, fields: dict, endpoints: list[Endpoint]) -> tuple[Event, list[Next]]:
    now = utcnow()
    occurred_at = fields.get("occurred_at") or now
    event_id = new_id("evt")  # needed before insert: the body carries it
    event = Event(id=event_id, type=event_type, agent_id=agent.id if agent else None,
                  conversation_id=fields.get("conversation_id"), occurred_at=occurred_at, received_at=now,
                  body=_body(event_id, event_type, occurred_at, agent, fields))
    db.session.add(event)
    deliveries = [Delivery(event_id=event.id, endpoint_id=endpoint.id, event_type=event_type,
                           agent_id=event.agent_id, next_attempt_at=now, enqueued_at=now)
                  for endpoint in endpoints]
    db.session.add_all(deliveries)
    db.session.flush()
    return event, [Next(d.id) for d in deliveries]


def _queue(tenant_id: str, deliveries: list[Next]) -> None:
    if not enqueue_deliveries(tenant_id, deliveries):
        # Tell the sweep these were never queued, so it picks them up as soon as Redis is back.
        ids = [d.id for d in deliveries]
        db.session.execute(db.update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=None))
        db.session.commit()


def _replay(key: str) -> Accepted | None:
    record = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == key)).one_or_none()
    if record is None:
        return None
    if record.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        db.session.delete(record)
        db.session.flush()
        return None
    event = get_owned(Event, record.event_id)
    count = db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.event_id == event.id))
    return Accepted(event, count, replayed=True)


def ingest(data: dict, idempotency_key: str | None = None) -> Accepted:
    """Store an agent's event durably, fan it out to subscribed endpoints, and queue the deliveries.

    Args:
        data: the request's JSON object.
        idempotency_key: the Idempotency-Key header; a repeat within 24 h replays the first answer.

    Raises:
        ValidationError: a field fails the contract; the error names it.
    """
    if idempotency_key is not None:
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValidationError("Idempotency-Key", "must be 1 to 255 characters")
        replay = _replay(idempotency_key)
        if replay:
            return replay
    fields = validate(data)
    endpoints = [e for e in db.session.scalars(select(Endpoint).where(Endpoint.enabled.is_(True)))
                 if e.subscribes_to(fields["type"], fields["agent"].id)]
    event, queued = _store(fields["type"], fields["agent"], fields, endpoints)
    if idempotency_key is not None:
        db.session.add(IdempotencyKey(key=idempotency_key, event_id=event.id))
    try:
        db.session.commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race: answer as it did.
        db.session.rollback()
        replay = _replay(idempotency_key) if idempotency_key else None
        if replay is None:
            raise
        return replay
    tenant_id = event.tenant_id
    _queue(tenant_id, queued)
    return Accepted(event, len(queued))


def send_test_event(endpoint_id: str) -> Accepted:
    """Send a webhook.test event to one endpoint, whatever it subscribes to."""
    endpoint = get_owned(Endpoint, endpoint_id)
    require_tenant()
    event, queued = _store(TEST_EVENT_TYPE, None, {"data": {"message": "This is a test event from AgentHooks.",
                                                                  "endpoint_id": endpoint.id}}, [endpoint])
    db.session.commit()
    _queue(event.tenant_id, queued)
    return Accepted(event, 1)


def get_event(event_id: str) -> Event:
    return get_owned(Event, event_id)


def event_deliveries(event_id: str) -> list[Delivery]:
    return list(db.session.scalars(select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id)))
