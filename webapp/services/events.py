"""Ingest: validate an agent's event, store it with its deliveries, and queue them."""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from sqlalchemy import and_, bindparam, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from ..catalogue import INGESTIBLE, TEST_EVENT_TYPE
from ..extensions import core, db
from ..ids import new_id
from ..models import ALL_AGENTS, Agent, Delivery, Endpoint, EndpointAgent, Event, IdempotencyKey, subscribes, utcnow
from ..queue import Next, wake_drain
from ..tenancy import require_tenant
from . import budget, schemas
from .api_keys import Caller
from .common import NotFound, ValidationError, get_owned, page, text_field
from .event_types import find_custom_type

IDEMPOTENCY_WINDOW = timedelta(hours=24)
# run_id travels to receivers in a header too: printable ASCII only.
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")
# W3C Trace Context: version-trace_id-parent_id-flags, lower-case hex; later versions may append fields.
_TRACEPARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(?:-.*)?$")
MAX_TRACESTATE = 512
TIMELINE_LIMIT = 500


@dataclass
class Accepted:
    id: str  # the event's
    type: str
    deliveries: int
    replayed: bool = False  # an Idempotency-Key repeat: nothing new was created
    # Schema violations of a type in "warn" mode: the event was accepted anyway.
    warnings: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Trace:
    """The W3C Trace Context of the ingest request, forwarded to receivers as it came."""

    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def from_headers(cls, traceparent: str | None, tracestate: str | None) -> Trace:
        """Keep a well-formed traceparent (and its tracestate); ignore a malformed one, as the spec says."""
        traceparent = (traceparent or "").strip()
        if len(traceparent) > 512 or not _TRACEPARENT.match(traceparent) or (
                traceparent.startswith("00-") and len(traceparent) != 55):  # version 00 has exactly four fields
            return cls()
        tracestate = (tracestate or "").strip()
        if not tracestate or len(tracestate) > MAX_TRACESTATE or not _HEADER_SAFE.match(tracestate):
            tracestate = None
        return cls(traceparent[:55], tracestate)


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


def _run_id(data: dict) -> str | None:
    run_id = text_field(data, "run_id", max_length=255)
    if run_id is not None and not _HEADER_SAFE.match(run_id):
        raise ValidationError("run_id", "may contain only printable ASCII characters (it is sent in a header)")
    return run_id or None


def _parent_event_id(data: dict) -> str | None:
    parent_id = text_field(data, "parent_event_id", max_length=255)
    if not parent_id:
        return None
    if db.session.scalars(select(Event.id).where(Event.id == parent_id)).first() is None:
        raise ValidationError("parent_event_id", f"{parent_id!r} is not one of your events")
    return parent_id


def validate(data: dict, api_key: Caller | None = None) -> dict:
    """Check an event against the contract, the key's scope and the type's schema; return its clean fields.

    Raises:
        ValidationError: naming the field (the key's scope: ``agent_id`` or ``type``).
        SchemaViolations: the event fails its type's schema, which rejects; it lists every violation.
    """
    event_type = text_field(data, "type", max_length=255, required=True)
    custom = None if event_type in INGESTIBLE else find_custom_type(event_type)
    if event_type not in INGESTIBLE and custom is None:
        raise ValidationError("type", f"{event_type!r} is neither a built-in event type nor one of your custom types")
    if api_key is not None and api_key.event_types and event_type not in api_key.event_types:
        raise ValidationError("type", f"this key may only send {', '.join(api_key.event_types)}")
    agent_id = text_field(data, "agent_id", max_length=40, required=True)
    if api_key is not None and api_key.agent_id is not None and agent_id != api_key.agent_id:
        raise ValidationError("agent_id", f"this key may only send as agent {api_key.agent_id}")
    rows = core(_agent_lookup(), {"agent_id": agent_id, "tenant_id": require_tenant()}).all()
    if not rows:
        raise ValidationError("agent_id", f"{agent_id!r} is not one of your agents")
    fields = {
        "type": event_type,
        "agent": rows[0],
        "endpoints": [row for row in rows if row.endpoint_id is not None],
        "conversation_id": text_field(data, "conversation_id", max_length=255),
        "user": _object(data, "user"),
        "data": _object(data, "data") or {},
        "occurred_at": parse_time(data, "occurred_at"),
        "run_id": _run_id(data),
        "parent_event_id": _parent_event_id(data),
    }
    fields["checked"] = schemas.check(event_type, data, custom)
    return fields


