"""Conversations and runs: run_id, parent_event_id and the W3C Trace Context reach receivers (headers and
body) through the real worker; the timeline shows a conversation's events in order with their deliveries."""
from __future__ import annotations

import json
import re

import pytest
import standardwebhooks

from .helpers import csrf_token, delivery_of, make_agent, make_endpoint, send, wait_for_status

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_run_parent_and_trace_context_are_forwarded_to_the_receiver(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    endpoint = make_endpoint(tenant.api, receiver.url)
    parent = send(tenant.api, agent["id"], "message.received", conversation_id="conv-1", run_id="run-7")
    response = tenant.api.post("/api/v1/events", json={
        "type": "tool.executed", "agent_id": agent["id"], "conversation_id": "conv-1", "run_id": "run-7",
        "parent_event_id": parent["id"], "data": {"tool": "search"}},
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other=1"})
    assert response.status_code == 202
    child = response.json

    requests_ = {json.loads(r.body)["id"]: r for r in receiver.wait_for(2)}
    request = requests_[child["id"]]
    assert request.headers["agenthooks-run-id"] == "run-7"
    assert request.headers["agenthooks-parent-event-id"] == parent["id"]
    assert request.headers["traceparent"] == TRACEPARENT
    assert request.headers["tracestate"] == "vendor=abc,other=1"
    body = standardwebhooks.Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert body["run_id"] == "run-7" and body["parent_event_id"] == parent["id"]

    first = requests_[parent["id"]]
    assert first.headers["agenthooks-run-id"] == "run-7"
    assert not {"agenthooks-parent-event-id", "traceparent", "tracestate"} & set(first.headers)
    assert "parent_event_id" not in json.loads(first.body)

    event = tenant.api.get(f"/api/v1/events/{child['id']}").json
    assert (event["run_id"], event["parent_event_id"], event["traceparent"]) == ("run-7", parent["id"], TRACEPARENT)
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, child["id"])["id"], "succeeded")
    assert delivery["attempt_count"] == 1


def test_an_event_without_them_keeps_the_contracts_payload_and_headers(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    response = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"]},
                               headers={"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"})
    assert response.status_code == 202  # a malformed traceparent is ignored, as the W3C says
    request = receiver.wait_for(1)[0]
    assert set(json.loads(request.body)) == {"id", "type", "timestamp", "agent", "conversation_id", "user", "data"}
    assert not [name for name in request.headers if name.startswith(("agenthooks-", "trace"))]
    assert tenant.api.get(f"/api/v1/events/{response.json['id']}").json["traceparent"] is None


@pytest.mark.parametrize("traceparent", [
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has four fields
    "garbage",
])
def test_malformed_traceparents_are_ignored(tenant, traceparent):
    agent = make_agent(tenant.api)
    response = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"]},
                               headers={"traceparent": traceparent, "tracestate": "a=b"})
    assert response.status_code == 202
    assert tenant.api.get(f"/api/v1/events/{response.json['id']}").json["traceparent"] is None


@pytest.mark.parametrize("fields, field", [
    ({"run_id": "r" * 256}, "run_id"),
    ({"run_id": 7}, "run_id"),
    ({"run_id": "run\n7"}, "run_id"),
    ({"run_id": "rün"}, "run_id"),
    ({"parent_event_id": "evt_01jd8x3q4m5n6p7r8s9t0v1w2x"}, "parent_event_id"),
    ({"parent_event_id": ["evt_1"]}, "parent_event_id"),
    ({"parent_event_id": "e" * 256}, "parent_event_id"),
])
def test_run_and_parent_are_validated(tenant, fields, field):
    agent = make_agent(tenant.api)
    response = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"], **fields})
    assert response.status_code == 422 and response.json["error"]["message"].startswith(field + ":"), response.json


def test_the_parent_must_be_one_of_the_tenants_events(make_tenant):
    a, b = make_tenant("A"), make_tenant("B")
    theirs = send(a.api, make_agent(a.api)["id"])
    agent = make_agent(b.api)
    response = b.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"],
                                                  "parent_event_id": theirs["id"]})
    assert response.status_code == 422 and "parent_event_id" in response.json["error"]["message"]
    mine = send(b.api, agent["id"])
    assert send(b.api, agent["id"], parent_event_id=mine["id"])


