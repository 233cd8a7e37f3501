"""The dashboard's counters, kept in the transactions that change what they count: each endpoint's attempts
per clock hour and rounded duration (endpoint health), and its deliveries per hour of their creation and
status (the overview's chart).

The dashboard shows each endpoint's success rate and p95 duration over the last 24 hours. Read from the
attempts themselves that is linear in a day's attempts (2.6 million for a tenant sending 10 events a second
to 3 endpoints); read from these tallies it is bounded by the endpoints, 24 hours and the durations seen.
Durations are kept rounded up to two significant figures. Rounding never reorders them, so the nearest-rank
percentile of the tallies is the true one rounded up the same way (an error under 10 %). Each endpoint's hour
is also kept summed over its durations (attempt_totals): the overview ranks every endpoint by its attempts,
a thousand endpoints' tallies are a million rows a day, and it shows the p95 of ten.

The overview's chart shows the deliveries created in each of the last 24 hours by their status now. Counted
in the deliveries' index, that was linear in a day's deliveries: 0.8 s on PostgreSQL at a million a day.
Those past pending (retrying, succeeded or failed: all but the few not attempted yet) are counted here
instead, as a worker or a user changes their status, in the same transaction: a few rows an endpoint an
hour. Retrying ones count too, as an endpoint that is down keeps a day's deliveries retrying. Retention
and deleted events do not uncount them: the chart keeps showing what happened in the hours it shows.
"""
from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import delete, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..extensions import db
from ..ids import time_of
from ..models import FAILED, RETRYING, SUCCEEDED, AttemptTally, AttemptTotal, DeliveryTally, attempt_succeeded

# What retention keeps: twice what the dashboard reads, so that no tally it shows is ever pruned.
KEPT = timedelta(hours=48)
_table, _totals, _deliveries = AttemptTally.__table__, AttemptTotal.__table__, DeliveryTally.__table__
_KEY = ("tenant_id", "endpoint_id", "hour", "up_to_ms")
_TOTALS_KEY = ("tenant_id", "endpoint_id", "hour")
_DELIVERIES_KEY = ("tenant_id", "endpoint_id", "hour", "status")
TALLIED = (RETRYING, SUCCEEDED, FAILED)  # the statuses of delivery_tallies: all but pending
_UNWRITTEN = "agenthooks.delivery_tallies"  # in a session's info: its counts not written yet