def check(data: dict, api_key: Caller | None = None) -> list[dict]:
    """Check an event as ingest would, without storing it or spending the agent's budget.

    Returns the warnings ingest would answer with (a type in "warn" mode).

    Raises:
        ValidationError, SchemaViolations: as ``ingest`` would.
    """
    return validate(data, api_key)["checked"].warnings


def _body(event_id: str, event_type: str, occurred_at: datetime, agent, fields: dict) -> str:
    """The JSON a receiver gets, serialised once and sent byte-for-byte on every attempt."""
    body = {
        "id": event_id,
        "type": event_type,
        "timestamp": isoformat(occurred_at),
        "agent": {"id": agent.id, "name": agent.name} if agent else None,
        "conversation_id": fields.get("conversation_id"),
        "user": fields.get("user"),
        "data": fields.get("data") or {},
    }
    # Only when the event has them: every other payload stays byte-for-byte what it always was.
    for name in ("run_id", "parent_event_id"):
        if fields.get(name):
            body[name] = fields[name]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class Subscriber(NamedTuple):
    id: str


def _subscribers(fields: dict) -> list[Subscriber]:
    """Those of the agent's enabled endpoints (read with it, by validate) that take this event: the statement
    chose them by agent; the filters' one rule, subscribes, decides."""
    event_type, agent_id = fields["type"], fields["agent"].id
    return [Subscriber(row.endpoint_id) for row in fields["endpoints"]
            if subscribes(row.event_types, row.agent_ids, event_type, agent_id)]


# Every event's statements, built once with bound parameters: building and hashing a statement cost more than
# running it. Core, run by core(): the ORM's machinery was a fifth of an ingest. The tenant is a parameter.
@functools.cache
def _agent_lookup():
    """The agent with every endpoint that takes its events, one row each (one row of NULLs for none): the
    endpoints come in the agent's statement, not one of their own. They are found through endpoint_agents (the
    agent's own rows and ALL_AGENTS'), so the tenant's endpoints for other agents are never read. Two outer
    joins, not one of a join: SQLite would build that join for every endpoint first. A disabled endpoint's
    row has NULLs for the endpoint, which validate drops."""
    agents, endpoints, takes = Agent.__table__, Endpoint.__table__, EndpointAgent.__table__
    takes_agent = and_(takes.c.tenant_id == agents.c.tenant_id,
                       takes.c.agent_id.in_([agents.c.id, literal(ALL_AGENTS)]))
    enabled = and_(endpoints.c.id == takes.c.endpoint_id, endpoints.c.tenant_id == takes.c.tenant_id,
                   endpoints.c.enabled.is_(True))
    return (select(agents.c.id, agents.c.tenant_id, agents.c.name, agents.c.event_budget_per_minute,
                   endpoints.c.id.label("endpoint_id"), endpoints.c.event_types, endpoints.c.agent_ids)
            .select_from(agents.outerjoin(takes, takes_agent).outerjoin(endpoints, enabled))
            .where(agents.c.id == bindparam("agent_id"), agents.c.tenant_id == bindparam("tenant_id")))


_INSERT_EVENT, _INSERT_DELIVERY = insert(Event.__table__), insert(Delivery.__table__)
_INSERT_IDEMPOTENCY_KEY = insert(IdempotencyKey.__table__)


