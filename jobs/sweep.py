"""The sweep: the database says what is due; this re-queues whatever Redis lost or never got."""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from webapp.extensions import db
from webapp.models import PENDING, RETRYING, Delivery, utcnow
from webapp.queue import job_id, live_job_ids, wake_drain
from webapp.tenancy import all_tenants

from .context import job_context

log = logging.getLogger(__name__)
# A delivery enqueued this recently is not looked at again: its job is most likely still waiting.
GRACE = timedelta(seconds=10)
BATCH = 1000


def sweep_once() -> int:
    """Wake the drains of the tenants with due deliveries whose job Redis does not hold, or whose attempt a
    dead worker abandoned (its claim ran out).

    Returns how many such deliveries it handed to their tenants' drains.
    """
    now = utcnow()
    due = and_(Delivery.next_attempt_at <= now,
               or_(Delivery.manual_pending.is_(True), Delivery.status.in_((PENDING, RETRYING))))
    not_running = or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)
    unseen = or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at < now - GRACE)
    with job_context(), all_tenants():  # one sweep serves every tenant
        rows = db.session.execute(
            select(Delivery.id, Delivery.tenant_id, Delivery.attempt_count, Delivery.manual_pending,
                   Delivery.lease_until)
            .where(due, not_running, unseen).order_by(Delivery.next_attempt_at).limit(BATCH)
        ).all()
        if not rows:
            return 0
        live = live_job_ids([job_id(row) for row in rows])
        drains = defaultdict(int)
        for row in rows:
            abandoned = row.lease_until is not None  # claimed, and the claim ran out: its worker died
            if abandoned or job_id(row) not in live:
                drains[row.tenant_id] += 1  # the tenant's drain claims it with the rest of what is due
        queued = 0
        for tenant_id, count in drains.items():
            if wake_drain(tenant_id, force=True):
                queued += count
        # Everything looked at is either queued or known to be waiting: leave it be for a while.
        ids = [row.id for row in rows]
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=now)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        if queued:
            log.info("sweep re-queued %d deliveries", queued)
        return queued
