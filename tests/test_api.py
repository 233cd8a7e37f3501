"""The JSON API as the contract specifies it: shapes, validation, errors, idempotency, pagination."""
from __future__ import annotations

import time

import pytest

from webapp.catalogue import INGESTIBLE
from webapp.extensions import db
from webapp.services.api_keys import create_key
from webapp.tenancy import tenant_scope

from .helpers import ApiClient


@pytest.fixture
def agent(tenant):
    return tenant.api.post("/api/v1/agents", json={"name": "Support bot", "description": "d"}).json


def assert_error(response, status, code=None, field=None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert set(error) == {"code", "message"} and error["message"]
    assert error["code"].replace("_", "").isalpha() and error["code"].islower()
    if code:
        assert error["code"] == code
    if field:
        assert field in error["message"], error["message"]
    return error


# --- authentication -------------------------------------------------------------------------

def test_missing_unknown_and_revoked_keys_get_401(app, client, tenant):
    assert_error(client.get("/api/v1/agents"), 401, "unauthorized")
    assert_error(client.get("/api/v1/agents", headers={"Authorization": "Bearer ahk_" + "x" * 43}), 401)
    assert_error(client.get("/api/v1/agents", headers={"Authorization": "Basic abc"}), 401)
    assert tenant.api.get("/api/v1/agents").status_code == 200
    from webapp.models import ApiKey
    from webapp.services.api_keys import list_keys, revoke_key
    from webapp.extensions import db
    with tenant.scope():
        keys, _ = list_keys()
        revoke_key(keys[0].id)
        db.session.commit()
        assert isinstance(list_keys()[0][0], ApiKey)
    assert_error(tenant.api.get("/api/v1/agents"), 401)


def test_api_keys_are_stored_only_as_hashes(app, tenant):
    from sqlalchemy import select
    from webapp.extensions import db
    from webapp.models import ApiKey
    with tenant.scope():
        stored = db.session.scalars(select(ApiKey)).one()
    assert tenant.api_key.startswith("ahk_") and len(tenant.api_key) >= 36
    assert tenant.api_key not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64


# --- ingest ---------------------------------------------------------------------------------

def test_ingest_answers_202_with_the_event(tenant, agent):
    response = tenant.api.post("/api/v1/events", json={"type": "message.received", "agent_id": agent["id"]})
    assert response.status_code == 202
    assert response.json["id"].startswith("evt_") and response.json["type"] == "message.received"
    assert response.json["deliveries"] == 0
    event = tenant.api.get(f"/api/v1/events/{response.json['id']}").json
    assert event["agent_id"] == agent["id"] and event["deliveries"] == [] and event["data"] == {}
    assert event["occurred_at"].endswith("Z")


@pytest.mark.parametrize("type_", INGESTIBLE)
def test_every_built_in_type_is_accepted(tenant, agent, type_):
    assert tenant.api.post("/api/v1/events", json={"type": type_, "agent_id": agent["id"]}).status_code == 202


def test_ingest_counts_subscribed_enabled_endpoints(tenant, agent):
    for fields in ({}, {"event_types": ["message.received"]}, {"event_types": ["message.sent"]},
                   {"enabled": False}, {"agent_ids": [agent["id"]]}):
        assert tenant.api.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/x", **fields}).status_code == 201
    response = tenant.api.post("/api/v1/events", json={"type": "message.received", "agent_id": agent["id"]})
    assert response.json["deliveries"] == 3
    deliveries = tenant.api.get(f"/api/v1/events/{response.json['id']}").json["deliveries"]
    assert len(deliveries) == 3 and {d["status"] for d in deliveries} == {"pending"}


def test_an_events_endpoints_follow_every_change_of_their_agent_filter(tenant, agent):
    """Ingest finds an agent's endpoints through an index that the database keeps as filters change."""
    other = tenant.api.post("/api/v1/agents", json={"name": "other"}).json["id"]
    for n in range(20):  # other agents' endpoints, which none of the events below may reach
        customer = tenant.api.post("/api/v1/agents", json={"name": f"customer {n}"}).json["id"]
        tenant.api.post("/api/v1/endpoints", json={"url": f"http://127.0.0.1:9/{n}", "agent_ids": [customer]})
    endpoint = tenant.api.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/x", "agent_ids": [other]}).json

    def deliveries(agent_id: str) -> int:
        return tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent_id}).json["deliveries"]

    def change(**fields) -> None:
        assert tenant.api.patch(f"/api/v1/endpoints/{endpoint['id']}", json=fields).status_code == 200

    assert (deliveries(agent["id"]), deliveries(other)) == (0, 1)
    change(agent_ids=[agent["id"], other])
    assert (deliveries(agent["id"]), deliveries(other)) == (1, 1)
    change(agent_ids=[])  # all agents
    assert (deliveries(agent["id"]), deliveries(other)) == (1, 1)
    change(agent_ids=[agent["id"]])
    assert (deliveries(agent["id"]), deliveries(other)) == (1, 0)
    change(enabled=False)
    assert deliveries(agent["id"]) == 0
    change(enabled=True, description="renamed")  # a change of something else keeps the filter
    assert (deliveries(agent["id"]), deliveries(other)) == (1, 0)
    assert tenant.api.delete(f"/api/v1/endpoints/{endpoint['id']}").status_code == 204
    assert deliveries(agent["id"]) == 0


