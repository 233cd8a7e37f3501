"""Endpoint health's counters: each endpoint's attempts per clock hour and rounded duration, counted as the
attempts are stored, in the same transaction.

The dashboard shows each endpoint's success rate and p95 duration over the last 24 hours. Read from the
attempts themselves that is linear in a day's attempts (2.6 million for a tenant sending 10 events a second
to 3 endpoints); read from these tallies it is bounded by the endpoints, 24 hours and the durations seen.
Durations are kept rounded up to two significant figures. Rounding never reorders them, so the nearest-rank
percentile of the tallies is the true one rounded up the same way (an error under 10 %).
"""
from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from ..models import AttemptTally, attempt_succeeded

# What retention keeps: twice what the dashboard reads, so that no tally it shows is ever pruned.
KEPT = timedelta(hours=48)
_table = AttemptTally.__table__
_KEY = ("tenant_id", "endpoint_id", "hour", "up_to_ms")


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


def add(connection, tenant_id: str, attempts: Iterable[Mapping]) -> None:
    """Count stored ``attempts`` of the tenant (rows as ``attempt_row`` makes them) in their tallies, in the
    transaction of ``connection``. Rows go in key order, so that on PostgreSQL two workers' transactions lock
    the tallies they share in the same order, and one waits for the other rather than deadlocking."""
    if rows := tally_rows(tenant_id, attempts):
        connection.execute(_upsert(connection.dialect.name), rows)


@functools.cache
def _upsert(dialect: str):
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(_table)
    return statement.on_conflict_do_update(index_elements=_KEY, set_={
        "attempts": _table.c.attempts + statement.excluded.attempts,
        "successes": _table.c.successes + statement.excluded.successes})


def forget_endpoint(connection, tenant_id: str, endpoint_id: str) -> None:
    """Delete a deleted endpoint's tallies."""
    connection.execute(delete(_table).where(_table.c.tenant_id == tenant_id, _table.c.endpoint_id == endpoint_id))


def prune(connection, now: datetime) -> int:
    """Delete every tenant's tallies older than KEPT; returns how many went (a few hours' worth a run)."""
    return connection.execute(delete(_table).where(_table.c.hour < hour_of(now - KEPT))).rowcount
