"""Database models. Every row except a Tenant belongs to exactly one tenant."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from .extensions import db
from .ids import new_id
from .tenancy import TenantMixin


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def _id(prefix: str):
    return mapped_column(String(40), primary_key=True, default=lambda: new_id(prefix))


class Tenant(db.Model):
    __tablename__ = "tenants"
    id: Mapped[str] = _id("ten")
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(TenantMixin, UserMixin, db.Model):
    __tablename__ = "users"
    id: Mapped[str] = _id("usr")
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # owner, admin or viewer (webapp/roles.py says what each may do). The first user of a tenant is its owner.
    role: Mapped[str] = mapped_column(String(16), default="owner", server_default="owner")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class Invitation(TenantMixin, db.Model):
    """A teammate invited by email: the link carries a token of which only the hash is kept."""

    __tablename__ = "invitations"
    id: Mapped[str] = _id("inv")
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_label: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tenant: Mapped[Tenant] = relationship(lazy="joined")

    @property
    def pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > utcnow()


class ApiKey(TenantMixin, db.Model):
    __tablename__ = "api_keys"
    id: Mapped[str] = _id("key")
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A per-agent key sends only as this agent (and reads only its events); None = the whole tenant.
    # No foreign key: deleting the agent must not widen the key (its events are refused from then on).
    agent_id: Mapped[str | None] = mapped_column(String(40))
    # The event types a per-agent key may send; empty or None = any.
    event_types: Mapped[list | None] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    agent: Mapped[Agent | None] = relationship(
        primaryjoin="foreign(ApiKey.agent_id) == Agent.id", viewonly=True, lazy="joined")

    @property
    def is_scoped(self) -> bool:
        return self.agent_id is not None

    def expired(self, now: datetime | None = None) -> bool:
        return expired(self.expires_at, now)


def expired(expires_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether something that lapses at ``expires_at`` (None: never) has lapsed."""
    return expires_at is not None and expires_at <= (now or utcnow())


class Agent(TenantMixin, db.Model):
    __tablename__ = "agents"
    id: Mapped[str] = _id("agt")
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Events a minute this agent may send before ingest answers 429; None = AGENT_EVENT_BUDGET.
    event_budget_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventType(TenantMixin, db.Model):
    """A tenant's custom event type (the built-in catalogue lives in code)."""

    __tablename__ = "event_types"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = _id("etp")
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    # A JSON Schema (draft 2020-12) that events of this type must match; None = anything goes.
    schema: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SchemaMode(TenantMixin, db.Model):
    """An event type (built-in or custom) whose schema only warns, while the tenant's agents catch up.

    A row means "warn"; no row means the default, "reject".
    """

    __tablename__ = "schema_modes"
    __table_args__ = (UniqueConstraint("tenant_id", "event_type"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(16), default="warn")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Endpoint(TenantMixin, db.Model):
    __tablename__ = "endpoints"
    id: Mapped[str] = _id("ep")
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(Text, default="")
    event_types: Mapped[list] = mapped_column(JSON, default=list)  # empty = all
    agent_ids: Mapped[list] = mapped_column(JSON, default=list)  # empty = all
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Signing secrets, encrypted (see crypto.py). The previous one signs alongside for 24 h.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optional pacing: at most this many deliveries per second to this endpoint (None = no limit).
    rate_limit: Mapped[float | None] = mapped_column(Float)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Start of the current run of nothing but failures; drives auto-disable.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# EndpointAgent's agent_id for an endpoint without an agent filter: it takes every agent's events.
ALL_AGENTS = "*"


class EndpointAgent(TenantMixin, db.Model):
    """Whose events an endpoint takes: a row for each agent its filter names, or one for ALL_AGENTS when it has
    none. Ingest finds an agent's endpoints through these, so its cost does not grow with the tenant's other
    agents' endpoints. Database triggers keep them as the endpoints' agent_ids are written (migration 0010),
    whoever writes them: nothing in Python writes this table."""

    __tablename__ = "endpoint_agents"
    # Read by tenant and agent; the primary key begins with tenant_id (and serves the tenant's cascade).
    tenant_id_index = False
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "agent_id", "endpoint_id"), {"sqlite_with_rowid": False})
    agent_id: Mapped[str] = mapped_column(String(40))  # no foreign key: ALL_AGENTS is not an agent
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)


def subscribes(event_types: list | None, agent_ids: list | None, event_type: str, agent_id: str | None) -> bool:
    """Whether an endpoint with these filters (empty: all) takes this event."""
    return (not event_types or event_type in event_types) and (not agent_ids or agent_id in agent_ids)