def test_an_endpoint_written_in_plain_sql_takes_its_agents_events(app, tenant, agent):
    """Whatever writes an endpoint (a bulk load, a web process of the code before the index during a deploy),
    the database indexes its filter: it is never left out of ingest."""
    from sqlalchemy import insert, update

    from webapp.extensions import db
    from webapp.models import Endpoint, utcnow
    endpoints = Endpoint.__table__
    with app.app_context():
        db.session.execute(insert(endpoints).values(
            id="ep_plain", tenant_id=tenant.id, url="http://127.0.0.1:9/plain", description="", event_types=[],
            agent_ids=[agent["id"]], enabled=True, secret_encrypted="x", created_at=utcnow(), updated_at=utcnow()))
        db.session.commit()
    body = {"type": "message.sent", "agent_id": agent["id"]}
    assert tenant.api.post("/api/v1/events", json=body).json["deliveries"] == 1
    with app.app_context():
        db.session.execute(update(endpoints).where(endpoints.c.id == "ep_plain").values(agent_ids=["agt_else"]))
        db.session.commit()
    assert tenant.api.post("/api/v1/events", json=body).json["deliveries"] == 0


@pytest.mark.parametrize("body, field", [
    ({"agent_id": "AGENT"}, "type"),
    ({"type": "message.received"}, "agent_id"),
    ({"type": "no.such_type", "agent_id": "AGENT"}, "type"),
    ({"type": "webhook.test", "agent_id": "AGENT"}, "type"),
    ({"type": 5, "agent_id": "AGENT"}, "type"),
    ({"type": "message.received", "agent_id": "agt_unknown"}, "agent_id"),
    ({"type": "message.received", "agent_id": "AGENT", "conversation_id": "x" * 256}, "conversation_id"),
    ({"type": "message.received", "agent_id": "AGENT", "conversation_id": 42}, "conversation_id"),
    ({"type": "message.received", "agent_id": "AGENT", "user": "ada"}, "user"),
    ({"type": "message.received", "agent_id": "AGENT", "data": [1, 2]}, "data"),
    ({"type": "message.received", "agent_id": "AGENT", "occurred_at": "yesterday"}, "occurred_at"),
    ({"type": "message.received", "agent_id": "AGENT", "occurred_at": "2026-11-26T12:00:00"}, "occurred_at"),
    ({"type": "message.received", "agent_id": "AGENT", "occurred_at": "2026-11-26"}, "occurred_at"),
])
def test_ingest_validation_names_the_field(tenant, agent, body, field):
    body = {k: agent["id"] if v == "AGENT" else v for k, v in body.items()}
    assert_error(tenant.api.post("/api/v1/events", json=body), 422, "validation_failed", field)


def test_custom_types_are_accepted_once_added(app, tenant, agent):
    body = {"type": "order.shipped", "agent_id": agent["id"]}
    assert_error(tenant.api.post("/api/v1/events", json=body), 422, field="type")
    from webapp.extensions import db
    from webapp.services.event_types import create_custom_type
    with tenant.scope():
        create_custom_type({"name": "order.shipped"})
        db.session.commit()
    assert tenant.api.post("/api/v1/events", json=body).status_code == 202
    names = [t["name"] for t in tenant.api.get("/api/v1/event-types").json["data"]]
    assert "order.shipped" in names and "conversation.started" in names and "webhook.test" in names


def test_malformed_json_and_non_objects_are_400(tenant):
    headers = {"Content-Type": "application/json"}
    assert_error(tenant.api.client.post("/api/v1/events", data="{nope", headers={**tenant.api._headers(), **headers}), 400)
    assert_error(tenant.api.post("/api/v1/events", json=[1, 2]), 400)
    assert_error(tenant.api.client.post("/api/v1/events", data=b"\xff\xfe", headers={**tenant.api._headers(), **headers}), 400)