def rounded_up(duration_ms: int) -> int:
    """A duration rounded up to two significant figures: 42 stays 42, 183 becomes 190, 1,001 becomes 1,100."""
    if duration_ms <= 100:
        return max(duration_ms, 0)
    step = 10 ** (len(str(duration_ms)) - 2)
    return -(-duration_ms // step) * step


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC clock hour ``moment`` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def tally_rows(tenant_id: str, attempts: Iterable[Mapping]) -> list[dict]:
    """The tallies that ``attempts`` add to, in key order: rows of counts to add."""
    counts = defaultdict(lambda: [0, 0])
    for attempt in attempts:
        count = counts[attempt["endpoint_id"], hour_of(attempt["started_at"]), rounded_up(attempt["duration_ms"])]
        count[0] += 1
        count[1] += attempt_succeeded(attempt["response_status"], attempt["error"])
    return [dict(tenant_id=tenant_id, endpoint_id=endpoint_id, hour=hour, up_to_ms=up_to, attempts=n, successes=ok)
            for (endpoint_id, hour, up_to), (n, ok) in sorted(counts.items())]


def total_rows(rows: list[dict]) -> list[dict]:
    """``tally_rows`` summed over their durations: what they add to their endpoints' hours, in key order."""
    totals = {}
    for row in rows:  # in key order already: (tenant, endpoint, hour) first
        total = totals.setdefault((row["endpoint_id"], row["hour"]), dict(
            tenant_id=row["tenant_id"], endpoint_id=row["endpoint_id"], hour=row["hour"], attempts=0, successes=0))
        total["attempts"] += row["attempts"]
        total["successes"] += row["successes"]
    return list(totals.values())


def add(connection, tenant_id: str, attempts: Iterable[Mapping]) -> None:
    """Count stored ``attempts`` of the tenant (rows as ``attempt_row`` makes them) in their tallies and their
    endpoints' hours' totals, in the transaction of ``connection``. Rows go in key order, so that on PostgreSQL
    two workers' transactions lock the rows they share in the same order, and one waits for the other rather
    than deadlocking."""
    if rows := tally_rows(tenant_id, attempts):
        dialect = connection.dialect.name
        connection.execute(_upsert(dialect), rows)
        connection.execute(_upsert(dialect, _totals, _TOTALS_KEY), total_rows(rows))


@functools.cache
def _upsert(dialect: str, table=_table, key=_KEY, counts=("attempts", "successes")):
    """INSERT of tallies' rows that adds each row's ``counts`` to those of the row already under its key."""
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    return statement.on_conflict_do_update(index_elements=key, set_={
        name: table.c[name] + statement.excluded[name] for name in counts})


def forget_endpoint(connection, tenant_id: str, endpoint_id: str) -> None:
    """Delete a deleted endpoint's tallies (its deliveries went with it)."""
    for table in (_table, _totals, _deliveries):
        connection.execute(delete(table).where(table.c.tenant_id == tenant_id, table.c.endpoint_id == endpoint_id))


def prune(connection, now: datetime) -> int:
    """Delete every tenant's tallies older than KEPT; returns how many went (a few hours' worth a run)."""
    return sum(connection.execute(delete(table).where(table.c.hour < hour_of(now - KEPT))).rowcount
               for table in (_table, _totals, _deliveries))


# ---- deliveries by status, for the overview's chart ----

class Change(NamedTuple):
    """A delivery's status before a change (None: it is new) and after."""

    delivery_id: str
    endpoint_id: str
    was: str | None
    now: str


def delivery_rows(tenant_id: str, changes: Iterable[Change], now: datetime | None = None) -> list[dict]:
    """What ``changes`` add to the deliveries' tallies, in key order: rows of counts to add (one taken away
    from the status a delivery leaves). Hours older than KEPT are left out: pruned already."""
    return _rows(_deltas(tenant_id, changes, now))


def _deltas(tenant_id: str, changes: Iterable[Change], now: datetime | None = None) -> Counter:
    """``changes`` as counts to add, by the tallies' key."""
    oldest = hour_of((now or datetime.now(UTC)) - KEPT)
    counts = Counter()
    for change in changes:
        if change.was == change.now:
            continue
        hour = hour_of(time_of(change.delivery_id))
        if hour < oldest:
            continue
        if change.was in TALLIED:
            counts[tenant_id, change.endpoint_id, hour, change.was] -= 1
        if change.now in TALLIED:
            counts[tenant_id, change.endpoint_id, hour, change.now] += 1
    return counts


def _rows(counts: Counter) -> list[dict]:
    return [dict(zip(_DELIVERIES_KEY, key), deliveries=n) for key, n in sorted(counts.items()) if n]


def add_deliveries(connection, rows: list[dict]) -> None:
    """Add ``delivery_rows`` to the tallies, now, in the transaction of ``connection``."""
    if rows:
        connection.execute(_upsert(connection.dialect.name, _deliveries, _DELIVERIES_KEY, ("deliveries",)), rows)


def count_changes(tenant_id: str, changes: Iterable[Change]) -> None:
    """Count ``changes`` of the tenant's deliveries in the session's transaction: written as it commits,
    after everything else it writes, in key order. On PostgreSQL a tally's row stays locked from its write
    to the commit; written last and in order, two transactions that share tallies wait for each other's
    commit and never for each other (a web process disabling an endpoint and a worker recording its
    attempts, say)."""
    db.session.info.setdefault(_UNWRITTEN, Counter()).update(_deltas(tenant_id, changes))


@event.listens_for(Session, "before_commit")
def _write_changes(session) -> None:
    if unwritten := session.info.pop(_UNWRITTEN, None):
        session.flush()  # the rest first: nothing is locked after the tallies
        add_deliveries(session.connection(), _rows(unwritten))


@event.listens_for(Session, "after_rollback")
def _forget_changes(session) -> None:
    session.info.pop(_UNWRITTEN, None)