class Event(TenantMixin, db.Model):
    __tablename__ = "events"
    __table_args__ = (
        # The timeline and GET /events filter on these, newest first or in order.
        Index("ix_events_tenant_conversation", "tenant_id", "conversation_id", "id"),
        Index("ix_events_tenant_run", "tenant_id", "run_id", "id"),
        # The conversations page's latest conversations and runs: the newest events that have one, and no
        # others to step over (migration 0013). Partial, so an event without one writes nothing here.
        Index("ix_events_tenant_id_with_conversation", "tenant_id", "id",
              sqlite_where=text("conversation_id IS NOT NULL"), postgresql_where=text("conversation_id IS NOT NULL")),
        Index("ix_events_tenant_id_with_run", "tenant_id", "id",
              sqlite_where=text("run_id IS NOT NULL"), postgresql_where=text("run_id IS NOT NULL")),
    )
    id: Mapped[str] = _id("evt")
    type: Mapped[str] = mapped_column(String(255))
    agent_id: Mapped[str | None] = mapped_column(String(40), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(255))
    # Another of the tenant's events (checked at ingest); no foreign key, so retention can prune either.
    parent_event_id: Mapped[str | None] = mapped_column(String(40))
    # The W3C Trace Context of the ingest request, forwarded to receivers.
    traceparent: Mapped[str | None] = mapped_column(String(55))
    tracestate: Mapped[str | None] = mapped_column(String(512))
    # The API key that sent the event (None for test events).
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # The exact JSON body every receiver gets, serialised once at ingest.
    body: Mapped[str] = mapped_column(Text)

    api_key: Mapped[ApiKey | None] = relationship(primaryjoin="foreign(Event.api_key_id) == ApiKey.id", viewonly=True)

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class AgentEventTally(TenantMixin, db.Model):
    """How many of an agent's events were received in one clock hour, and when the last of them was. The
    agent list reads these, not the events: counting those is linear in what retention keeps. A database
    trigger on events keeps them (migration 0011), whoever inserts the event: nothing in Python writes them.
    Retention deletes them with the events of their hour."""

    __tablename__ = "agent_event_tallies"
    # Read by tenant, agent and hour; the primary key begins with tenant_id (and serves the tenant's cascade).
    tenant_id_index = False
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "agent_id", "hour"), {"sqlite_with_rowid": False})
    # No foreign key, as for events: an agent's past events, and so its tallies, outlive it.
    agent_id: Mapped[str] = mapped_column(String(40))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)  # the hour's start, UTC
    events: Mapped[int] = mapped_column(Integer)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKey(TenantMixin, db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


PENDING, RETRYING, SUCCEEDED, FAILED = "pending", "retrying", "succeeded", "failed"
DELIVERY_STATUSES = (PENDING, RETRYING, SUCCEEDED, FAILED)


class Delivery(TenantMixin, db.Model):
    __tablename__ = "deliveries"
    # ix_deliveries_tenant_id_id serves every lookup by tenant: one index fewer to write for every delivery
    # stored and every attempt recorded (PostgreSQL updates each index of a row whose indexed columns change).
    # On PostgreSQL the table keeps 30 % of each page free (fillfactor 70, migration 0007), where a claim,
    # which changes no indexed column (jobs/attempts.py: lease), updates its row in place.
    tenant_id_index = False
    __table_args__ = (
        Index("ix_deliveries_tenant_id_id", "tenant_id", "id"),
        Index("ix_deliveries_tenant_status_id", "tenant_id", "status", "id"),
        Index("ix_deliveries_tenant_endpoint_id", "tenant_id", "endpoint_id", "id"),
        # The log's other filters (migration 0012): an agent's or a type's newest, however rare.
        Index("ix_deliveries_tenant_agent_id", "tenant_id", "agent_id", "id"),
        Index("ix_deliveries_tenant_type_id", "tenant_id", "event_type", "id"),
        Index("ix_deliveries_due", "next_attempt_at"),  # the sweep: every tenant's due deliveries
        Index("ix_deliveries_tenant_due", "tenant_id", "next_attempt_at"),  # a drain: one tenant's
        # The live log polls for what changed since its last poll.
        Index("ix_deliveries_tenant_updated", "tenant_id", "updated_at"),
        # Retention prunes by age.
        Index("ix_deliveries_created", "created_at"),
    )
    id: Mapped[str] = _id("dlv")
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    # Copied from the event so the log filters without a join.
    event_type: Mapped[str] = mapped_column(String(255))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due; NULL once the delivery is final and no resend is asked for.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    manual_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # A worker's claim on the delivery while it attempts it; expired claims are abandoned.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a job for the next attempt was last put on the queue (the sweep re-enqueues stale ones).
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    event: Mapped[Event] = relationship()
    endpoint: Mapped[Endpoint] = relationship()
    attempts: Mapped[list["Attempt"]] = relationship(
        back_populates="delivery", order_by="Attempt.id", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def is_final(self) -> bool:
        return self.status in (SUCCEEDED, FAILED) and not self.manual_pending


SCHEDULED, MANUAL = "scheduled", "manual"


def attempt_succeeded(response_status: int | None, error: str | None) -> bool:
    """Whether an attempt succeeded: it got an answer, and a 2xx one."""
    return error is None and response_status is not None and 200 <= response_status < 300


class Attempt(TenantMixin, db.Model):
    __tablename__ = "attempts"
    # Made for the endpoint health (migration 0008), which reads AttemptTally since 0009; it serves every
    # lookup by tenant (and the tenant's cascade), as the index of tenant_id alone it replaced did.
    tenant_id_index = False
    __table_args__ = (Index("ix_attempts_tenant_endpoint_id", "tenant_id", "endpoint_id", "id"),)
    id: Mapped[str] = _id("att")
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    # Copied from the delivery, which never changes endpoint. No foreign key: deleting an endpoint already
    # deletes its deliveries' attempts through them, and a second cascade would want an index of its own.
    endpoint_id: Mapped[str] = mapped_column(String(40))
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(255))
    response_body: Mapped[str | None] = mapped_column(Text)
    request_headers: Mapped[dict] = mapped_column(JSON, default=dict)

    delivery: Mapped[Delivery] = relationship(back_populates="attempts")


class AttemptTally(TenantMixin, db.Model):
    """How many of an endpoint's attempts started in one clock hour took up to ``up_to_ms`` (their duration
    rounded up to two significant figures), and how many of those succeeded. The dashboard's endpoint health
    reads these instead of a day's attempts; webapp/services/tallies.py keeps them as attempts are stored."""

    __tablename__ = "attempt_tallies"
    # Read by tenant, endpoint and hour; the primary key begins with tenant_id (and serves the tenant's cascade).
    # On SQLite the table is that key's B-tree alone (WITHOUT ROWID), not a table and an index to update.
    tenant_id_index = False
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "endpoint_id", "hour", "up_to_ms"), {"sqlite_with_rowid": False})
    # No foreign key, as for attempts: deleting an endpoint deletes its tallies (services/endpoints.py).
    endpoint_id: Mapped[str] = mapped_column(String(40))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)  # the hour's start, UTC
    up_to_ms: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)
    successes: Mapped[int] = mapped_column(Integer)