def test_wrong_content_type_is_415(tenant):
    response = tenant.api.client.post("/api/v1/events", data="type=x", headers={
        **tenant.api._headers(), "Content-Type": "application/x-www-form-urlencoded"})
    assert_error(response, 415, "unsupported_media_type")


def test_body_over_256_kib_is_413(tenant, agent):
    big = {"type": "message.received", "agent_id": agent["id"], "data": {"text": "x" * (256 * 1024)}}
    assert_error(tenant.api.post("/api/v1/events", json=big), 413, "payload_too_large")
    just_under = {"type": "message.received", "agent_id": agent["id"], "data": {"text": "x" * (250 * 1024)}}
    assert tenant.api.post("/api/v1/events", json=just_under).status_code == 202


def test_unknown_ids_and_routes_are_404_json(tenant):
    for path in ("/api/v1/events/evt_nope", "/api/v1/agents/agt_nope", "/api/v1/endpoints/ep_nope",
                 "/api/v1/deliveries/dlv_nope", "/api/v1/no-such-route"):
        assert_error(tenant.api.get(path), 404, "not_found")


def test_wrong_method_is_405_json(tenant):
    error = assert_error(tenant.api.client.put("/api/v1/agents", headers=tenant.api._headers()), 405)
    assert error["code"] == "method_not_allowed"


def test_idempotency_key_replays_the_first_answer(tenant, agent):
    tenant.api.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/x"})
    body = {"type": "message.received", "agent_id": agent["id"]}
    first = tenant.api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "req-1"})
    again = tenant.api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "req-1"})
    other = tenant.api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "req-2"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json == first.json and other.json["id"] != first.json["id"]
    assert len(tenant.api.get("/api/v1/deliveries").json["data"]) == 2
    assert_error(tenant.api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "k" * 256}), 422,
                 field="Idempotency-Key")


def test_idempotency_key_expires_after_24_hours(app, tenant, agent):
    from datetime import timedelta
    from sqlalchemy import update
    from webapp.extensions import db
    from webapp.models import IdempotencyKey, utcnow
    body = {"type": "message.received", "agent_id": agent["id"]}
    first = tenant.api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "old"})
    with tenant.scope():
        db.session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
    later = tenant.api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "old"})
    assert later.status_code == 202 and later.json["id"] != first.json["id"]


def test_idempotency_keys_are_per_tenant(make_tenant):
    one, two = make_tenant(), make_tenant()
    for t in (one, two):
        agent_id = t.api.post("/api/v1/agents", json={"name": "a"}).json["id"]
        response = t.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent_id},
                              headers={"Idempotency-Key": "same"})
        assert response.status_code == 202