def _store(event_type: str, agent, fields: dict, endpoints: list,
           api_key_id: str | None = None, trace: Trace | None = None) -> tuple[dict, list[Next]]:
    """Insert the event and its deliveries (uncommitted). Returns the event's row and its deliveries. ``agent``
    has an ``id`` and a ``name`` (None for a test event), each endpoint an ``id``: rows or models alike.

    Core INSERTs, not the unit of work: the rows are new and final, and this is every event's path (see
    _agent_lookup). The tenant is set here explicitly; the deliveries' status, attempt count and timestamps
    come from the columns' defaults."""
    now = utcnow()
    tenant_id = require_tenant()
    occurred_at = fields.get("occurred_at") or now
    event_id = new_id("evt")  # needed before insert: the body carries it
    trace = trace or Trace()
    event = dict(id=event_id, tenant_id=tenant_id, type=event_type, agent_id=agent.id if agent else None,
                 conversation_id=fields.get("conversation_id"), run_id=fields.get("run_id"),
                 parent_event_id=fields.get("parent_event_id"), traceparent=trace.traceparent,
                 tracestate=trace.tracestate, api_key_id=api_key_id, occurred_at=occurred_at, received_at=now,
                 body=_body(event_id, event_type, occurred_at, agent, fields))
    core(_INSERT_EVENT, event)
    deliveries = [dict(id=new_id("dlv"), tenant_id=tenant_id, event_id=event_id, endpoint_id=endpoint.id,
                       event_type=event_type, agent_id=event["agent_id"], next_attempt_at=now, enqueued_at=now)
                  for endpoint in endpoints]
    if deliveries:
        core(_INSERT_DELIVERY, deliveries)
    return event, [Next(d["id"]) for d in deliveries]


def _queue(tenant_id: str, deliveries: list[Next]) -> None:
    """Wake the tenant's drain for the new deliveries (it holds those to paced endpoints for their slots)."""
    if deliveries and not wake_drain(tenant_id):
        # Tell the sweep these were never queued, so it picks them up as soon as Redis is back.
        ids = [d.id for d in deliveries]
        db.session.execute(db.update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=None))
        db.session.commit()


def _replay(key: str, api_key: Caller | None = None) -> Accepted | None:
    record = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == key)).one_or_none()
    if record is None:
        return None
    if record.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        db.session.delete(record)
        db.session.flush()
        return None
    event = get_owned(Event, record.event_id)
    if api_key is not None and api_key.agent_id is not None and event.agent_id != api_key.agent_id:
        # A per-agent key sees only its agent's events, not even another's answer.
        raise ValidationError("Idempotency-Key", "was already used for an event of another agent")
    count = db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.event_id == event.id))
    return Accepted(event.id, event.type, count, replayed=True)


def ingest(data: dict, idempotency_key: str | None = None, *, api_key: Caller | None = None,
           trace: Trace | None = None) -> Accepted:
    """Store an agent's event durably, fan it out to subscribed endpoints, and queue the deliveries.

    Args:
        data: the request's JSON object.
        idempotency_key: the Idempotency-Key header; a repeat within 24 h replays the first answer.
        api_key: the key that sends it: its scope is enforced and the event records it.
        trace: the request's W3C Trace Context, forwarded to receivers.

    Raises:
        ValidationError: a field fails the contract or the key's scope; the error names it.
        SchemaViolations: the event fails its type's schema (in "reject" mode); it lists every violation.
        BudgetExceeded: the agent has sent its budget of events for the minute.
    """
    if idempotency_key is not None:
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValidationError("Idempotency-Key", "must be 1 to 255 characters")
        replay = _replay(idempotency_key, api_key)
        if replay:
            return replay
    fields = validate(data, api_key)
    budget.spend(fields["agent"])
    endpoints = _subscribers(fields)
    try:
        event, queued = _store(fields["type"], fields["agent"], fields, endpoints,
                               api_key.id if api_key is not None else None, trace)
        if idempotency_key is not None:
            core(_INSERT_IDEMPOTENCY_KEY, dict(
                tenant_id=event["tenant_id"], key=idempotency_key, event_id=event["id"], created_at=event["received_at"]))
        db.session.commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race: answer as it did.
        db.session.rollback()
        replay = _replay(idempotency_key, api_key) if idempotency_key else None
        if replay is None:
            raise
        return replay
    _queue(event["tenant_id"], queued)
    return Accepted(event["id"], event["type"], len(queued), warnings=fields["checked"].warnings)