class AttemptTotal(TenantMixin, db.Model):
    """An endpoint's attempts started in one clock hour, and how many succeeded: AttemptTally's rows of the hour
    summed over their durations. The overview ranks every endpoint by these (a row an endpoint an hour); only
    the percentiles of the endpoints it shows are read from the tallies (a row per duration seen)."""

    __tablename__ = "attempt_totals"
    tenant_id_index = False  # as AttemptTally: the key begins with tenant_id, and is the table on SQLite
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "endpoint_id", "hour"), {"sqlite_with_rowid": False})
    endpoint_id: Mapped[str] = mapped_column(String(40))  # no foreign key: deleting an endpoint deletes these
    hour: Mapped[datetime] = mapped_column(UTCDateTime)  # the hour's start, UTC
    attempts: Mapped[int] = mapped_column(Integer)
    successes: Mapped[int] = mapped_column(Integer)


class DeliveryTally(TenantMixin, db.Model):
    """How many of an endpoint's deliveries created in one clock hour (by their ids' time) are in ``status``,
    retrying, succeeded or failed (all but pending). The overview's chart reads these instead of counting a
    day's deliveries; webapp/services/tallies.py keeps them as statuses change, in the same transaction."""

    __tablename__ = "delivery_tallies"
    tenant_id_index = False  # as AttemptTally: the key begins with tenant_id, and is the table on SQLite
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "endpoint_id", "hour", "status"), {"sqlite_with_rowid": False})
    endpoint_id: Mapped[str] = mapped_column(String(40))  # no foreign key: deleting an endpoint deletes these
    hour: Mapped[datetime] = mapped_column(UTCDateTime)  # the hour's start, UTC
    status: Mapped[str] = mapped_column(String(16))
    deliveries: Mapped[int] = mapped_column(Integer)


class AuditEvent(TenantMixin, db.Model):
    """Who did what to a tenant's keys, secrets and endpoints, from where."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_id_id", "tenant_id", "id"),)
    id: Mapped[str] = _id("aud")
    action: Mapped[str] = mapped_column(String(64))  # e.g. api_key.created, endpoint.secret_revealed
    actor_user_id: Mapped[str | None] = mapped_column(String(40))
    actor_api_key_id: Mapped[str | None] = mapped_column(String(40))
    actor_label: Mapped[str] = mapped_column(String(320), default="")  # email or key name, kept after deletion
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(40))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
