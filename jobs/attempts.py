"""One attempt of a delivery, from its claimed row to its recorded outcome: what both delivery jobs share
(jobs/delivery.py attempts one delivery, jobs/drain.py a batch of them)."""
from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from webapp import __version__
from webapp.extensions import core, db
from webapp.models import FAILED, MANUAL, PENDING, RETRYING, SCHEDULED, Attempt, Delivery, Endpoint, Event, utcnow
from webapp.queue import Next, enqueue_deliveries, enqueue_deliveries_at, wake_drain
from webapp.services import tallies
from webapp.services.deliveries import Outcome, attempt_row, record_outcome
from webapp.services.endpoints import signing_secrets
from webapp.signing import signature_header
from webapp.tenancy import require_tenant

from . import sender

log = logging.getLogger(__name__)
# How long past the attempt's own timeout a claim lasts; a worker killed mid-attempt frees it then.
LEASE_HEADROOM = 10
# The claim's reads and record()'s statements are Core, built once with parameters: the ORM's loading and
# bookkeeping cost a batch more than its statements did. Each spells out the tenant.
_deliveries = Delivery.__table__
_INSERT_ATTEMPT = insert(Attempt.__table__)


def claimable(now):
    """Due, and nobody holds it: the conditions of every claim (on the table's columns, so that Core
    statements can use them too; ``now`` may be a bound parameter)."""
    delivery = Delivery.__table__.c
    return (or_(delivery.lease_until.is_(None), delivery.lease_until < now),
            delivery.next_attempt_at <= now,
            or_(delivery.manual_pending.is_(True), delivery.status.in_((PENDING, RETRYING))))


def lease_from(now):
    return now + timedelta(seconds=current_app.config["DELIVERY_TIMEOUT"] + LEASE_HEADROOM)


def lease(until) -> dict:
    """What a claim (or handing it back, with None) writes: the lease alone. Neither changes anything the log
    shows, so updated_at (the live log's watermark, which its onupdate would stamp) keeps its value. No
    indexed column changes then, and PostgreSQL can update the row in place (HOT: no new entry in any of
    the table's indexes) in the room that the table's fillfactor leaves on each page (migration 0007)."""
    return {"lease_until": until, "updated_at": _deliveries.c.updated_at}


# The event's run, parent and W3C Trace Context go along as headers when it has them (the run and parent
# are in the signed body too; these copies are for routing and tracing without parsing it).
_CONTEXT_HEADERS = (("agenthooks-run-id", "run_id"), ("agenthooks-parent-event-id", "parent_event_id"),
                    ("traceparent", "traceparent"), ("tracestate", "tracestate"))


def headers_for(row, secrets: list[str]) -> dict:
    """The request's headers: the Standard Webhooks ones, signed with each of ``secrets``, and the event's
    context. ``row``: a row of ``claimed()``."""
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": f"AgentHooks/{__version__}",
        "webhook-id": row.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(row.event_id, timestamp, row.body, secrets),
    }
    for header, attribute in _CONTEXT_HEADERS:
        value = getattr(row, attribute)
        if value:
            headers[header] = value
    return headers


class Send(NamedTuple):
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


def claimed(tenant_id: str, ids: list[str]) -> list:
    """The claimed deliveries (of ``ids``), earliest due first, as rows with what their attempts need of
    their events and endpoints: one Core statement, where loading them as models with both joined cost a
    drain more than its claim's other statements together. Sorted here, not by the database: a drain's
    claim turns PostgreSQL's sorts off for its transaction (drain._CLAIM_SETTINGS)."""
    return sorted(core(_claimed(), {"tenant_id": tenant_id, "ids": ids}), key=lambda row: row.next_attempt_at)


@functools.cache
def _claimed():
    events, endpoints = Event.__table__, Endpoint.__table__
    return (select(_deliveries.c.id, _deliveries.c.status, _deliveries.c.next_attempt_at,
                   _deliveries.c.attempt_count, _deliveries.c.manual_pending, _deliveries.c.lease_until,
                   _deliveries.c.endpoint_id,
                   endpoints.c.url, endpoints.c.enabled, endpoints.c.rate_limit, endpoints.c.secret_encrypted,
                   endpoints.c.previous_secret_encrypted, endpoints.c.previous_secret_expires_at,
                   _deliveries.c.event_id, events.c.body, events.c.run_id, events.c.parent_event_id,
                   events.c.traceparent, events.c.tracestate)
            .join_from(_deliveries, events, _deliveries.c.event_id == events.c.id)
            .join_from(_deliveries, endpoints, _deliveries.c.endpoint_id == endpoints.c.id)
            .where(_deliveries.c.tenant_id == bindparam("tenant_id"),
                   _deliveries.c.id.in_(bindparam("ids", expanding=True))))