def test_ingest_is_rate_limited_per_key_with_retry_after(app, tenant, agent):
    app.config["INGEST_RATE_LIMIT"] = "3 per minute"
    body = {"type": "message.received", "agent_id": agent["id"]}
    statuses = [tenant.api.post("/api/v1/events", json=body).status_code for _ in range(3)]
    assert statuses == [202, 202, 202]
    limited = tenant.api.post("/api/v1/events", json=body)
    assert_error(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"].isdigit() and 0 < int(limited.headers["Retry-After"]) <= 60


def test_ingest_answers_say_how_much_of_the_keys_limit_is_left(app, tenant, agent):
    app.config["INGEST_RATE_LIMIT"] = "3 per minute"
    body = {"type": "message.received", "agent_id": agent["id"]}
    answers = [tenant.api.post("/api/v1/events", json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [a.headers["X-RateLimit-Limit"] for a in answers] == ["3", "3", "3"]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert time.time() - 1 <= int(answers[-1].headers["X-RateLimit-Reset"]) <= time.time() + 61
    limited = tenant.api.post("/api/v1/events", json=body)
    assert limited.status_code == 429 and limited.headers["X-RateLimit-Remaining"] == "0"
    # Checking an event counts apart from sending one, and another key has a count of its own.
    checked = tenant.api.post("/api/v1/events/validate", json=body)
    assert checked.status_code == 200 and checked.headers["X-RateLimit-Remaining"] == "2"
    with app.app_context(), tenant_scope(tenant.id):
        _, plaintext = create_key("second")
        db.session.commit()
    other = ApiClient(app.test_client(), plaintext).post("/api/v1/events", json=body)
    assert other.status_code == 202 and other.headers["X-RateLimit-Remaining"] == "2"
    # The rest of the API is not counted against it.
    assert "X-RateLimit-Limit" not in tenant.api.get("/api/v1/agents").headers


def test_server_errors_leak_no_stack_trace(app, tenant):
    endpoint = tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/x"}).json
    # An operator changes SECRET_KEY: stored secrets no longer decrypt, a real server-side fault.
    app.config["SECRET_KEY"] = "another-key"
    app.extensions.pop("agenthooks_fernet", None)
    error = assert_error(tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}/secret"), 500, "internal_error")
    assert "SECRET_KEY" not in error["message"] and "Traceback" not in error["message"]


# --- agents and endpoints -------------------------------------------------------------------

def test_agent_crud(tenant):
    created = tenant.api.post("/api/v1/agents", json={"name": "  Bot  ", "description": "helps"})
    assert created.status_code == 201
    agent = created.json
    assert agent["id"].startswith("agt_") and agent["name"] == "Bot" and agent["created_at"].endswith("Z")
    assert tenant.api.get(f"/api/v1/agents/{agent['id']}").json == agent
    patched = tenant.api.patch(f"/api/v1/agents/{agent['id']}", json={"description": "new"}).json
    assert patched["name"] == "Bot" and patched["description"] == "new"
    listing = tenant.api.get("/api/v1/agents").json
    assert listing == {"data": [patched], "next_cursor": None}
    assert tenant.api.delete(f"/api/v1/agents/{agent['id']}").status_code == 204
    assert tenant.api.get(f"/api/v1/agents/{agent['id']}").status_code == 404


@pytest.mark.parametrize("body, field", [({}, "name"), ({"name": ""}, "name"), ({"name": 3}, "name"),
                                         ({"name": "x" * 201}, "name"), ({"name": "a", "description": []}, "description")])
def test_agent_validation(tenant, body, field):
    assert_error(tenant.api.post("/api/v1/agents", json=body), 422, field=field)


def test_endpoint_crud(tenant, agent):
    created = tenant.api.post("/api/v1/endpoints", json={
        "url": "https://example.com/hooks", "description": "CRM", "event_types": ["message.sent"],
        "agent_ids": [agent["id"]]})
    assert created.status_code == 201
    endpoint = created.json
    assert endpoint["id"].startswith("ep_") and endpoint["enabled"] is True and endpoint["disabled_reason"] is None
    assert endpoint["event_types"] == ["message.sent"] and endpoint["agent_ids"] == [agent["id"]]
    assert "secret" not in endpoint
    assert tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}/secret").json["secret"].startswith("whsec_")
    patched = tenant.api.patch(f"/api/v1/endpoints/{endpoint['id']}", json={"enabled": False, "event_types": []}).json
    assert patched["enabled"] is False and patched["disabled_reason"] and patched["event_types"] == []
    enabled = tenant.api.patch(f"/api/v1/endpoints/{endpoint['id']}", json={"enabled": True}).json
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    assert tenant.api.delete(f"/api/v1/endpoints/{endpoint['id']}").status_code == 204
    assert tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({}, "url"), ({"url": "ftp://example.com"}, "url"), ({"url": "not a url"}, "url"),
    ({"url": "https://example.com", "event_types": "message.sent"}, "event_types"),
    ({"url": "https://example.com", "event_types": ["nope.nope"]}, "event_types"),
    ({"url": "https://example.com", "agent_ids": ["agt_nope"]}, "agent_ids"),
    ({"url": "https://example.com", "enabled": "yes"}, "enabled"),
])
def test_endpoint_validation(tenant, body, field):
    assert_error(tenant.api.post("/api/v1/endpoints", json=body), 422, field=field)


def test_private_destinations_are_refused_unless_allowed(app, tenant):
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = False
    for url in ("http://127.0.0.1/x", "http://localhost/x", "http://10.0.0.5/x", "http://169.254.169.254/latest",
                "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://192.168.1.1/x"):
        assert_error(tenant.api.post("/api/v1/endpoints", json={"url": url}), 422, field="url")
    assert tenant.api.post("/api/v1/endpoints", json={"url": "https://93.184.215.14/x"}).status_code == 201


def test_lists_paginate_newest_first_with_an_opaque_cursor(tenant):
    ids = [tenant.api.post("/api/v1/agents", json={"name": f"a{i}"}).json["id"] for i in range(5)]
    first = tenant.api.get("/api/v1/agents?limit=2").json
    assert [a["id"] for a in first["data"]] == ids[:-3:-1] and first["next_cursor"]
    second = tenant.api.get(f"/api/v1/agents?limit=2&cursor={first['next_cursor']}").json
    third = tenant.api.get(f"/api/v1/agents?limit=2&cursor={second['next_cursor']}").json
    assert [a["id"] for a in second["data"] + third["data"]] == ids[2::-1] and third["next_cursor"] is None
    assert_error(tenant.api.get("/api/v1/agents?cursor=%%%"), 422, field="cursor")
    assert_error(tenant.api.get("/api/v1/agents?limit=0"), 422, field="limit")


