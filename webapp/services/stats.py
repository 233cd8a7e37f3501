"""Read-only statistics for the dashboard: deliveries per hour, endpoint health, what is failing.

Every query here is an ORM query on tenant-owned models, so the tenancy listener scopes it to the
current tenant like any other. They read only recent rows: deliveries through time-ordered ids
(``min_id_at``), so that indexes ending in the id bound the scan, and endpoint health and the chart's
deliveries past pending from hourly tallies (webapp/services/tallies.py), not from the attempts and deliveries.
They work on SQLite and PostgreSQL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, literal, or_, select

from ..extensions import db, plan_for_values
from ..ids import min_id_at
from ..models import (DELIVERY_STATUSES, FAILED, PENDING, RETRYING, AttemptTally, AttemptTotal, Delivery,
                      DeliveryTally, Endpoint, Event, utcnow)
from . import tallies

HOURS = 24  # the overview's window: its chart's bars and the endpoints' health
PERCENTILE = 95
OVERVIEW_ENDPOINTS = 10  # rows of the overview's health table; the endpoint list has them all


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


def hourly_deliveries(now: datetime | None = None, hours: int = HOURS) -> list[Bucket]:
    """Deliveries created in each of the last ``hours`` hours (the current one last), by status.

    The current, partial hour is the last bucket, so the window spans a little more than ``hours``
    hours minus one: every bucket is a whole clock hour.
    """
    first = _first_hour(now, hours)
    buckets = [Bucket(first + timedelta(hours=i)) for i in range(hours)]
    # All but the pending ones from their tallies: a few rows an endpoint an hour (webapp/services/tallies.py).
    tallied = (select(DeliveryTally.hour, DeliveryTally.status, func.sum(DeliveryTally.deliveries))
               .where(DeliveryTally.hour >= first).group_by(DeliveryTally.hour, DeliveryTally.status))
    for hour, status, count in db.session.execute(tallied):
        index = int((hour - first).total_seconds()) // 3600
        if 0 <= index < hours:
            buckets[index].counts[status] += count
    # The pending ones, normally few, in the index (tenant_id, status, id): ids are time-ordered, so an hour's
    # deliveries are a range of ids. One scan of the window's range in the index, without reading the rows, puts
    # each id in its hour by comparisons.
    bounds = [min_id_at("dlv", bucket.start) for bucket in buckets] + [min_id_at("dlv", buckets[-1].end)]
    whens = [(Delivery.id < bound, index) for index, bound in enumerate(bounds[1:-1])]
    hour = case(*whens, else_=hours - 1) if whens else literal(0)
    pending = (select(hour, func.count()).where(Delivery.status == PENDING, Delivery.id >= bounds[0],
                                                Delivery.id < bounds[-1]).group_by(hour))
    plan_for_values()
    for index, count in db.session.execute(pending):
        buckets[index].counts[PENDING] = count
    return buckets


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


def _endpoint_ids(endpoint_ids: list[str] | None) -> list[str]:
    """The endpoints to read: those asked for, or all of the tenant's."""
    return endpoint_ids if endpoint_ids is not None else list(db.session.scalars(select(Endpoint.id)))


