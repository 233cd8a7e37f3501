"""The sweep: the database says what is due; this re-queues whatever Redis lost or never got."""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select, update

from webapp.extensions import db
from webapp.models import PENDING, RETRYING, Delivery, utcnow
from webapp.queue import enqueue_deliveries, redis_connection
from webapp.tenancy import all_tenants

from .context import job_context

log = logging.getLogger(__name__)
# A queued delivery still not attempted this long after it fell due is taken as lost.
GRACE = timedelta(seconds=30)
BATCH = 1000
INTERVAL_SECONDS = 5
_LOCK = "agenthooks:sweep-lock"


def sweep_once() -> int:
    """Re-enqueue due deliveries that are not queued (or whose job was lost). Returns how many."""
    now = utcnow()
    due = or_(Delivery.manual_pending.is_(True),
              Delivery.status.in_((PENDING, RETRYING)) & (Delivery.next_attempt_at <= now))
    lost = or_(Delivery.enqueued_at.is_(None),
               and_(Delivery.enqueued_at < now - GRACE, Delivery.next_attempt_at < now - GRACE))
    free = or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)
    with job_context(), all_tenants():  # one sweep serves every tenant
        rows = db.session.execute(
            select(Delivery.id, Delivery.tenant_id).where(due, lost, free).order_by(Delivery.next_attempt_at).limit(BATCH)
        ).all()
        if not rows:
            return 0
        by_tenant = defaultdict(list)
        for delivery_id, tenant_id in rows:
            by_tenant[tenant_id].append(delivery_id)
        queued = 0
        for tenant_id, ids in by_tenant.items():
            if enqueue_deliveries(tenant_id, ids):
                db.session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=now)
                                   .execution_options(synchronize_session=False))
                db.session.commit()
                queued += len(ids)
        if queued:
            log.info("sweep re-queued %d deliveries", queued)
        return queued


def run_forever(app, stop: threading.Event, interval: float = INTERVAL_SECONDS) -> None:
    """Sweep every ``interval`` seconds; with several workers, one sweeps at a time (a Redis lock)."""
    while not stop.wait(interval):
        try:
            with app.app_context():
                lock = redis_connection().lock(_LOCK, timeout=max(30, interval * 4), blocking=False)
                if lock.acquire():
                    try:
                        sweep_once()
                    finally:
                        lock.release()
        except RedisError as exc:
            log.warning("sweep skipped, Redis unavailable: %s", exc)
        except Exception:  # keep the sweeper alive whatever one pass hit; it is logged with its traceback
            log.exception("sweep failed")
