"""Retention: old events go with their deliveries and attempts; recent and unfinished ones stay. Endpoint
health's tallies go after 48 hours, the agents' with the events of their hour."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from jobs.retention import prune_once
from webapp.extensions import db
from webapp.models import (AgentEventTally, Attempt, AttemptTally, AttemptTotal, Delivery, Event, IdempotencyKey,
                           utcnow)
from webapp.services import tallies
from webapp.tenancy import all_tenants


def test_prune_removes_what_is_past_retention_and_nothing_else(app, tenant, stack):
    # ``stack`` with no worker started: nothing attempts these deliveries while the test sets their state
    # (the session's shared worker would, and its attempts would race the statuses written below).
    agent = tenant.api.post("/api/v1/agents", json={"name": "a"}).json["id"]
    tenant.api.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/x"})
    sent = [tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent},
                            headers={"Idempotency-Key": f"k{i}"}).json["id"] for i in range(4)]
    old_done, old_unfinished, old_failed, recent = sent
    with tenant.scope():
        long_ago = utcnow() - timedelta(days=31)
        db.session.execute(update(Event).where(Event.id.in_([old_done, old_unfinished, old_failed]))
                           .values(received_at=long_ago))
        db.session.execute(update(Delivery).where(Delivery.event_id.in_([old_done, recent])).values(status="succeeded"))
        db.session.execute(update(Delivery).where(Delivery.event_id == old_failed).values(status="failed"))
        delivery_id, endpoint_id = db.session.execute(
            select(Delivery.id, Delivery.endpoint_id).where(Delivery.event_id == old_done)).one()
        db.session.add(Attempt(delivery_id=delivery_id, endpoint_id=endpoint_id, trigger="scheduled",
                               started_at=long_ago, duration_ms=3, response_status=200))
        # Endpoint health's tallies: one from past their 48 hours, one within them.
        tallied = [utcnow() - timedelta(hours=50), utcnow() - timedelta(hours=46)]
        tallies.add(db.session.connection(), tenant.id, [
            dict(endpoint_id=endpoint_id, started_at=at, duration_ms=3, response_status=200, error=None)
            for at in tallied])
        # The agent's tallies: the trigger counted the four events in this hour; one of an hour past retention.
        db.session.add(AgentEventTally(agent_id=agent, hour=tallies.hour_of(long_ago), events=3,
                                       last_received_at=long_ago))
        db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "k3")
                           .values(created_at=utcnow() - timedelta(hours=25)))
        db.session.commit()

    with app.app_context():
        removed = prune_once(batch=1)  # one row per batch: the batching loop itself is exercised
    # The old hour's attempt tally and its endpoint's total for the hour.
    assert removed == {"events": 2, "idempotency_keys": 1, "dashboard_tallies": 2, "agent_event_tallies": 1}
    with tenant.scope():
        assert set(db.session.scalars(select(Event.id))) == {old_unfinished, recent}
        assert set(db.session.scalars(select(Delivery.event_id))) == {old_unfinished, recent}
        assert db.session.scalar(select(func.count()).select_from(Attempt)) == 0
        # k0 and k2 went with their events; k3 is past the 24 h window although its event stays.
        assert set(db.session.scalars(select(IdempotencyKey.key))) == {"k1"}
        assert list(db.session.scalars(select(AttemptTally.hour))) == [tallies.hour_of(tallied[1])]
        assert list(db.session.scalars(select(AttemptTotal.hour))) == [tallies.hour_of(tallied[1])]
        assert db.session.scalar(select(func.sum(AgentEventTally.events))) == 4  # the old hour's 3 went


def test_prune_covers_every_tenant(app, make_tenant):
    tenants = [make_tenant(), make_tenant()]
    for t in tenants:
        agent = t.api.post("/api/v1/agents", json={"name": "a"}).json["id"]
        t.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent})
    with app.app_context(), all_tenants():
        db.session.execute(update(Event).values(received_at=utcnow() - timedelta(days=60)))
        db.session.commit()
        assert prune_once()["events"] == 2
        assert db.session.scalar(select(func.count()).select_from(Event)) == 0