def trigger_of(row) -> str:
    """What an attempt of the delivery is: a resend asked for (MANUAL), else SCHEDULED."""
    return MANUAL if row.manual_pending else SCHEDULED


def goes_unsent(row) -> bool:
    """A scheduled delivery to a disabled endpoint: prepare() settles it as failed, with no attempt (a resend
    is still sent)."""
    return not row.enabled and trigger_of(row) == SCHEDULED


def prepare(rows: list) -> list[Send]:
    """What the attempts of claimed deliveries (rows of ``claimed()``) need. A delivery to a disabled
    endpoint is settled without one (failed; a resend is still sent). One that cannot be prepared (say, a
    secret that no key decrypts) keeps its claim, which runs out, and is tried again then: it does not
    stop the rest. The caller commits."""
    config = current_app.config
    sends, secrets, settled = [], {}, []
    for row in rows:
        if goes_unsent(row):
            settled.append(tallies.Change(row.id, row.endpoint_id, row.status, FAILED))
            continue
        try:
            if row.endpoint_id not in secrets:  # decrypted once per endpoint, not per delivery
                secrets[row.endpoint_id] = signing_secrets(row)
            headers = headers_for(row, secrets[row.endpoint_id])
        except Exception:  # logged with its traceback
            log.exception("could not prepare delivery %s", row.id)
            continue
        sends.append(Send(row.id, row.endpoint_id, row.url, row.body, headers, trigger_of(row), row.lease_until,
                          config["DELIVERY_TIMEOUT"], config["ALLOW_PRIVATE_DESTINATIONS"]))
    if settled:
        db.session.execute(update(Delivery).where(Delivery.id.in_([change.delivery_id for change in settled])).values(
            status=FAILED, next_attempt_at=None, lease_until=None, last_error="endpoint disabled")
            .execution_options(synchronize_session=False))
        tallies.count_changes(require_tenant(), settled)
    return sends


def attempt(send: Send) -> Outcome | None:
    """POST it (in any thread: it needs no app context). None when its claim would run out before the
    attempt could end (it waited in its lane too long): it is handed back unattempted, never sent twice."""
    if utcnow() + timedelta(seconds=send.timeout + 1) > send.lease_until:
        return None
    return sender.post(send.url, send.body, send.headers, timeout=send.timeout, allow_private=send.allow_private)


def record(tenant_id: str, results: list[tuple[Send, Outcome | None]]) -> None:
    """Store attempts' outcomes in one transaction, then queue what follows each (a retry, a resend).
    A delivery deleted while its attempt was out (with its endpoint) is left gone."""
    try:
        _record(tenant_id, results)
    except (StaleDataError, IntegrityError):  # SQLite: a delete committed between this transaction's read
        db.session.rollback()                  # and its writes (an attempt of a delivery that is gone)
        _record(tenant_id, results)


