"""The runaway-agent guard: past its budget an agent's events get 429 with Retry-After, it recovers when the
window passes, the dashboard warns, and with Redis down ingest still accepts (fail open)."""
from __future__ import annotations

import re
import socket
import time

import pytest

from webapp.extensions import db
from webapp.services.agents import create_agent

from .helpers import csrf_token, login, make_agent

EVENT = {"type": "tool.executed", "data": {"tool": "loop"}}


@pytest.fixture
def small_budget(app):
    """Three events per two-second window (a unique agent per test keeps the Redis counts apart)."""
    app.config.update(AGENT_EVENT_BUDGET=3, AGENT_EVENT_BUDGET_WINDOW=2)
    return app


def post(api, agent_id):
    return api.post("/api/v1/events", json={**EVENT, "agent_id": agent_id})


def test_the_budget_answers_429_with_retry_after_then_recovers(small_budget, tenant):
    agent = make_agent(tenant.api)
    assert [post(tenant.api, agent["id"]).status_code for _ in range(3)] == [202, 202, 202]
    refused = post(tenant.api, agent["id"])
    assert refused.status_code == 429
    assert refused.json == {"error": {"code": "agent_budget_exceeded", "message": (
        f"Agent {agent['id']} is over its event budget of 3 events every 2 seconds; retry after "
        f"{refused.headers['Retry-After']} second{'s' * (refused.headers['Retry-After'] != '1')}.")}}
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    # Refused events were not stored, and do not count against the budget.
    assert len(tenant.api.get(f"/api/v1/events?agent_id={agent['id']}").json["data"]) == 3
    # Another agent of the same tenant has a budget of its own; checking an event spends none.
    assert post(tenant.api, make_agent(tenant.api, "other")["id"]).status_code == 202
    assert tenant.api.post("/api/v1/events/validate", json={**EVENT, "agent_id": agent["id"]}).status_code == 200

    time.sleep(retry_after + 0.1)
    assert post(tenant.api, agent["id"]).status_code == 202


def test_an_agents_own_budget_overrides_the_default(small_budget, tenant):
    agent = make_agent(tenant.api)
    response = tenant.api.patch(f"/api/v1/agents/{agent['id']}", json={"event_budget_per_minute": 1})
    assert response.status_code == 200 and response.json["event_budget_per_minute"] == 1
    assert [post(tenant.api, agent["id"]).status_code for _ in range(2)] == [202, 429]

    roomy = tenant.api.post("/api/v1/agents", json={"name": "roomy", "event_budget_per_minute": 10}).json
    assert [post(tenant.api, roomy["id"]).status_code for _ in range(5)] == [202] * 5
    assert tenant.api.patch(f"/api/v1/agents/{roomy['id']}", json={"event_budget_per_minute": None}).json[
        "event_budget_per_minute"] is None


@pytest.mark.parametrize("value", [0, -1, 1_000_001, "600", 2.5, True])
def test_the_budget_is_validated(tenant, value):
    response = tenant.api.post("/api/v1/agents", json={"name": "x", "event_budget_per_minute": value})
    assert response.status_code == 422 and "event_budget_per_minute" in response.json["error"]["message"]


def test_a_budget_of_zero_means_no_limit(app, tenant):
    app.config.update(AGENT_EVENT_BUDGET=0, AGENT_EVENT_BUDGET_WINDOW=60)
    agent = make_agent(tenant.api)
    assert {post(tenant.api, agent["id"]).status_code for _ in range(5)} == {202}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ingest_fails_open_when_redis_is_down(app, tenant):
    agent = make_agent(tenant.api)
    app.config.update(AGENT_EVENT_BUDGET=1, REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    app.extensions.pop("agenthooks_redis", None)
    app.extensions.pop("agenthooks_budget", None)
    started = time.monotonic()
    assert [post(tenant.api, agent["id"]).status_code for _ in range(3)] == [202, 202, 202]
    assert time.monotonic() - started < 5


# --- the dashboard -----------------------------------------------------------------------------------

def test_the_agents_page_warns_about_a_throttled_agent_and_sets_its_budget(small_budget, client, signup):
    signup(client)
    token = csrf_token(client.get("/agents/new").get_data(as_text=True))
    page = client.get("/agents/new").get_data(as_text=True)
    assert "Empty: the default, 3." in page
    response = client.post("/agents/new", data={"name": "Looper", "event_budget_per_minute": "2", "csrf_token": token},
                           follow_redirects=True)
    agent_id = re.search(r"agt_[0-9a-z]{26}", response.get_data(as_text=True)).group()
    assert "was throttled" not in response.get_data(as_text=True)

    keys = client.get("/keys").get_data(as_text=True)
    created = client.post("/keys", data={"name": "k", "csrf_token": csrf_token(keys)}).get_data(as_text=True)
    from .helpers import ApiClient
    api = ApiClient(small_budget.test_client(), re.search(r"ahk_[A-Za-z0-9_-]{32,}", created).group())
    assert [post(api, agent_id).status_code for _ in range(4)] == [202, 202, 429, 429]

    page = client.get("/agents").get_data(as_text=True)
    assert "<strong>Looper</strong> was throttled 2 times in the last hour" in page
    assert "its budget of 2 events a minute" in page

    edit = client.get(f"/agents/{agent_id}/edit").get_data(as_text=True)
    assert 'value="2"' in edit
    response = client.post(f"/agents/{agent_id}/edit", data={"name": "Looper", "event_budget_per_minute": "",
                                                             "csrf_token": csrf_token(edit)}, follow_redirects=True)
    assert response.status_code == 200
    assert api.get(f"/api/v1/agents/{agent_id}").json["event_budget_per_minute"] is None
    response = client.post(f"/agents/{agent_id}/edit", data={"name": "Looper", "event_budget_per_minute": "0",
                                                             "csrf_token": csrf_token(edit)})
    assert response.status_code == 422 and "Event budget must be a whole number" in response.get_data(as_text=True)


def test_a_throttled_agent_is_warned_about_on_the_first_page_of_the_agent_list(small_budget, tenant, client):
    with tenant.scope():
        for n in range(100):  # a whole first page of agents named before it
            create_agent({"name": f"Assistant {n:03}"})
        db.session.commit()
    looper = make_agent(tenant.api, "Looper")["id"]
    assert [post(tenant.api, looper).status_code for _ in range(4)] == [202, 202, 202, 429]
    login(client, "owner1@example.com")
    page = client.get("/agents").get_data(as_text=True)
    assert f'<tr id="{looper}"' not in page and ">Next</a>" in page
    assert "<strong>Looper</strong> was throttled 1 time in the last hour" in page
