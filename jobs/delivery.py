"""The delivery jobs: claim due deliveries, sign and POST their events, record the attempts, schedule the next.

Two jobs share this code. ``deliver_due`` (a *drain*) is the main road: ingest wakes it, and it claims a
batch of the tenant's due deliveries in one statement, sends them concurrently in per-endpoint lanes
(jobs/lanes.py) and records the outcomes in one transaction, so RQ's bookkeeping and the commits are paid
once per batch. ``deliver`` attempts one delivery: retries at their time, resends, paced endpoints (each
delivery waits for its own slot) and whatever the sweep finds lost."""
from __future__ import annotations

import logging
import time
from concurrent.futures import wait
from datetime import datetime, timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import joinedload

from webapp import __version__
from webapp.extensions import db
from webapp.models import FAILED, MANUAL, PENDING, RETRYING, SCHEDULED, Delivery, Endpoint, Event, utcnow
from webapp.queue import (drain_started, enqueue_deliveries, enqueue_deliveries_at, enqueue_delivery_in, job_id,
                          next_of, wake_drain)
from webapp.services.deliveries import Outcome, record_outcome
from webapp.services.endpoints import signing_secrets
from webapp.signing import signature_header
from webapp.tenancy import tenant_scope

from . import sender
from .context import job_context
from .lanes import SLOW_SECONDS, lanes
from .pacing import hold, reserve_slot

log = logging.getLogger(__name__)
# A job that arrives at most this early is put back for its due time.
_EARLY_SECONDS = 5
# How long past the attempt's own timeout a claim lasts; a worker killed mid-attempt frees it then.
LEASE_HEADROOM = 10
# Deliveries a drain claims at a time: enough to pay RQ's and the database's fixed costs once for many,
# few enough that tenants sharing a worker take turns often (the shards are served round robin).
BATCH = 20
# A drain's turn: it claims batch after batch for this long (each batch a claim and a commit, not a new
# job's ~28 Redis commands), then queues its successor behind the other tenants' drains on its shard.
TURN_SECONDS = 0.1


def _claimable(now):
    """Due, and nobody holds it: the conditions of every claim."""
    return (or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            Delivery.next_attempt_at <= now,
            or_(Delivery.manual_pending.is_(True), Delivery.status.in_((PENDING, RETRYING))))


def _lease(now):
    return now + timedelta(seconds=current_app.config["DELIVERY_TIMEOUT"] + LEASE_HEADROOM)


def _claim(delivery_id: str) -> Delivery | None:
    """Lease the delivery if it is due and nobody holds it; the database makes this atomic across workers.

    Returns the claimed delivery with its endpoint and event, loaded in the claim's transaction (one
    round trip instead of three); the caller commits. Returns None, committed, when it was not claimed."""
    now = utcnow()
    result = db.session.execute(
        update(Delivery).where(Delivery.id == delivery_id, *_claimable(now)).values(lease_until=_lease(now))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.commit()
        return None
    return db.session.scalars(select(Delivery).where(Delivery.id == delivery_id)
                              .options(joinedload(Delivery.endpoint), joinedload(Delivery.event))).one()


def _not_claimed(tenant_id: str, delivery_id: str, trigger: str) -> None:
    """Another job holds the delivery, or it is not due: usually nothing to do, twice there is."""
    delivery = db.session.scalars(select(Delivery).where(Delivery.id == delivery_id)).one_or_none()
    if delivery is None or delivery.next_attempt_at is None:
        return
    # (A resend that found a scheduled attempt in flight needs nothing: that attempt queues it when done.)
    early = (delivery.next_attempt_at - utcnow()).total_seconds()
    due_soon = delivery.status in (PENDING, RETRYING) or delivery.manual_pending
    if due_soon and delivery.lease_until is None and 0 < early <= _EARLY_SECONDS:
        # Clocks of web and worker machines differ a little: run it when it is due rather than wait for the sweep.
        enqueue_delivery_in(early, tenant_id, next_of(delivery), trigger, job_id_suffix=_fresh_suffix())


def _put_back(tenant_id: str, delivery: Delivery, seconds: float, trigger: str) -> None:
    """Release the claim and send at its pacing slot, ``seconds`` from now, without spending an attempt."""
    delivery.lease_until = None
    delivery.next_attempt_at = utcnow() + timedelta(seconds=seconds)
    delivery.enqueued_at = utcnow()
    db.session.commit()
    hold(tenant_id, next_of(delivery), trigger, seconds, job_id(delivery) + _fresh_suffix())


def _fresh_suffix() -> str:
    """A job id suffix for a job that re-queues its own attempt: the running job's id (and hash)
    is deleted when it returns, so the new one must not share it."""
    return f"-r{time.time_ns()}"


# The event's run, parent and W3C Trace Context go along as headers when it has them (the run and parent
# are in the signed body too; these copies are for routing and tracing without parsing it).
_CONTEXT_HEADERS = (("agenthooks-run-id", "run_id"), ("agenthooks-parent-event-id", "parent_event_id"),
                    ("traceparent", "traceparent"), ("tracestate", "tracestate"))


def headers_for(event: Event, endpoint: Endpoint) -> dict:
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": f"AgentHooks/{__version__}",
        "webhook-id": event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(event.id, timestamp, event.body, signing_secrets(endpoint)),
    }
    for header, attribute in _CONTEXT_HEADERS:
        value = getattr(event, attribute)
        if value:
            headers[header] = value
    return headers


