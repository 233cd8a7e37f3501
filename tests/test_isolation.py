"""Tenant isolation: another tenant's id is a 404 on every route that takes one, and changes nothing.

The routes come from the app's URL map, so a new route cannot escape this test.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Agent, ApiKey, Attempt, Delivery, Endpoint, Event, EventType, Tenant
from webapp.tenancy import TenantNotSet, all_tenants, tenant_scope

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


@pytest.fixture
def victim(make_tenant, app):
    """Tenant A with one of everything, and tenant B who tries to reach it."""
    a, b = make_tenant("Victim"), make_tenant("Intruder")
    agent = a.api.post("/api/v1/agents", json={"name": "victim bot"}).json
    endpoint = a.api.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/victim"}).json
    event = a.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"]}).json
    delivery = a.api.get(f"/api/v1/events/{event['id']}").json["deliveries"][0]
    from webapp.services.event_types import create_custom_type
    with a.scope():
        custom_id = create_custom_type({"name": "victim.thing"}).id
        key_id = db.session.scalars(select(ApiKey.id)).first()
        db.session.commit()
    ids = {"agent_id": agent["id"], "endpoint_id": endpoint["id"], "event_id": event["id"],
           "delivery_id": delivery["id"], "key_id": key_id, "type_id": custom_id}
    return a, b, ids


def snapshot(app, tenant_id: str) -> dict:
    """Everything of tenant A that an intruder could change."""
    with app.app_context(), tenant_scope(tenant_id):
        db.session.expire_all()
        endpoint = db.session.scalars(select(Endpoint)).one()
        return {
            "agents": [(a.id, a.name, a.description) for a in db.session.scalars(select(Agent))],
            "endpoint": (endpoint.url, endpoint.enabled, endpoint.secret_encrypted, endpoint.previous_secret_encrypted),
            "events": db.session.scalar(select(func.count()).select_from(Event)),
            # Status and attempts move on by themselves (a worker may be running); a resend would show here.
            "deliveries": [(d.id, d.manual_pending) for d in db.session.scalars(select(Delivery))],
            "manual_attempts": db.session.scalar(select(func.count()).select_from(Attempt).where(Attempt.trigger == "manual")),
            "keys": [(k.id, k.revoked_at) for k in db.session.scalars(select(ApiKey))],
            "types": [t.name for t in db.session.scalars(select(EventType))],
        }


def id_rules(app, prefix: str):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix) and rule.arguments:
            for method in sorted(rule.methods & set(METHODS)):
                yield rule, method


def test_api_routes_answer_404_for_another_tenants_ids(app, victim):
    a, b, ids = victim
    before = snapshot(app, a.id)
    checked = 0
    for rule, method in id_rules(app, "/api/"):
        unknown = rule.arguments - set(ids)
        assert not unknown, f"{rule.rule}: no object of tenant A for {unknown}; extend the victim fixture"
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", ids[name])
        response = b.api.client.open(path, method=method, json={"name": "pwned", "url": "https://evil.example/x"},
                                     headers=b.api._headers())
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json["error"]["code"] == "not_found"
        checked += 1
    assert checked >= 12
    assert snapshot(app, a.id) == before


def test_cannot_send_events_as_another_tenants_agent(victim):
    a, b, ids = victim
    response = b.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": ids["agent_id"]})
    assert response.status_code == 422 and "agent_id" in response.json["error"]["message"]


def test_cannot_subscribe_to_another_tenants_agent(victim):
    a, b, ids = victim
    response = b.api.post("/api/v1/endpoints", json={"url": "https://example.com/x", "agent_ids": [ids["agent_id"]]})
    assert response.status_code == 422 and "agent_ids" in response.json["error"]["message"]


def test_lists_show_only_the_tenants_own_rows(victim):
    a, b, ids = victim
    for path in ("/api/v1/agents", "/api/v1/endpoints", "/api/v1/deliveries"):
        assert b.api.get(path).json["data"] == []
        assert len(a.api.get(path).json["data"]) == 1
    assert b.api.get(f"/api/v1/deliveries?endpoint_id={ids['endpoint_id']}").json["data"] == []
    names = {t["name"] for t in b.api.get("/api/v1/event-types").json["data"]}
    assert "victim.thing" not in names


def test_queries_without_a_tenant_are_refused(app, victim):
    with app.app_context():
        with pytest.raises(TenantNotSet):
            db.session.scalars(select(Agent)).all()
        db.session.rollback()
        with all_tenants():
            assert db.session.scalar(select(func.count()).select_from(Agent)) == 1
        assert db.session.scalar(select(func.count()).select_from(Tenant)) == 2  # tenants themselves are not scoped


def test_statements_that_name_no_model_in_their_columns_are_scoped_too(app, victim):
    """select(func.count()).select_from(Agent) names Agent only in its FROM clause: still the tenant's rows."""
    from webapp.services import agents, endpoints

    a, b, _ = victim
    for tenant, expected in ((b, 0), (a, 1)):
        with tenant.scope():
            assert db.session.scalar(select(func.count()).select_from(Agent)) == expected
            assert db.session.scalar(select(func.count()).where(Delivery.event_type == "message.sent")) == expected
            assert db.session.scalar(select(func.count()).select_from(Delivery).join(Event)) == expected
            assert (agents.count(), endpoints.count()) == (expected, expected)
    with app.app_context():
        with pytest.raises(TenantNotSet):
            db.session.scalar(select(func.count()).select_from(Endpoint))


def test_a_unit_of_work_cannot_write_another_tenants_rows(app, victim):
    a, b, ids = victim
    with b.scope():
        db.session.add(Agent(name="smuggled", tenant_id=a.id))
        with pytest.raises(TenantNotSet):
            db.session.flush()
        db.session.rollback()
    with a.scope():
        assert [x.name for x in db.session.scalars(select(Agent))] == ["victim bot"]