def test_events_list_by_conversation_and_run_newest_first(tenant):
    agent = make_agent(tenant.api)
    ids = [send(tenant.api, agent["id"], conversation_id="c-1", run_id=f"r-{n % 2}")["id"] for n in range(4)]
    send(tenant.api, agent["id"], conversation_id="c-2")
    listed = tenant.api.get("/api/v1/events?conversation_id=c-1&limit=3").json
    assert [e["id"] for e in listed["data"]] == ids[::-1][:3] and listed["next_cursor"]
    rest = tenant.api.get(f"/api/v1/events?conversation_id=c-1&cursor={listed['next_cursor']}").json
    assert [e["id"] for e in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    assert [e["id"] for e in tenant.api.get("/api/v1/events?run_id=r-1").json["data"]] == [ids[3], ids[1]]
    assert [e["id"] for e in tenant.api.get("/api/v1/events?conversation_id=c-1&run_id=r-0&type=message.received")
            .json["data"]] == [ids[2], ids[0]]
    assert tenant.api.get("/api/v1/events?type=tool.executed").json["data"] == []


# --- the timeline ------------------------------------------------------------------------------------

@pytest.fixture
def user(client, signup):
    assert signup(client).status_code == 200
    return client


def _api_key(client) -> str:
    page = client.post("/keys", data={"name": "t", "csrf_token": csrf_token(client.get("/keys").get_data(as_text=True))})
    return re.search(r"ahk_[A-Za-z0-9_-]{32,}", page.get_data(as_text=True)).group()


def test_the_timeline_shows_a_conversations_events_in_order_with_their_deliveries(app, user):
    from .helpers import ApiClient
    api = ApiClient(app.test_client(), _api_key(user))
    agent = make_agent(api, "Support bot")
    make_endpoint(api, "http://127.0.0.1:9/first")
    make_endpoint(api, "http://127.0.0.1:9/second", event_types=["tool.executed"])
    # Sent out of order: the timeline orders by when each happened.
    ended = send(api, agent["id"], "conversation.ended", conversation_id="conv-42", occurred_at="2026-11-26T12:00:09Z")
    started = send(api, agent["id"], "conversation.started", conversation_id="conv-42", occurred_at="2026-11-26T12:00:00Z")
    tool = send(api, agent["id"], "tool.executed", conversation_id="conv-42", run_id="run-1",
                parent_event_id=started["id"], occurred_at="2026-11-26T12:00:05Z", data={"tool": "search"})
    send(api, agent["id"], "message.sent", conversation_id="conv-other")

    page = user.get("/conversations/timeline?conversation_id=conv-42").get_data(as_text=True)
    rows = re.findall(r'<tr id="(evt_[0-9a-z]+)">', page)
    assert rows == [started["id"], tool["id"], ended["id"]]
    # One delivery each, two for tool.executed (whatever their status: the session's worker may be at them).
    assert len(re.findall(r'class="status status-', page)) == 4
    assert "http://127.0.0.1:9/second" in page and "Support bot" in page and "key “t”" in page
    assert f'href="#{started["id"]}"' in page and 'href="/conversations/timeline?run_id=run-1"' in page
    assert page.index("conversation.started") < page.index("tool.executed") < page.index("conversation.ended")

    run = user.get("/conversations/timeline?run_id=run-1").get_data(as_text=True)
    assert re.findall(r'<tr id="(evt_[0-9a-z]+)">', run) == [tool["id"]]
    listing = user.get("/conversations").get_data(as_text=True)
    assert 'href="/conversations/timeline?conversation_id=conv-42"' in listing
    assert 'href="/conversations/timeline?run_id=run-1"' in listing
    assert user.get("/conversations/timeline").status_code == 302


def test_the_timeline_shows_only_the_tenants_own_events(app, user, signup):
    from .helpers import ApiClient
    api = ApiClient(app.test_client(), _api_key(user))
    send(api, make_agent(api)["id"], conversation_id="conv-secret", data={"text": "private"})
    intruder = app.test_client()
    signup(intruder, org="Intruder", email="eve@example.com")
    page = intruder.get("/conversations/timeline?conversation_id=conv-secret").get_data(as_text=True)
    assert "No events" in page and "private" not in page
    assert "conv-secret" not in intruder.get("/conversations").get_data(as_text=True)
    assert "private" in user.get("/conversations/timeline?conversation_id=conv-secret").get_data(as_text=True)