class _Send(NamedTuple):
    """One attempt to make, read from the claimed rows before their transaction ends."""

    delivery_id: str
    endpoint_id: str
    url: str
    body: str
    headers: dict
    trigger: str  # MANUAL for a resend, else SCHEDULED
    lease_until: datetime
    timeout: float
    allow_private: bool


def _prepare(delivery: Delivery) -> _Send | None:
    """What the claimed delivery's attempt needs; None when it is settled without one (endpoint disabled)."""
    endpoint, event = delivery.endpoint, delivery.event
    trigger = MANUAL if delivery.manual_pending else SCHEDULED
    if not endpoint.enabled and trigger == SCHEDULED:
        delivery.status, delivery.next_attempt_at, delivery.lease_until = FAILED, None, None
        delivery.last_error = "endpoint disabled"
        return None
    config = current_app.config
    return _Send(delivery.id, endpoint.id, endpoint.url, event.body, headers_for(event, endpoint), trigger,
                 delivery.lease_until, config["DELIVERY_TIMEOUT"], config["ALLOW_PRIVATE_DESTINATIONS"])


def _attempt(send: _Send) -> Outcome | None:
    """POST it (in any thread: it needs no app context). None when its claim would run out before the
    attempt could end (it waited in its lane too long): it is handed back unattempted, never sent twice."""
    if utcnow() + timedelta(seconds=send.timeout + 1) > send.lease_until:
        return None
    return sender.post(send.url, send.body, send.headers, timeout=send.timeout, allow_private=send.allow_private)


def _record(tenant_id: str, results: list[tuple[_Send, Outcome | None]]) -> None:
    """Store attempts' outcomes in one transaction, then queue what follows each (a retry, a resend)."""
    handed_back = [send for send, outcome in results if outcome is None]
    results = [(send, outcome) for send, outcome in results if outcome is not None]
    for send in handed_back:  # only while the claim is still ours (<=: a later claim has a later lease)
        db.session.execute(update(Delivery).where(Delivery.id == send.delivery_id,
                                                  Delivery.lease_until <= send.lease_until)
                           .values(lease_until=None).execution_options(synchronize_session=False))
    rows = {d.id: d for d in db.session.scalars(
        select(Delivery).where(Delivery.id.in_([send.delivery_id for send, _ in results]))
        .options(joinedload(Delivery.endpoint)).execution_options(populate_existing=True))}
    resends, retries = [], []
    for send, outcome in results:
        delivery = rows[send.delivery_id]
        # A resend may have been asked for while this scheduled attempt was in flight.
        resend_waiting = send.trigger == SCHEDULED and delivery.manual_pending
        delay = record_outcome(delivery, delivery.endpoint, outcome, send.trigger)
        if resend_waiting:
            delivery.manual_pending, delivery.next_attempt_at, delivery.enqueued_at = True, utcnow(), utcnow()
            resends.append(next_of(delivery))
        elif delay is not None:
            retries.append((delay, next_of(delivery)))  # read before the commit expires the row
        log.info("delivery %s attempt %d: %s", delivery.id, delivery.attempt_count,
                 outcome.error or outcome.response_status)
    db.session.commit()
    if resends:
        enqueue_deliveries(tenant_id, resends, MANUAL)
    if retries and not enqueue_deliveries_at(retries, tenant_id):
        db.session.execute(update(Delivery).where(Delivery.id.in_([d.id for _, d in retries]))
                           .values(enqueued_at=None).execution_options(synchronize_session=False))
        db.session.commit()
    if handed_back:
        wake_drain(tenant_id)


