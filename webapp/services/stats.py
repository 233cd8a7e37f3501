"""Read-only statistics for the dashboard: deliveries per hour, endpoint health, what is failing.

Every query here is an ORM query on tenant-owned models, so the tenancy listener scopes it to the
current tenant like any other. They read only recent rows, found through time-ordered ids
(``min_id_at``) so that indexes ending in the id bound the scan ((tenant_id, id) for deliveries,
(tenant_id, endpoint_id, id) for attempts), and they work on SQLite and PostgreSQL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, and_, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from ..extensions import db
from ..ids import min_id_at
from ..models import DELIVERY_STATUSES, FAILED, PENDING, RETRYING, Attempt, Delivery, Endpoint, Event, utcnow

WINDOW = timedelta(hours=24)
# An attempt's id is made when its row is written, after the attempt started, so every attempt started
# since a moment has an id from that moment on; the slack covers a worker whose clock is a little behind.
_ID_SLACK = timedelta(minutes=5)
PERCENTILE = 95


class hour_of(FunctionElement):
    """The UTC hour of a timestamp as text, ``YYYY-MM-DD HH``, on SQLite and PostgreSQL alike."""

    type = String()
    inherit_cache = True


@compiles(hour_of)
def _hour_of_default(element, compiler, **kw):
    return f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')"


@compiles(hour_of, "sqlite")
def _hour_of_sqlite(element, compiler, **kw):
    # SQLAlchemy stores SQLite datetimes as UTC text ("2026-11-26 12:00:05.123456"); see UTCDateTime.
    return f"strftime('%Y-%m-%d %H', {compiler.process(element.clauses, **kw)})"


def _hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Bucket:
    """One hour of deliveries, counted by their status now."""

    start: datetime
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DELIVERY_STATUSES, 0))

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=1)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def hourly_deliveries(now: datetime | None = None, hours: int = 24) -> list[Bucket]:
    """Deliveries created in each of the last ``hours`` hours (the current one last), by status.

    The current, partial hour is the last bucket, so the window spans a little more than ``hours``
    hours minus one: every bucket is a whole clock hour.
    """
    now = now or utcnow()
    first = _hour_start(now) - timedelta(hours=hours - 1)
    buckets = {first + timedelta(hours=i): Bucket(first + timedelta(hours=i)) for i in range(hours)}
    hour = hour_of(Delivery.created_at)
    rows = db.session.execute(
        select(hour, Delivery.status, func.count())
        .where(Delivery.id >= min_id_at("dlv", first), Delivery.created_at >= first)
        .group_by(hour, Delivery.status))
    for label, status, count in rows:
        start = datetime.strptime(label, "%Y-%m-%d %H").replace(tzinfo=UTC)
        if start in buckets and status in buckets[start].counts:
            buckets[start].counts[status] += count
    return list(buckets.values())


@dataclass
class Health:
    """How an endpoint has done: its attempts over the window and its latest finished delivery."""

    attempts: int = 0
    successes: int = 0
    p95_ms: int | None = None
    last_status: str | None = None
    last_response_status: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    last_delivery_id: str | None = None

    @property
    def success_rate(self) -> float | None:
        """Successful attempts as a fraction of all attempts, or None when there were none."""
        return self.successes / self.attempts if self.attempts else None

    @property
    def failing(self) -> bool:
        return self.last_status in (FAILED, RETRYING)


_SUCCEEDED_ATTEMPT = and_(Attempt.error.is_(None), Attempt.response_status >= 200, Attempt.response_status < 300)


def _endpoint_ids(endpoint_id: str | None) -> list[str]:
    """The endpoints to read: the one asked for, or all of the tenant's."""
    return [endpoint_id] if endpoint_id else list(db.session.scalars(select(Endpoint.id)))


def _recent_attempts(since: datetime, endpoint_ids: list[str]):
    """The WHERE clause of the named endpoints' attempts started since ``since``. Named endpoints, not all the
    tenant's attempts: with the id bound, each is one range of ix_attempts_tenant_endpoint_id (tenant,
    endpoint, ids since), where the tenant's attempts by id alone have no index to bound them."""
    return and_(Attempt.endpoint_id.in_(endpoint_ids), Attempt.id >= min_id_at("att", since - _ID_SLACK),
                Attempt.started_at >= since)


@dataclass(frozen=True)
class AttemptSummary:
    """An endpoint's attempts over a window: how many, how many succeeded, and a percentile of their durations."""

    attempts: int
    successes: int
    percentile_ms: int


