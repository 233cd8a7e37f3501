"""The single delivery job: attempt one delivery. Retries at their time, resends, and deliveries to paced
endpoints at their slots (each held aside until then, jobs/pacing.py) come this way; everything else goes
in batches (jobs/drain.py)."""
from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import bindparam, select, update

from webapp.extensions import core, db
from webapp.models import PENDING, RETRYING, SCHEDULED, Delivery, utcnow
from webapp.queue import enqueue_delivery_in, job_id, next_of

from .attempts import attempt, claimable, claimed, lease, lease_from, prepare, record
from .context import job_context
from .lanes import lanes
from .pacing import Held, hold, reserve_slot, space

log = logging.getLogger(__name__)
# A job that arrives at most this early is put back for its due time.
_EARLY_SECONDS = 5


def _claim(tenant_id: str, delivery_id: str):
    """Lease the delivery if it is due and nobody holds it; the database makes this atomic across workers.

    Returns the claimed delivery, a row of ``attempts.claimed`` read in the claim's transaction; the caller
    commits. Returns None, committed, when it was not claimed."""
    now = utcnow()
    result = db.session.execute(
        update(Delivery).where(Delivery.id == delivery_id, *claimable(now)).values(lease(lease_from(now)))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.commit()
        return None
    return claimed(tenant_id, [delivery_id])[0]


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


def put_back(tenant_id: str, deliveries: list[tuple[object, float, str]]) -> None:
    """Hold claimed deliveries aside for their pacing slots, each ``(row, slot as a Unix time, trigger)``,
    without spending an attempt, and keep their claims until then and a whole attempt past it: the job
    that sends one at its slot need not claim it again, a write that a busy database (SQLite's one writer)
    could keep waiting while the slot and the ones after it pass. Commits the claim's transaction, then
    holds them in Redis. Should Redis lose a held job, the sweep finds its delivery once the claim has
    run out, as it finds a dead worker's."""
    now, changes, held = utcnow(), [], []
    for delivery, slot, trigger in deliveries:
        due = datetime.fromtimestamp(slot, timezone.utc)
        until = lease_from(due)
        changes.append({"tenant": tenant_id, "delivery": delivery.id, "due": due, "until": until, "now": now})
        held.append(Held(next_of(delivery), trigger, slot, job_id(delivery) + _fresh_suffix(), until.isoformat()))
    core(_put_back(), changes)
    db.session.commit()
    hold(tenant_id, held)


@functools.cache
def _put_back():
    deliveries = Delivery.__table__
    return (update(deliveries)
            .where(deliveries.c.tenant_id == bindparam("tenant"), deliveries.c.id == bindparam("delivery"))
            .values(lease_until=bindparam("until"), next_attempt_at=bindparam("due"), enqueued_at=bindparam("now")))


def _resume(tenant_id: str, delivery_id: str, lease_until: str):
    """The delivery held for its pacing slot, if the claim it was held with (its lease) is still the one on it:
    read in a row of ``attempts.claimed``, not claimed again. None when another claim, a settlement or a
    delete came meanwhile."""
    rows = claimed(tenant_id, [delivery_id])
    return rows[0] if rows and rows[0].lease_until == datetime.fromisoformat(lease_until) else None


def _fresh_suffix() -> str:
    """A job id suffix for a job that re-queues its own attempt: the running job's id (and hash)
    is deleted when it returns, so the new one must not share it."""
    return f"-r{time.time_ns()}"


def deliver(tenant_id: str, delivery_id: str, trigger: str = SCHEDULED, held: bool | str = False) -> None:
    """Attempt one delivery (the job RQ runs). ``trigger`` is informative: the row says what is due.
    ``held``: this job was held for a pacing slot that is its own now, with the claim's lease (an ISO
    time) that it kept meanwhile; True from a hold made before claims were kept (it claims anew)."""
    with job_context(tenant_id):
        delivery = _resume(tenant_id, delivery_id, held) if isinstance(held, str) else _claim(tenant_id, delivery_id)
        if delivery is None:
            _not_claimed(tenant_id, delivery_id, trigger)
            return
        sends = prepare([delivery])
        if not sends:
            db.session.commit()  # what prepare settled
            return
        send, rate_limit = sends[0], delivery.rate_limit
        # The slot is reserved inside the claim's transaction, which holds the database's write lock
        # already (SQLite): a delivery put back for its slot then commits once, rather than queue for
        # the lock a second time behind a busy writer, while its slot (and the ones after it) pass.
        slot = None if held else reserve_slot(send.endpoint_id, rate_limit)
        if slot is not None:
            put_back(tenant_id, [(delivery, slot, send.trigger)])
            return
        db.session.commit()  # the claim (or the read); no transaction stays open across the HTTP call
        if rate_limit:
            # Paced jobs come at the front of the queue, one a slot: the wait for the spacing, the attempt and
            # the record (which a busy database keeps waiting) go to the endpoint's lane, so that they do not
            # hold the worker from the tenant's other deliveries. (With the record taking 0.5 s, an endpoint
            # paced at 4 a second kept two workers busy, and another endpoint's drain waited seconds.)
            lanes.submit(send.endpoint_id, _send_paced, current_app._get_current_object(), tenant_id, send,
                         rate_limit)
            return
        record(tenant_id, [(send, attempt(send))])


def _send_paced(app, tenant_id: str, send, rate_limit: float) -> None:
    """In the endpoint's lane: keep the delivery an interval from the endpoint's last one, attempt it and
    record the outcome. Should that fail, the claim runs out and the sweep finds the delivery."""
    try:
        with job_context(tenant_id, app):
            space(send.endpoint_id, rate_limit)
            record(tenant_id, [(send, attempt(send))])
    except Exception:  # logged with its traceback
        log.exception("could not attempt delivery %s", send.delivery_id)
