"""Per-agent API keys: they send only as their agent (and only their types), expire, reach nothing of the
management API, and every event records the key that sent it."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from webapp.extensions import db
from webapp.models import ApiKey, utcnow
from webapp.services import api_keys
from webapp.services.common import ValidationError

from .helpers import ApiClient, check_two_pages, csrf_token, login, make_agent, make_endpoint

API_KEY = re.compile(r"ahk_[A-Za-z0-9_-]{32,}")


def agent_key(tenant, agent_id, **fields) -> dict:
    response = tenant.api.post(f"/api/v1/agents/{agent_id}/keys", json=fields)
    assert response.status_code == 201, response.json
    assert response.headers["Cache-Control"] == "no-store"
    return response.json


def client_for(tenant, key: dict) -> ApiClient:
    return ApiClient(tenant.app.test_client(), key["key"])


@pytest.fixture
def bots(tenant):
    return make_agent(tenant.api, "bot"), make_agent(tenant.api, "other")


def test_a_per_agent_key_sends_as_its_agent_and_the_event_records_the_key(tenant, bots):
    bot, _ = bots
    key = agent_key(tenant, bot["id"], name="bot's key")
    assert key["agent_id"] == bot["id"] and key["event_types"] == [] and key["expires_at"] is None
    assert key["name"] == "bot's key" and key["key"].startswith(key["prefix"])
    agent = client_for(tenant, key)
    accepted = agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": bot["id"]})
    assert accepted.status_code == 202
    event = tenant.api.get(f"/api/v1/events/{accepted.json['id']}").json
    assert event["api_key_id"] == key["id"] and event["agent_id"] == bot["id"]
    # The tenant's own key is recorded too.
    other = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": bot["id"]}).json
    assert tenant.api.get(f"/api/v1/events/{other['id']}").json["api_key_id"].startswith("key_")


def test_a_per_agent_key_cannot_send_as_another_agent(tenant, bots):
    bot, other = bots
    agent = client_for(tenant, agent_key(tenant, bot["id"]))
    for agent_id in (other["id"], "agt_unknown"):
        response = agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent_id})
        assert response.status_code == 422
        assert response.json["error"]["message"] == f"agent_id: this key may only send as agent {bot['id']}"
        assert agent.post("/api/v1/events/validate", json={"type": "message.sent", "agent_id": agent_id}).status_code == 422
    assert tenant.api.get("/api/v1/events").json["data"] == []


def test_a_key_limited_to_some_types_cannot_send_another(tenant, bots):
    bot, _ = bots
    key = agent_key(tenant, bot["id"], event_types=["tool.executed", "message.sent"])
    assert key["event_types"] == ["message.sent", "tool.executed"]
    agent = client_for(tenant, key)
    assert agent.post("/api/v1/events", json={"type": "tool.executed", "agent_id": bot["id"]}).status_code == 202
    response = agent.post("/api/v1/events", json={"type": "message.received", "agent_id": bot["id"]})
    assert response.status_code == 422
    assert response.json["error"]["message"] == "type: this key may only send message.sent, tool.executed"


def test_an_expired_key_gets_401(app, tenant, bots):
    bot, _ = bots
    key = agent_key(tenant, bot["id"], expires_at=(utcnow() + timedelta(hours=1)).isoformat())
    agent = client_for(tenant, key)
    assert agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": bot["id"]}).status_code == 202
    with tenant.scope():
        db.session.execute(update(ApiKey).where(ApiKey.id == key["id"]).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": bot["id"]})
    assert response.status_code == 401 and response.json["error"] == {
        "code": "unauthorized", "message": "The API key is unknown, revoked or expired."}
    assert agent.get("/api/v1/event-types").status_code == 401
    # A tenant key can expire too.
    with tenant.scope():
        db.session.execute(update(ApiKey).where(ApiKey.agent_id.is_(None)).values(expires_at=utcnow()))
        db.session.commit()
    assert tenant.api.get("/api/v1/agents").status_code == 401


def test_a_per_agent_key_reaches_only_its_agents_events(tenant, bots):
    bot, other = bots
    endpoint = make_endpoint(tenant.api, "http://127.0.0.1:9/x")
    agent = client_for(tenant, agent_key(tenant, bot["id"]))
    mine = agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": bot["id"], "run_id": "r1"}).json
    theirs = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": other["id"], "run_id": "r1"}).json

    assert agent.get(f"/api/v1/events/{mine['id']}").status_code == 200
    assert agent.get(f"/api/v1/events/{theirs['id']}").status_code == 404
    assert [e["id"] for e in agent.get("/api/v1/events?run_id=r1").json["data"]] == [mine["id"]]
    assert agent.get(f"/api/v1/events?agent_id={other['id']}").json == {"data": [], "next_cursor": None}
    assert agent.get("/api/v1/event-types").status_code == 200
    assert len(tenant.api.get("/api/v1/events?run_id=r1").json["data"]) == 2

    delivery_id = tenant.api.get(f"/api/v1/events/{mine['id']}").json["deliveries"][0]["id"]
    for method, path in (("GET", "/api/v1/agents"), ("POST", "/api/v1/agents"), ("GET", f"/api/v1/agents/{bot['id']}"),
                         ("POST", f"/api/v1/agents/{bot['id']}/keys"), ("GET", "/api/v1/endpoints"),
                         ("GET", f"/api/v1/endpoints/{endpoint['id']}/secret"), ("GET", "/api/v1/deliveries"),
                         ("POST", f"/api/v1/deliveries/{delivery_id}/resend")):
        response = agent.client.open(path, method=method, json={"name": "x"}, headers=agent._headers())
        assert response.status_code == 401, (method, path)
        assert response.json["error"]["code"] == "insufficient_scope"
        assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_a_per_agent_key_cannot_replay_another_agents_idempotency_key(tenant, bots):
    bot, other = bots
    tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": other["id"]},
                    headers={"Idempotency-Key": "shared"})
    agent = client_for(tenant, agent_key(tenant, bot["id"]))
    response = agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": bot["id"]},
                          headers={"Idempotency-Key": "shared"})
    assert response.status_code == 422 and "Idempotency-Key" in response.json["error"]["message"]


@pytest.mark.parametrize("fields, field", [
    ({"event_types": ["no.such"]}, "event_types"),
    ({"event_types": "message.sent"}, "event_types"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "tomorrow"}, "expires_at"),
    ({"name": 5}, "name"),
])
def test_key_creation_validates_each_field(tenant, bots, fields, field):
    response = tenant.api.post(f"/api/v1/agents/{bots[0]['id']}/keys", json=fields)
    assert response.status_code == 422 and field in response.json["error"]["message"], response.json


def test_type_limits_need_an_agent(tenant):
    with tenant.scope(), pytest.raises(ValidationError) as caught:
        api_keys.create_key("x", event_types=["message.sent"])
    assert caught.value.field == "event_types"


def test_a_deleted_agents_key_sends_nothing_and_is_not_widened(tenant, bots):
    bot, other = bots
    agent = client_for(tenant, agent_key(tenant, bot["id"]))
    assert tenant.api.delete(f"/api/v1/agents/{bot['id']}").status_code == 204
    for agent_id in (bot["id"], other["id"]):
        assert agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent_id}).status_code == 422
    assert agent.get("/api/v1/agents").status_code == 401


# --- the dashboard -----------------------------------------------------------------------------------

def test_create_a_per_agent_key_in_the_dashboard(client, signup, app):
    signup(client)
    token = csrf_token(client.get("/agents/new").get_data(as_text=True))
    client.post("/agents/new", data={"name": "Support bot", "csrf_token": token})
    page = client.get("/keys").get_data(as_text=True)
    agent_id = re.search(r'<option value="(agt_[0-9a-z]+)">Support bot</option>', page).group(1)
    assert 'value="tool.executed"' in page and "In 30 days" in page

    response = client.post("/keys", data={"name": "bot key", "agent_id": agent_id, "event_types": ["tool.executed"],
                                          "expires_in": "30", "csrf_token": csrf_token(page)})
    created = response.get_data(as_text=True)
    assert response.status_code == 200 and f"only as the agent <code>{agent_id}</code>" in created
    assert "only of the types tool.executed" in created and "It stops working on" in created
    plaintext = API_KEY.search(created).group()

    listed = client.get("/keys").get_data(as_text=True)
    assert f"Support bot <code>{agent_id}</code>" in listed and "only tool.executed" in listed
    agent = ApiClient(app.test_client(), plaintext)
    assert agent.post("/api/v1/events", json={"type": "tool.executed", "agent_id": agent_id}).status_code == 202
    assert agent.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent_id}).status_code == 422
    assert agent.get("/api/v1/endpoints").status_code == 401

    # Types without an agent are refused on the field.
    response = client.post("/keys", data={"name": "x", "agent_id": "", "event_types": ["tool.executed"],
                                          "csrf_token": csrf_token(listed)})
    assert response.status_code == 422 and "can only limit a per-agent key" in response.get_data(as_text=True)
    # A plain tenant key is still one field away.
    response = client.post("/keys", data={"name": "ci", "csrf_token": csrf_token(listed)})
    assert response.status_code == 200 and API_KEY.search(response.get_data(as_text=True))
    assert "All agents" in client.get("/keys").get_data(as_text=True)


def test_the_delivery_detail_shows_the_key_that_sent_the_event(client, signup, app):
    signup(client)
    from webapp.services.tenants import find_user_by_email
    with app.app_context():
        tenant_id = find_user_by_email("ada@example.com").tenant_id
    from webapp.tenancy import tenant_scope
    with app.app_context(), tenant_scope(tenant_id):
        from webapp.services import agents, endpoints
        agent = agents.create_agent({"name": "bot"})
        endpoints.create_endpoint({"url": "http://127.0.0.1:9/x"})
        _, plaintext = api_keys.create_key("the bot's key", agent_id=agent.id)
        agent_id = agent.id
        db.session.commit()
    accepted = ApiClient(app.test_client(), plaintext).post(
        "/api/v1/events", json={"type": "message.sent", "agent_id": agent_id, "conversation_id": "conv-9"}).json
    delivery_id = ApiClient(app.test_client(), plaintext).get(f"/api/v1/events/{accepted['id']}").json["deliveries"][0]["id"]
    page = client.get(f"/deliveries/{delivery_id}").get_data(as_text=True)
    assert "key “the bot&#39;s key”" in page
    assert f'href="/conversations/timeline?conversation_id=conv-9#{accepted["id"]}"' in page


def test_the_keys_page_pages_through_one_key_per_agent_and_the_overview_counts_the_live_ones(tenant, client):
    """A key per agent makes a tenant with many agents one with many keys: 100 a page, newest first. The first
    steps on the overview count only keys that still work."""
    with tenant.scope():
        made = [api_keys.create_key(f"key-{n:03}")[0] for n in range(105)]  # and the fixture's own, oldest
        newest_first = [key.name for key in sorted(made, key=lambda key: key.id, reverse=True)] + ["test"]
        db.session.commit()
    login(client, "owner1@example.com")

    def listed(page: str) -> list[str]:
        return re.findall(r"<td>(key-\d+|test)</td>", page)

    check_two_pages(client, "/keys", listed, newest_first)

    def first_steps() -> str:
        return client.get("/").get_data(as_text=True).split('id="first-event-heading"')[1]

    assert "Use one of your" in first_steps()
    with tenant.scope():
        db.session.execute(update(ApiKey).where(ApiKey.name.like("key-%")).values(revoked_at=utcnow()))
        db.session.execute(update(ApiKey).where(ApiKey.name == "test").values(expires_at=utcnow() - timedelta(1)))
        db.session.commit()
    assert "Create an API key" in first_steps() and "Use one of your" not in first_steps()