def attempt_summaries(since: datetime, percentile: int = PERCENTILE,
                      endpoint_id: str | None = None) -> dict[str, AttemptSummary]:
    """Per endpoint id (or for one): its attempts started since ``since``, with the ``percentile``-th
    percentile (nearest rank) of their durations, in one pass over them in the database."""
    recent = _recent_attempts(since, _endpoint_ids(endpoint_id))
    succeeded = case((_SUCCEEDED_ATTEMPT, 1), else_=0)
    if db.session.get_bind().dialect.name == "postgresql":
        # percentile_disc is the nearest rank: the first value whose cumulative share reaches the fraction.
        rows = db.session.execute(
            select(Attempt.endpoint_id, func.count(), func.sum(succeeded),
                   func.percentile_disc(percentile / 100).within_group(Attempt.duration_ms))
            .where(recent).group_by(Attempt.endpoint_id))
    else:  # SQLite has no ordered-set aggregates: rank each endpoint's attempts and keep the one at the rank
        endpoint = Attempt.endpoint_id
        ranked = (
            select(endpoint.label("endpoint_id"), Attempt.duration_ms.label("duration_ms"),
                   func.row_number().over(partition_by=endpoint, order_by=Attempt.duration_ms).label("rank"),
                   func.count().over(partition_by=endpoint).label("n"),
                   func.sum(succeeded).over(partition_by=endpoint).label("successes"))
            .where(recent)).subquery()
        # Nearest rank: the smallest value with at least p % of the values at or below it, ceil(p * n / 100).
        # Joining Endpoint puts a tenant-owned entity in the outer query, so the tenancy listener scopes the
        # statement, subquery included (a bare SELECT from a subquery would escape it).
        rows = db.session.execute(
            select(Endpoint.id, ranked.c.n, ranked.c.successes, ranked.c.duration_ms)
            .join(ranked, ranked.c.endpoint_id == Endpoint.id)
            .where(ranked.c.rank == (percentile * ranked.c.n + 99) // 100))
    return {key: AttemptSummary(count, int(successes or 0), int(duration))
            for key, count, successes, duration in rows}


def latest_finished_deliveries(endpoint_id: str | None = None) -> dict[str, Delivery]:
    """Per endpoint id (or for one): its newest delivery that has been attempted or has ended.

    Pending deliveries are skipped: they say nothing yet about how the endpoint is doing. One indexed
    lookup per endpoint, on (tenant_id, endpoint_id, id).
    """
    latest_id = (select(Delivery.id)
                 .where(Delivery.endpoint_id == Endpoint.id, Delivery.status != PENDING)
                 .order_by(Delivery.id.desc()).limit(1)
                 .correlate(Endpoint).scalar_subquery())
    statement = select(Endpoint.id, Delivery).join(Delivery, Delivery.id == latest_id)
    if endpoint_id:
        statement = statement.where(Endpoint.id == endpoint_id)
    rows = db.session.execute(statement)
    return {endpoint_id: delivery for endpoint_id, delivery in rows}


def endpoint_health(now: datetime | None = None, endpoint_id: str | None = None) -> dict[str, Health]:
    """Per endpoint id (or for one): attempts, success rate and p95 duration over the last 24 h, and
    its latest finished delivery. Endpoints with neither are left out (callers use an empty Health).
    """
    since = (now or utcnow()) - WINDOW
    health: dict[str, Health] = {}
    for key, summary in attempt_summaries(since, endpoint_id=endpoint_id).items():
        health[key] = Health(attempts=summary.attempts, successes=summary.successes, p95_ms=summary.percentile_ms)
    for key, delivery in latest_finished_deliveries(endpoint_id).items():
        item = health.setdefault(key, Health())
        item.last_status = delivery.status
        item.last_response_status = delivery.last_response_status
        item.last_error = delivery.last_error
        item.last_attempt_at = delivery.last_attempt_at
        item.last_delivery_id = delivery.id
    return health


def failing_endpoints(endpoints: list[Endpoint], health: dict[str, Health]) -> list[Endpoint]:
    """The endpoints that need attention: disabled ones, and those whose last delivery failed or is retrying."""
    return [e for e in endpoints if not e.enabled or (e.id in health and health[e.id].failing)]


def has_events() -> bool:
    """Whether the tenant has ever sent an event (test events from the dashboard included)."""
    return db.session.scalars(select(Event.id).limit(1)).first() is not None
