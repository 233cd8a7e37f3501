"""Deliveries: the log, resends, and what follows each attempt."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..models import (DELIVERY_STATUSES, FAILED, MANUAL, RETRYING, SCHEDULED, SUCCEEDED, Attempt, Delivery,
                      Endpoint, attempt_succeeded, utcnow)
from ..queue import enqueue_deliveries, enqueue_deliveries_at, next_of
from .common import ValidationError, get_owned, page
from .endpoints import disable
from .events import isoformat

# Statuses whose Retry-After we honour (the contract: 429, 502, 504).
_RETRY_AFTER_STATUSES = {429, 502, 504}
JITTER = 0.2


@dataclass
class Outcome:
    """What one HTTP attempt came to."""

    started_at: datetime
    duration_ms: int
    response_status: int | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after: float | None = None
    request_headers: dict | None = None

    @property
    def succeeded(self) -> bool:
        return attempt_succeeded(self.response_status, self.error)


def list_deliveries(*, status=None, endpoint_id=None, event_type=None, agent_id=None, cursor=None, limit=50):
    """Newest first. Raises ValidationError for an unknown status or a bad cursor."""
    statement = select(Delivery)
    if status:
        if status not in DELIVERY_STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
        statement = statement.where(Delivery.status == status)
    if endpoint_id:
        statement = statement.where(Delivery.endpoint_id == endpoint_id)
    if event_type:
        statement = statement.where(Delivery.event_type == event_type)
    if agent_id:
        statement = statement.where(Delivery.agent_id == agent_id)
    return page(statement, Delivery, cursor, limit)


def get_delivery(delivery_id: str) -> Delivery:
    return get_owned(Delivery, delivery_id)


def resend(delivery_id: str) -> Delivery:
    """Ask for a new, manual attempt at once (it is recorded in the database first, so it is never lost)."""
    delivery = get_owned(Delivery, delivery_id)
    now = utcnow()
    delivery.manual_pending = True
    delivery.next_attempt_at = now
    delivery.enqueued_at = now
    db.session.commit()
    if not enqueue_deliveries(delivery.tenant_id, [next_of(delivery)], MANUAL):
        delivery.enqueued_at = None
        db.session.commit()
    return delivery


RECOVER_LIMIT = 10000


def recover_rate(endpoint: Endpoint) -> float:
    """Resends a second that recover sends to this endpoint: its own rate limit, else RECOVER_RATE."""
    return endpoint.rate_limit or current_app.config["RECOVER_RATE"]


def recover(endpoint_id: str, since: datetime) -> int:
    """Resend every failed delivery of an endpoint since ``since``, oldest first, paced so the
    receiver is not flooded: at the endpoint's own rate limit, else RECOVER_RATE a second.

    Returns how many deliveries will be resent (at most RECOVER_LIMIT per call).
    """
    endpoint = get_owned(Endpoint, endpoint_id)
    rate = recover_rate(endpoint)
    failed = list(db.session.scalars(
        select(Delivery).where(Delivery.endpoint_id == endpoint.id, Delivery.status == FAILED,
                               Delivery.manual_pending.is_(False), Delivery.created_at >= since)
        .order_by(Delivery.id).limit(RECOVER_LIMIT)))
    now = utcnow()
    schedule = []
    for position, delivery in enumerate(failed):
        offset = position / rate
        delivery.manual_pending = True
        delivery.next_attempt_at = now + timedelta(seconds=offset)
        delivery.enqueued_at = now
        schedule.append((offset, next_of(delivery)))
    db.session.commit()
    # Best effort, like every enqueue: the sweep resends whatever Redis did not take.
    enqueue_deliveries_at(schedule, endpoint.tenant_id, MANUAL)
    return len(schedule)


def retry_delay(scheduled_attempts: int, retry_after: float | None) -> float | None:
    """Seconds until the next scheduled attempt after ``scheduled_attempts`` failed ones, or None when done."""
    schedule = current_app.config["DELIVERY_RETRY_SCHEDULE"]
    if scheduled_attempts > len(schedule):
        return None
    base = schedule[scheduled_attempts - 1]
    delay = base * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 2 * base))
    return delay


def attempt_row(delivery_id: str, endpoint_id: str, outcome: Outcome, trigger: str) -> dict:
    """The row of one attempt, for a bulk INSERT (stored before ``record_outcome`` counts it)."""
    return dict(delivery_id=delivery_id, endpoint_id=endpoint_id, trigger=trigger, started_at=outcome.started_at,
                duration_ms=outcome.duration_ms, response_status=outcome.response_status, error=outcome.error,
                response_body=outcome.response_body, request_headers=outcome.request_headers or {})


def record_outcome(delivery: Delivery, endpoint: Endpoint, outcome: Outcome,
                   trigger: str) -> tuple[dict, float | None]:
    """What a stored attempt does to its delivery: the delivery's new column values (for a bulk UPDATE by
    primary key), and the delay before its next attempt (None: there is none). The endpoint's failing
    streak, and disabling it, are applied to ``endpoint``. Of ``delivery`` (a model or a row), its ``id``,
    ``status`` and ``attempt_count`` are read."""
    was_final = delivery.status in (SUCCEEDED, FAILED)
    values = dict(attempt_count=delivery.attempt_count + 1, last_attempt_at=outcome.started_at,
                  last_response_status=outcome.response_status, last_error=outcome.error, manual_pending=False,
                  lease_until=None)
    delay = None
    if outcome.succeeded:
        values["status"] = SUCCEEDED
        if endpoint.failing_since is not None:  # (even assigning None again would dirty it: an autoflush)
            endpoint.failing_since = None
    else:
        if endpoint.failing_since is None:
            endpoint.failing_since = outcome.started_at
        window = current_app.config["ENDPOINT_DISABLE_AFTER"]
        if outcome.response_status == 410:
            values["status"] = FAILED
            disable(endpoint, f"The endpoint answered 410 Gone on {isoformat(outcome.started_at)}.")
        elif utcnow() - endpoint.failing_since >= timedelta(seconds=window):
            values["status"] = FAILED
            disable(endpoint, f"Every delivery has failed since {isoformat(endpoint.failing_since)} "
                              f"({window / 86400:g} days or more).")
        elif trigger == MANUAL and was_final:
            values["status"] = FAILED
        else:
            scheduled = db.session.scalar(select(func.count()).select_from(Attempt).where(
                Attempt.delivery_id == delivery.id, Attempt.trigger == SCHEDULED))
            retry_after = outcome.retry_after if outcome.response_status in _RETRY_AFTER_STATUSES else None
            delay = retry_delay(max(scheduled, 1), retry_after)
            values["status"] = RETRYING if delay is not None else FAILED
    values["next_attempt_at"] = utcnow() + timedelta(seconds=delay) if delay is not None else None
    values["enqueued_at"] = utcnow() if delay is not None else None
    return values, delay


# ---- dashboard: read-only queries for the live delivery log ----

def changed_since(since: datetime, *, endpoint_id=None, event_type=None, agent_id=None, limit=200) -> list[Delivery]:
    """Deliveries created or changed after ``since``, the earliest change first; at most ``limit``.

    The live log polls with this: the (tenant_id, updated_at) index makes it cheap however long the
    log is. It does not filter by status: a row on the page that moves to another status must still
    be updated there.
    """
    statement = select(Delivery).where(Delivery.updated_at > since)
    if endpoint_id:
        statement = statement.where(Delivery.endpoint_id == endpoint_id)
    if event_type:
        statement = statement.where(Delivery.event_type == event_type)
    if agent_id:
        statement = statement.where(Delivery.agent_id == agent_id)
    return list(db.session.scalars(statement.order_by(Delivery.updated_at, Delivery.id).limit(limit)))