def deliver(tenant_id: str, delivery_id: str, trigger: str = SCHEDULED, slot_reserved: bool = False) -> None:
    """Attempt one delivery (the job RQ runs). ``trigger`` is informative: the row says what is due.
    ``slot_reserved``: this job was put back for a pacing slot it already holds."""
    with job_context(tenant_id):
        delivery = _claim(delivery_id)
        if delivery is None:
            _not_claimed(tenant_id, delivery_id, trigger)
            return
        send = _prepare(delivery)
        if send is None:
            db.session.commit()
            return
        wait_seconds = 0.0 if slot_reserved else reserve_slot(delivery.endpoint)
        if wait_seconds:
            _put_back(tenant_id, delivery, wait_seconds, send.trigger)
            return
        db.session.commit()  # hold no transaction open across the HTTP call
        _record(tenant_id, [(send, _attempt(send))])


def _claim_batch(tenant_id: str) -> list[Delivery]:
    """Lease up to BATCH of the tenant's due deliveries, earliest first, in one statement. None of a paced
    endpoint (each of those waits for its own slot, in ``deliver``), none of an endpoint whose lane is full
    in this process, and no more than a lane's width of one that is slow to answer (the rest would wait in
    its lane while their claims ran out). Returns them with their endpoints and events."""
    now = utcnow()
    endpoints = select(Endpoint.id).where(Endpoint.tenant_id == tenant_id, Endpoint.rate_limit.is_(None))
    if full := lanes.full():
        endpoints = endpoints.where(Endpoint.id.not_in(full))
    due = (select(Delivery.id, Delivery.endpoint_id, Delivery.next_attempt_at)
           .where(Delivery.tenant_id == tenant_id, *_claimable(now), Delivery.endpoint_id.in_(endpoints))
           .order_by(Delivery.next_attempt_at))
    if slow := lanes.slow():
        # Among the earliest due rows (bounded, so a backlog costs no more than a short one): number
        # each endpoint's, and keep a lane's width of the slow ones.
        due = due.limit(BATCH * 5).subquery()
        ranked = select(due.c.id, due.c.endpoint_id, func.row_number().over(
            partition_by=due.c.endpoint_id, order_by=(due.c.next_attempt_at, due.c.id)).label("n")).subquery()
        chosen = (select(ranked.c.id).where(or_(ranked.c.n <= lanes.width, ranked.c.endpoint_id.not_in(slow)))
                  .limit(BATCH))
    else:
        chosen = select(due.limit(BATCH).subquery().c.id)
    ids = db.session.scalars(
        update(Delivery).where(Delivery.id.in_(chosen), *_claimable(now)).values(lease_until=_lease(now))
        .returning(Delivery.id).execution_options(synchronize_session=False)).all()
    if not ids:
        return []
    return list(db.session.scalars(select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.next_attempt_at)
                                   .options(joinedload(Delivery.endpoint), joinedload(Delivery.event))))


def _record_later(app, tenant_id: str, send: _Send, future) -> None:
    """Record an attempt that outlasted its drain's patience, in the lane thread that made it."""
    try:
        with app.app_context(), tenant_scope(tenant_id):
            try:
                _record(tenant_id, [(send, future.result())])
            finally:
                db.session.remove()
        wake_drain(tenant_id)  # its lane has room again: deliveries left for it can be claimed
    except Exception:  # the claim runs out and the sweep queues the delivery again; logged with its traceback
        log.exception("could not record the attempt of delivery %s", send.delivery_id)


def _drain_batch(app, tenant_id: str) -> int:
    """Claim a batch, attempt it, record what ended within the patience; returns how many were claimed."""
    claimed = _claim_batch(tenant_id)
    sends = [send for send in map(_prepare, claimed) if send is not None]
    db.session.commit()  # the claims are ours; hold no transaction open across the HTTP calls
    futures = {lanes.submit(send.endpoint_id, _attempt, send): send for send in sends}
    expected_slow = {f for f, send in futures.items() if lanes.is_slow(send.endpoint_id)}
    # Wait a moment for the batch, not for a slow receiver: its lane records it when it answers.
    done, slow = wait(futures.keys() - expected_slow, timeout=SLOW_SECONDS)
    for future in slow:
        lanes.mark_slow(futures[future].endpoint_id)
    for future in slow | expected_slow:
        future.add_done_callback(lambda f, send=futures[future]: _record_later(app, tenant_id, send, f))
    if done:
        _record(tenant_id, [(futures[future], future.result()) for future in done])
    return len(claimed)


def deliver_due(tenant_id: str) -> None:
    """The drain job: attempt the tenant's due deliveries batch after batch, for one turn at most."""
    drain_started(tenant_id)  # from here on, a wake-up queues a new drain: nothing committed is missed
    turn_ends = time.monotonic() + TURN_SECONDS
    with job_context(tenant_id):
        app = current_app._get_current_object()
        while _drain_batch(app, tenant_id):
            if time.monotonic() > turn_ends:
                break
        else:
            return  # nothing (more) is due now; what is committed later wakes a drain of its own
    wake_drain(tenant_id)  # more may be due: at the back of the shard's queue, so other tenants go first