def test_deliveries_filter_by_status_endpoint_type_and_agent(tenant):
    a1 = tenant.api.post("/api/v1/agents", json={"name": "a1"}).json["id"]
    a2 = tenant.api.post("/api/v1/agents", json={"name": "a2"}).json["id"]
    e1 = tenant.api.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/1"}).json["id"]
    e2 = tenant.api.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/2",
                                                    "event_types": ["message.sent"]}).json["id"]
    tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": a1})
    tenant.api.post("/api/v1/events", json={"type": "tool.executed", "agent_id": a2})

    def ids(query):
        return {(d["endpoint_id"], d["event_type"], d["agent_id"])
                for d in tenant.api.get("/api/v1/deliveries" + query).json["data"]}

    assert ids("") == {(e1, "message.sent", a1), (e2, "message.sent", a1), (e1, "tool.executed", a2)}
    assert ids(f"?endpoint_id={e2}") == {(e2, "message.sent", a1)}
    assert ids("?event_type=tool.executed") == {(e1, "tool.executed", a2)}
    assert ids(f"?agent_id={a1}&endpoint_id={e1}") == {(e1, "message.sent", a1)}
    assert ids("?status=pending") == ids("") and ids("?status=succeeded") == set()
    assert_error(tenant.api.get("/api/v1/deliveries?status=done"), 422, field="status")
    delivery = tenant.api.get("/api/v1/deliveries").json["data"][0]
    assert set(delivery) >= {"id", "event_id", "endpoint_id", "event_type", "agent_id", "status", "attempt_count",
                             "next_attempt_at"}
    detail = tenant.api.get(f"/api/v1/deliveries/{delivery['id']}").json
    assert detail["attempts"] == [] and detail["id"] == delivery["id"]


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_out_of_range_times_are_422_not_500(tenant, agent, occurred_at):
    body = {"type": "message.received", "agent_id": agent["id"], "occurred_at": occurred_at}
    assert_error(tenant.api.post("/api/v1/events", json=body), 422, field="occurred_at")


def test_rfc3339_lower_case_separators_are_accepted(tenant, agent):
    body = {"type": "message.received", "agent_id": agent["id"], "occurred_at": "2026-11-26t12:00:00.250z"}
    event_id = tenant.api.post("/api/v1/events", json=body).json["id"]
    assert tenant.api.get(f"/api/v1/events/{event_id}").json["occurred_at"] == "2026-11-26T12:00:00.250Z"


def test_odd_input_never_reaches_the_database_as_a_500(tenant, agent):
    assert_error(tenant.api.get("/api/v1/agents?limit=²"), 422, field="limit")
    assert_error(tenant.api.get("/api/v1/agents/agt_%00x"), 404)
    assert_error(tenant.api.get("/api/v1/deliveries?event_type=a%00b"), 422)
    assert_error(tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/x", "agent_ids": ["a\x00"]}),
                 422, field="agent_ids")
    assert_error(tenant.api.post("/api/v1/agents", json={"name": "a\x00b"}), 422, field="name")


def test_deleting_an_agent_never_widens_an_endpoint_to_all_agents(tenant):
    keep = tenant.api.post("/api/v1/agents", json={"name": "keep"}).json["id"]
    gone = tenant.api.post("/api/v1/agents", json={"name": "gone"}).json["id"]
    only = tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/1", "agent_ids": [gone]}).json
    both = tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/2", "agent_ids": [gone, keep]}).json
    assert tenant.api.delete(f"/api/v1/agents/{gone}").status_code == 204
    only = tenant.api.get(f"/api/v1/endpoints/{only['id']}").json
    both = tenant.api.get(f"/api/v1/endpoints/{both['id']}").json
    assert only["agent_ids"] == [] and only["enabled"] is False and "'gone'" in only["disabled_reason"]
    assert both["agent_ids"] == [keep] and both["enabled"] is True


def test_deleting_a_custom_type_never_widens_an_endpoint_to_all_types(app, tenant):
    from webapp.extensions import db
    from webapp.services.event_types import create_custom_type, delete_custom_type
    with tenant.scope():
        type_id = create_custom_type({"name": "order.shipped"}).id
        db.session.commit()
    endpoint = tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/1",
                                                          "event_types": ["order.shipped"]}).json
    with tenant.scope():
        delete_custom_type(type_id)
        db.session.commit()
    endpoint = tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}").json
    assert endpoint["event_types"] == [] and endpoint["enabled"] is False
    assert "order.shipped" in endpoint["disabled_reason"]
