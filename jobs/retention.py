"""Retention: events older than RETENTION_DAYS go, with their deliveries and attempts, in small
batches so the database stays responsive, and the agents' tallies of their hours with them; endpoint
health's tallies go after two days."""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, exists, select

from webapp.extensions import db
from webapp.models import PENDING, RETRYING, Delivery, Event, IdempotencyKey, utcnow
from webapp.services import activity, tallies
from webapp.services.events import IDEMPOTENCY_WINDOW
from webapp.tenancy import all_tenants

from .context import job_context

log = logging.getLogger(__name__)


def _delete_in_batches(model, condition, batch: int) -> int:
    removed = 0
    while True:
        ids = list(db.session.scalars(select(model.id).where(condition).limit(batch)))
        if not ids:
            return removed
        # Deliveries and attempts go with their event (ON DELETE CASCADE).
        db.session.execute(delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False))
        db.session.commit()
        removed += len(ids)


def prune_once(batch: int = 500) -> dict[str, int]:
    """Delete what is past retention, every tenant's. Returns how many rows of each kind went."""
    with job_context(), all_tenants():
        cutoff = utcnow() - timedelta(days=current_app.config["RETENTION_DAYS"])
        outstanding = exists().where(Delivery.event_id == Event.id,
                                     (Delivery.status.in_((PENDING, RETRYING))) | Delivery.manual_pending.is_(True))
        events = _delete_in_batches(Event, (Event.received_at < cutoff) & ~outstanding, batch)
        keys = _delete_in_batches(IdempotencyKey, IdempotencyKey.created_at < utcnow() - IDEMPOTENCY_WINDOW, batch)
        # In one statement: a run finds the hour or so of tallies that aged since the last one.
        tally_rows = tallies.prune(db.session.connection(), utcnow())
        agent_tally_rows = activity.prune(db.session.connection(), cutoff)
        db.session.commit()
    if events or keys or tally_rows or agent_tally_rows:
        log.info("retention removed %d events (with their deliveries), %d idempotency keys, %d rows of the "
                 "dashboard's tallies and %d agents' hourly tallies", events, keys, tally_rows, agent_tally_rows)
    return {"events": events, "idempotency_keys": keys, "dashboard_tallies": tally_rows,
            "agent_event_tallies": agent_tally_rows}