def _record(tenant_id: str, results: list[tuple[Send, Outcome | None]]) -> None:
    # The endpoints' rows first, in order, as deleting an endpoint takes them (its row, then through the
    # cascade its deliveries'): a record and a delete then wait for each other instead of deadlocking,
    # and the deliveries read below are those that outlived any delete. (PostgreSQL; SQLite has one writer.)
    endpoints = {row.id: row for row in core(
        _lock_endpoints(), {"tenant_id": tenant_id, "ids": sorted({send.endpoint_id for send, _ in results})})}
    handed_back = [send for send, outcome in results if outcome is None]
    results = [(send, outcome) for send, outcome in results if outcome is not None]
    for send in handed_back:  # only while the claim is still ours (<=: a later claim has a later lease)
        db.session.execute(update(Delivery).where(Delivery.id == send.delivery_id,
                                                  Delivery.lease_until <= send.lease_until)
                           .values(lease(None)).execution_options(synchronize_session=False))
    # The rows locked (PostgreSQL) from this read to the commit: a resend asked for meanwhile waits for the
    # commit and then applies in full, rather than being half overwritten by the values written here.
    ids = [send.delivery_id for send, _ in results]
    rows = {row.id: row for row in core(_lock_deliveries(), {"tenant_id": tenant_id, "ids": ids})}
    if gone := [send.delivery_id for send, _ in results if send.delivery_id not in rows]:
        log.info("deliveries %s were deleted during their attempts", ", ".join(gone))
        results = [(send, outcome) for send, outcome in results if send.delivery_id in rows]
    # In bulk, by primary key, in Core: the ORM's bookkeeping for a batch's rows cost more than the writes.
    attempts = [attempt_row(send.delivery_id, send.endpoint_id, outcome, send.trigger) for send, outcome in results]
    if attempts:
        core(_INSERT_ATTEMPT, attempts)
    changes, statuses, resends, retries = [], [], [], []
    for send, outcome in results:
        delivery = rows[send.delivery_id]
        values, delay = record_outcome(delivery, _endpoint(endpoints, delivery.endpoint_id, outcome), outcome,
                                       send.trigger)
        if send.trigger == SCHEDULED and delivery.manual_pending:
            # A resend was asked for while this scheduled attempt was in flight: it goes next.
            values.update(manual_pending=True, next_attempt_at=utcnow(), enqueued_at=utcnow())
            resends.append(Next(delivery.id, values["attempt_count"], True))
        elif delay is not None:
            retries.append((delay, Next(delivery.id, values["attempt_count"], False)))
        changes.append({"tenant": tenant_id, "delivery": delivery.id, **values})
        statuses.append(tallies.Change(delivery.id, delivery.endpoint_id, delivery.status, values["status"]))
        log.info("delivery %s attempt %d: %s", delivery.id, values["attempt_count"],
                 outcome.error or outcome.response_status)
    if changes:
        core(_update_delivery(), changes)
        tallies.count_changes(tenant_id, statuses)  # written as it commits, after the attempts' tallies
    # The tallies last, once the ORM's changes (an endpoint's failing streak) are flushed. On PostgreSQL another
    # worker's record of the same endpoint, hour and duration waits for their row locks until this commit: with
    # nothing locked after them, no two records can wait for each other (an endpoint's row after a tally would).
    db.session.flush()
    tallies.add(db.session.connection(), tenant_id, attempts)
    db.session.commit()
    if resends:
        enqueue_deliveries(tenant_id, resends, MANUAL)
    if retries and not enqueue_deliveries_at(retries, tenant_id):
        db.session.execute(update(Delivery).where(Delivery.id.in_([d.id for _, d in retries]))
                           .values(enqueued_at=None).execution_options(synchronize_session=False))
        db.session.commit()
    if handed_back:
        wake_drain(tenant_id)


def _endpoint(endpoints: dict, endpoint_id: str, outcome: Outcome):
    """The endpoint for record_outcome: its locked row, which the usual outcome (a success, and no failing
    streak to end) only reads; else its model, loaded once per record, which the outcome changes."""
    endpoint = endpoints[endpoint_id]
    if isinstance(endpoint, Endpoint) or (outcome.succeeded and endpoint.failing_since is None):
        return endpoint
    endpoints[endpoint_id] = model = db.session.get(Endpoint, endpoint_id, populate_existing=True)
    return model


# record()'s statements, built once with parameters (building and hashing a statement costs more than a short
# batch's writes): Core rows of what an outcome depends on, read and written by primary key.
@functools.cache
def _lock_endpoints():
    endpoints = Endpoint.__table__
    return (select(endpoints.c.id, endpoints.c.failing_since)
            .where(endpoints.c.tenant_id == bindparam("tenant_id"),
                   endpoints.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(endpoints.c.id).with_for_update(read=True, key_share=True))


@functools.cache
def _lock_deliveries():
    return (select(_deliveries.c.id, _deliveries.c.endpoint_id, _deliveries.c.status, _deliveries.c.attempt_count,
                   _deliveries.c.manual_pending)
            .where(_deliveries.c.tenant_id == bindparam("tenant_id"),
                   _deliveries.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(_deliveries.c.id).with_for_update())


@functools.cache
def _update_delivery():
    # "tenant" and "delivery", not the columns' names: those are the SET clause's parameters.
    return update(_deliveries).where(_deliveries.c.tenant_id == bindparam("tenant"),
                                     _deliveries.c.id == bindparam("delivery"))
