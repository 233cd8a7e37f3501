"""The delivery job: claim a delivery, sign and POST its event, record the attempt, schedule the next."""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.orm import joinedload

from webapp import __version__
from webapp.extensions import db
from webapp.models import FAILED, MANUAL, PENDING, RETRYING, SCHEDULED, Delivery, Endpoint, Event, utcnow
from webapp.queue import enqueue_deliveries, enqueue_delivery_in, job_id, next_of
from webapp.services.deliveries import record_outcome
from webapp.services.endpoints import signing_secrets
from webapp.signing import signature_header

from . import sender
from .context import job_context
from .pacing import hold, reserve_slot

log = logging.getLogger(__name__)
# A job that arrives at most this early is put back for its due time.
_EARLY_SECONDS = 5
# How long past the attempt's own timeout a claim lasts; a worker killed mid-attempt frees it then.
LEASE_HEADROOM = 10


def _claim(delivery_id: str) -> Delivery | None:
    """Lease the delivery if it is due and nobody holds it; the database makes this atomic across workers.

    Returns the claimed delivery with its endpoint and event, loaded in the claim's transaction (one
    round trip instead of three); the caller commits. Returns None, committed, when it was not claimed."""
    now = utcnow()
    lease = now + timedelta(seconds=current_app.config["DELIVERY_TIMEOUT"] + LEASE_HEADROOM)
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id,
               or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
               Delivery.next_attempt_at <= now,
               or_(Delivery.manual_pending.is_(True), Delivery.status.in_((PENDING, RETRYING))))
        .values(lease_until=lease)
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


def deliver(tenant_id: str, delivery_id: str, trigger: str = SCHEDULED, slot_reserved: bool = False) -> None:
    """Attempt one delivery (the job RQ runs). ``trigger`` is informative: the row says what is due.
    ``slot_reserved``: this job was put back for a pacing slot it already holds."""
    with job_context(tenant_id):
        delivery = _claim(delivery_id)
        if delivery is None:
            _not_claimed(tenant_id, delivery_id, trigger)
            return
        endpoint, event = delivery.endpoint, delivery.event
        attempt_trigger = MANUAL if delivery.manual_pending else SCHEDULED
        if not endpoint.enabled and attempt_trigger == SCHEDULED:
            delivery.status, delivery.next_attempt_at, delivery.lease_until = FAILED, None, None
            delivery.last_error = "endpoint disabled"
            db.session.commit()
            return
        wait = 0.0 if slot_reserved else reserve_slot(endpoint)
        if wait:
            _put_back(tenant_id, delivery, wait, attempt_trigger)
            return
        url, body, headers = endpoint.url, event.body, headers_for(event, endpoint)
        db.session.commit()  # hold no transaction open across the HTTP call (the commit expires the rows)
        outcome = sender.post(url, body, headers, timeout=current_app.config["DELIVERY_TIMEOUT"],
                              allow_private=current_app.config["ALLOW_PRIVATE_DESTINATIONS"])
        # A resend may have been asked for while this scheduled attempt was in flight.
        db.session.refresh(delivery, ["manual_pending"])
        resend_waiting = attempt_trigger == SCHEDULED and delivery.manual_pending
        delay = record_outcome(delivery, endpoint, outcome, attempt_trigger)
        if resend_waiting:
            delivery.manual_pending, delivery.next_attempt_at, delivery.enqueued_at = True, utcnow(), utcnow()
        following = next_of(delivery)  # read before the commit expires the row
        db.session.commit()
        log.info("delivery %s attempt %d: %s", delivery_id, following.attempt_count,
                 outcome.error or outcome.response_status)
        if resend_waiting:
            enqueue_deliveries(tenant_id, [following], MANUAL)
        elif delay is not None and not enqueue_delivery_in(delay, tenant_id, following):
            db.session.execute(update(Delivery).where(Delivery.id == delivery_id).values(enqueued_at=None))
            db.session.commit()