def attempt_counts(first_hour: datetime, endpoint_ids: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Per endpoint id (of all, or of ``endpoint_ids``): its attempts started since the clock hour ``first_hour``
    began, and how many succeeded, from their hours' totals: a row an endpoint an hour."""
    rows = db.session.execute(
        select(AttemptTotal.endpoint_id, func.sum(AttemptTotal.attempts), func.sum(AttemptTotal.successes))
        .where(AttemptTotal.endpoint_id.in_(_endpoint_ids(endpoint_ids)),
               AttemptTotal.hour >= tallies.hour_of(first_hour))
        .group_by(AttemptTotal.endpoint_id))
    return {key: (int(attempts), int(successes)) for key, attempts, successes in rows}


def duration_percentiles(first_hour: datetime, endpoint_ids: list[str],
                         percentile: int = PERCENTILE) -> dict[str, int]:
    """Per endpoint id of ``endpoint_ids`` that has attempts since the clock hour ``first_hour`` began: the
    ``percentile``-th percentile (nearest rank) of their durations, from their tallies (a row per rounded
    duration seen an hour: read them for the endpoints shown, not for all)."""
    rows = db.session.execute(
        select(AttemptTally.endpoint_id, AttemptTally.up_to_ms, func.sum(AttemptTally.attempts))
        .where(AttemptTally.endpoint_id.in_(endpoint_ids), AttemptTally.hour >= tallies.hour_of(first_hour))
        .group_by(AttemptTally.endpoint_id, AttemptTally.up_to_ms))
    counts: dict[str, list[tuple[int, int]]] = {}
    for key, up_to, count in rows:
        counts.setdefault(key, []).append((up_to, int(count)))
    return {key: _nearest_rank(pairs, percentile) for key, pairs in counts.items()}


def _nearest_rank(counts: list[tuple[int, int]], percentile: int) -> int:
    """The ``percentile``-th percentile of values given as (value, how many) pairs: the smallest value with
    at least that share of all values at or below it."""
    rank = -(-percentile * sum(n for _, n in counts) // 100)
    seen = 0
    for value, n in sorted(counts):
        seen += n
        if seen >= rank:
            return value
    raise ValueError("no values")


def latest_finished_deliveries(endpoint_ids: list[str] | None = None) -> dict[str, Delivery]:
    """Per endpoint id (of all, or of ``endpoint_ids``): its newest delivery that has been attempted or has
    ended.

    Pending deliveries are skipped: they say nothing yet about how the endpoint is doing. One indexed
    lookup per endpoint, on (tenant_id, endpoint_id, id).
    """
    latest_id = (select(Delivery.id)
                 .where(Delivery.endpoint_id == Endpoint.id, Delivery.status != PENDING)
                 .order_by(Delivery.id.desc()).limit(1)
                 .correlate(Endpoint).scalar_subquery())
    statement = select(Endpoint.id, Delivery).join(Delivery, Delivery.id == latest_id)
    if endpoint_ids is not None:
        statement = statement.where(Endpoint.id.in_(endpoint_ids))
    rows = db.session.execute(statement)
    return {endpoint_id: delivery for endpoint_id, delivery in rows}


def endpoint_health(now: datetime | None = None, endpoint_ids: list[str] | None = None, *,
                    p95: bool = True) -> dict[str, Health]:
    """Per endpoint id (of all, or of ``endpoint_ids``): attempts, success rate and p95 duration over the last
    24 hours (the chart's: 24 clock hours, the current one last), and its latest finished delivery. Endpoints
    with neither are left out (callers use an empty Health). ``p95=False`` leaves the p95 out, for a caller that
    reads every endpoint and shows a few of them (``add_p95``).
    """
    first_hour = _first_hour(now)
    health: dict[str, Health] = {}
    for key, (attempts, successes) in attempt_counts(first_hour, endpoint_ids).items():
        health[key] = Health(attempts=attempts, successes=successes)
    if p95:
        add_p95(health, list(health), now)
    for key, delivery in latest_finished_deliveries(endpoint_ids).items():
        item = health.setdefault(key, Health())
        item.last_status = delivery.status
        item.last_response_status = delivery.last_response_status
        item.last_error = delivery.last_error
        item.last_attempt_at = delivery.last_attempt_at
        item.last_delivery_id = delivery.id
    return health


def add_p95(health: dict[str, Health], endpoint_ids: list[str], now: datetime | None = None) -> None:
    """Fill in the p95 duration over the last 24 hours of those of ``endpoint_ids`` in ``health``."""
    for key, p95_ms in duration_percentiles(_first_hour(now), [key for key in endpoint_ids if key in health]).items():
        health[key].p95_ms = p95_ms


def _first_hour(now: datetime | None, hours: int = HOURS) -> datetime:
    """The first of a window of ``hours`` clock hours (the chart's and the health's: 24), the current one last."""
    return tallies.hour_of(now or utcnow()) - timedelta(hours=hours - 1)


def failing_endpoints(health: dict[str, Health]) -> list[Endpoint]:
    """The endpoints that need attention, newest first: disabled ones, and those whose last delivery failed or is
    retrying. Reads those only, not every endpoint (a tenant with an endpoint per customer's agent has many)."""
    failing = [key for key, item in health.items() if item.failing]
    return list(db.session.scalars(select(Endpoint).where(or_(Endpoint.enabled.is_(False), Endpoint.id.in_(failing)))
                                   .order_by(Endpoint.id.desc())))


def busiest(health: dict[str, Health], limit: int = OVERVIEW_ENDPOINTS) -> list[Endpoint]:
    """At most ``limit`` endpoints: those with the most attempts over the window, busiest first (the newest first
    among equals), then the newest of the others if there is room. Reads those only."""
    newest_first = sorted((key for key, item in health.items() if item.attempts), reverse=True)
    top = sorted(newest_first, key=lambda key: -health[key].attempts)[:limit]
    found = {endpoint.id: endpoint for endpoint in db.session.scalars(select(Endpoint).where(Endpoint.id.in_(top)))}
    chosen = [found[key] for key in top if key in found]
    if len(chosen) < limit:
        chosen += db.session.scalars(select(Endpoint).where(Endpoint.id.not_in(top)).order_by(Endpoint.id.desc())
                                     .limit(limit - len(chosen)))
    return chosen


def has_events() -> bool:
    """Whether the tenant has ever sent an event (test events from the dashboard included)."""
    return db.session.scalars(select(Event.id).limit(1)).first() is not None