def send_test_event(endpoint_id: str) -> Accepted:
    """Send a webhook.test event to one endpoint, whatever it subscribes to."""
    endpoint = get_owned(Endpoint, endpoint_id)
    require_tenant()
    data = {"message": "This is a test event from AgentHooks.", "endpoint_id": endpoint.id}
    event, queued = _store(TEST_EVENT_TYPE, None, {"data": data}, [endpoint])
    db.session.commit()
    _queue(event["tenant_id"], queued)
    return Accepted(event["id"], event["type"], 1)


def get_event(event_id: str, agent_id: str | None = None) -> Event:
    """The tenant's event; with ``agent_id`` (a per-agent key), only one of that agent's.

    Raises:
        NotFound: no such event (or another agent's).
    """
    event = get_owned(Event, event_id)
    if agent_id is not None and event.agent_id != agent_id:
        raise NotFound(f"no event with id {event_id}")
    return event


def list_events(*, conversation_id: str | None = None, run_id: str | None = None, agent_id: str | None = None,
                event_type: str | None = None, cursor: str | None = None, limit: int = 50):
    """Newest first, optionally of one conversation, run, agent or type. Returns (events, next_cursor)."""
    statement = select(Event)
    for column, value in ((Event.conversation_id, conversation_id), (Event.run_id, run_id),
                          (Event.agent_id, agent_id), (Event.type, event_type)):
        if value:
            statement = statement.where(column == value)
    return page(statement, Event, cursor, limit)


def timeline(*, conversation_id: str | None = None, run_id: str | None = None,
             limit: int = TIMELINE_LIMIT) -> tuple[list[Event], bool]:
    """Every event of one conversation or run, in the order they happened (then arrived), with whether
    there were more than ``limit`` (the newest are left out then)."""
    statement = select(Event)
    if conversation_id:
        statement = statement.where(Event.conversation_id == conversation_id)
    if run_id:
        statement = statement.where(Event.run_id == run_id)
    if not (conversation_id or run_id):
        return [], False
    rows = list(db.session.scalars(statement.order_by(Event.occurred_at, Event.id).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def recent(column: str, limit: int = 50, scan: int = 2000) -> list[tuple[str, int, datetime]]:
    """The tenant's latest conversations (``column="conversation_id"``) or runs (``"run_id"``) among its last
    ``scan`` events that had one: (id, events among those, last received), most recent first."""
    attribute = getattr(Event, column)
    latest = (select(attribute.label("key"), Event.received_at)
              .where(Event.tenant_id == require_tenant(), attribute.is_not(None))
              .order_by(Event.id.desc()).limit(scan).subquery())
    last = func.max(latest.c.received_at).label("last")
    rows = db.session.execute(select(latest.c.key, func.count(), last).group_by(latest.c.key)
                              .order_by(last.desc()).limit(limit))
    return [(key, count, moment) for key, count, moment in rows]


def deliveries_of(event_ids: list[str]) -> dict[str, list[Delivery]]:
    """Each event's deliveries (oldest first), in one query."""
    found: dict[str, list[Delivery]] = {event_id: [] for event_id in event_ids}
    if event_ids:
        for delivery in db.session.scalars(select(Delivery).where(Delivery.event_id.in_(event_ids))
                                           .order_by(Delivery.id)):
            found[delivery.event_id].append(delivery)
    return found


def event_deliveries(event_id: str) -> list[Delivery]:
    return list(db.session.scalars(select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id)))
