"""Choosing one agent or endpoint among many: the delivery log's filters and the API key form list every choice
while a tenant has a few, and search beyond that (webapp/dashboard/pickers.py, webapp/services/choices.py)."""
from __future__ import annotations

import functools
import re
from html import unescape

import pytest

from webapp.dashboard.pickers import INLINE_MAX
from webapp.extensions import db
from webapp.models import ApiKey
from webapp.services import choices
from webapp.services.agents import create_agent, delete_agent
from webapp.services.common import ValidationError
from webapp.services.endpoints import get_endpoint

from . import factories
from .helpers import csrf_token, login

MANY = INLINE_MAX + 1


def make_agents(tenant, names) -> dict[str, str]:
    with tenant.scope():
        made = {name: create_agent({"name": name}).id for name in names}
        db.session.commit()
    return made


def customers(count: int = MANY) -> list[str]:
    return [f"customer-{n:03}" for n in range(count)]


def test_a_typed_name_or_id_resolves_to_exactly_one_agent_or_says_why_not(tenant, make_tenant):
    made = make_agents(tenant, ["Support bot", "Sales bot", "Twin", "twin", "Billing", "Über agent", "Über agent 2"])
    other = make_agents(make_tenant("Other"), ["Support bot ours not"])
    with tenant.scope():
        resolve = functools.partial(choices.resolve, choices.AGENTS, field="agent_id")
        assert resolve(None) is None and resolve("  ") is None
        assert resolve(made["Billing"]) == made["Billing"]
        assert resolve(" support BOT ") == made["Support bot"]  # a name, whatever its case
        assert resolve("bill") == made["Billing"]  # the only name that contains it
        assert resolve("Über agent") == made["Über agent"]  # as typed, though another contains it
        with pytest.raises(ValidationError) as error:
            resolve("bot")
        assert error.value.field == "agent_id"
        assert error.value.message == ("2 agents' names contain 'bot': pick one from the suggestions, "
                                       "which show each one's id.")
        with pytest.raises(ValidationError, match="2 agents have the name 'TWIN'"):
            resolve("TWIN")
        with pytest.raises(ValidationError, match="No agent's name contains 'nobody'"):
            resolve("nobody")
        # Another tenant's agent is none of ours: not found by its name, its id stands as typed (and matches
        # none of our deliveries, as a deleted agent's id matches only its own).
        with pytest.raises(ValidationError, match="No agent's name contains 'Support bot ours not'"):
            resolve("Support bot ours not")
        assert resolve(other["Support bot ours not"]) == other["Support bot ours not"]
        delete_agent(made["Sales bot"])
        assert resolve(made["Sales bot"]) == made["Sales bot"]
        assert resolve("bot") == made["Support bot"]
        # A search shows only the tenant's, in name order, ids too; LIKE's wildcards are text.
        assert [c.label for c in choices.search(choices.AGENTS, "o")] == ["Support bot"]
        assert choices.search(choices.AGENTS, "%") == [] and choices.search(choices.AGENTS, "_") == []
        everyone = [c.label for c in choices.search(choices.AGENTS, "")]  # in the database's collation
        assert everyone[:2] == ["Billing", "Support bot"]
        assert set(everyone) == {"Billing", "Support bot", "Twin", "twin", "Über agent", "Über agent 2"}


def test_endpoints_resolve_by_url(tenant):
    with tenant.scope():
        shop = factories.endpoint(url="http://127.0.0.1:9/shop").id
        factories.endpoint(url="http://127.0.0.1:9/crm-a")
        factories.endpoint(url="http://127.0.0.1:9/crm-b")
        db.session.commit()
        assert choices.resolve(choices.ENDPOINTS, "SHOP", "endpoint_id") == shop
        with pytest.raises(ValidationError, match="2 endpoints' URLs contain 'crm'"):
            choices.resolve(choices.ENDPOINTS, "crm", "endpoint_id")


def filter_controls(page: str) -> tuple[bool, bool]:
    """Whether the delivery log's agent and endpoint filters are <select>s (False: search boxes)."""
    return '<select name="agent_id"' in page, '<select name="endpoint_id"' in page


def test_the_delivery_log_lists_a_few_agents_and_endpoints_and_searches_among_many(tenant, client):
    names = customers()
    made = make_agents(tenant, names[:INLINE_MAX])
    with tenant.scope():
        endpoint = factories.endpoint(url="http://127.0.0.1:9/<b>shop</b>")
        factories.delivery(endpoint, agent_id=made["customer-042"])
        factories.delivery(endpoint, agent_id=made["customer-043"])
        endpoint_id = endpoint.id
        db.session.commit()
    login(client, "owner1@example.com")
    page = client.get("/deliveries").get_data(as_text=True)
    assert filter_controls(page) == (True, True)
    assert len(re.findall(r'<option value="agt_', page)) == INLINE_MAX
    assert "&lt;b&gt;shop&lt;/b&gt;" in page and "<b>shop" not in page

    made.update(make_agents(tenant, names[INLINE_MAX:]))  # one too many to list
    page = client.get("/deliveries").get_data(as_text=True)
    assert filter_controls(page) == (False, True)
    assert '<option value="agt_' not in page and 'list="agent_id-suggestions"' in page

    # What the box's suggestions hold as one types: the matches, with their ids as values.
    suggestions = client.get("/choices/agents?field=agent_id&agent_id=customer-04").get_data(as_text=True)
    assert re.findall(r'<option value="(agt_\w+)">customer-04(\d)</option>', suggestions) == [
        (made[f"customer-04{n}"], str(n)) for n in range(10)]
    everyone = client.get("/choices/agents?field=agent_id&agent_id=").get_data(as_text=True)
    assert everyone.count("<option") == choices.SUGGESTIONS
    endpoints = client.get("/choices/endpoints?field=endpoint_id&endpoint_id=SHOP").get_data(as_text=True)
    assert f'<option value="{endpoint_id}">http://127.0.0.1:9/&lt;b&gt;shop&lt;/b&gt;</option>' in endpoints

    # A typed name stands for its agent: the address then names the id, and the log shows its deliveries.
    response = client.get("/deliveries?agent_id=Customer-042")
    assert response.status_code == 302 and response.location == f"/deliveries?agent_id={made['customer-042']}"
    page = client.get(response.location).get_data(as_text=True)
    assert page.count('<tr id="dlv_') == 1 and f'value="{made["customer-042"]}"' in page
    assert '<span class="hint picked" id="agent_id-chosen">customer-042</span>' in page

    # A name that stands for several, or none, says so instead of showing an empty log.
    response = client.get("/deliveries?agent_id=customer-04&status=succeeded")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and '<tr id="dlv_' not in page
    assert "10 agents&#39; names contain &#39;customer-04&#39;: pick one from the suggestions" in page
    assert 'value="customer-04"' in page  # what was typed stays in the box
    assert "No agent&#39;s name contains &#39;nobody&#39;" in client.get("/deliveries?agent_id=nobody").get_data(
        as_text=True)


def test_suggestions_are_the_tenants_own_and_need_a_log_in(tenant, make_tenant, client):
    make_agents(tenant, ["Support bot"])
    make_agents(make_tenant("Other"), ["Support bot of another tenant"])
    assert client.get("/choices/agents?field=agent_id&agent_id=bot").status_code == 302  # to log in
    login(client, "owner1@example.com")
    suggestions = client.get("/choices/agents?field=agent_id&agent_id=bot").get_data(as_text=True)
    assert ">Support bot</option>" in suggestions and "another tenant" not in suggestions


def test_a_key_for_one_of_many_agents_is_made_by_typing_its_name(tenant, client):
    made = make_agents(tenant, customers())
    login(client, "owner1@example.com")
    page = client.get("/keys").get_data(as_text=True)
    assert '<select name="agent_id"' not in page and 'list="agent_id-suggestions"' in page

    def create(agent: str):
        token = csrf_token(client.get("/keys").get_data(as_text=True))
        return client.post("/keys", data={"csrf_token": token, "name": "one agent", "agent_id": agent})

    response = create("customer-01")
    page = unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "10 agents' names contain 'customer-01': pick one from the suggestions" in page
    response = create("customer-017")
    assert response.status_code == 200 and "won't be shown again" in response.get_data(as_text=True)
    with tenant.scope():
        assert db.session.scalars(db.select(ApiKey.agent_id).where(ApiKey.name == "one agent")).all() == [
            made["customer-017"]]
    # No agent: a tenant key, as with the list.
    assert create("").status_code == 200


def endpoint_form(client, path: str, **fields):
    token = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "url": "http://127.0.0.1:9/crm", **fields})


def agent_filter(tenant, endpoint_id: str) -> list[str]:
    with tenant.scope():
        return get_endpoint(endpoint_id).agent_ids


def test_an_endpoint_takes_some_of_many_agents_ticked_and_added_by_name(tenant, client):
    made = make_agents(tenant, customers())
    login(client, "owner1@example.com")
    page = client.get("/endpoints/new").get_data(as_text=True)
    assert 'name="agent_ids"' not in page and 'list="add_agent-suggestions"' in page  # none listed, none ticked

    # Saving adds the agent typed in the box (Enter in it saves; so does the form without JavaScript).
    response = endpoint_form(client, "/endpoints/new", add_agent="customer-017")
    assert response.status_code == 302
    endpoint_id = response.location.rsplit("/", 1)[1]
    assert agent_filter(tenant, endpoint_id) == [made["customer-017"]]

    # The edit form lists the ticked agent by name; ticked ones stay, a typed one joins them, unticking drops.
    edit = f"/endpoints/{endpoint_id}/edit"
    page = client.get(edit).get_data(as_text=True)
    assert re.findall(r'<input checked id="agent_ids-0" name="agent_ids" type="checkbox" value="(\w+)"> '
                      r'<label for="agent_ids-0">([\w-]+)</label>', page) == [(made["customer-017"], "customer-017")]
    assert endpoint_form(client, edit, agent_ids=[made["customer-017"]], add_agent="Customer-100").status_code == 302
    assert agent_filter(tenant, endpoint_id) == [made["customer-017"], made["customer-100"]]
    assert endpoint_form(client, edit, agent_ids=[made["customer-100"]]).status_code == 302
    assert agent_filter(tenant, endpoint_id) == [made["customer-100"]]

    # A name that stands for several agents, or an id that is not an agent of ours, is refused and kept.
    for typed, message in (("customer-01", "10 agents' names contain 'customer-01'"),
                           ("agt_nobody", "No agent of yours has the id 'agt_nobody'.")):
        response = endpoint_form(client, edit, agent_ids=[made["customer-100"]], add_agent=typed)
        page = unescape(response.get_data(as_text=True))
        assert response.status_code == 422 and message in page and f'value="{typed}"' in page
        assert agent_filter(tenant, endpoint_id) == [made["customer-100"]]


def test_the_add_button_answers_the_ticked_box_of_the_typed_agent(tenant, client):
    made = make_agents(tenant, [*customers(), "<b>bold</b>"])
    login(client, "owner1@example.com")
    answer = client.get("/choices/agents/tick?add_agent=%3Cb%3E").get_data(as_text=True)
    bold = made["<b>bold</b>"]
    assert (f'<li><input checked id="agent_ids-{bold}" name="agent_ids" type="checkbox" value="{bold}"> '
            f'<label for="agent_ids-{bold}">&lt;b&gt;bold&lt;/b&gt;</label></li>') in answer
    assert 'id="add_agent-picker" hx-swap-oob="true"' in answer and 'value=""' in answer  # the box, emptied
    # Ticked already: nothing more to tick, and it says so. Several: the error, with what was typed.
    answer = client.get(f"/choices/agents/tick?add_agent=%3Cb%3E&agent_ids={bold}").get_data(as_text=True)
    assert "<li>" not in answer and 'role="status">“&lt;b&gt;bold&lt;/b&gt;” is ticked already.</p>' in answer
    assert 'value=""' in answer and 'role="alert"' not in answer
    answer = unescape(client.get("/choices/agents/tick?add_agent=customer-05").get_data(as_text=True))
    assert "<li>" not in answer and "10 agents' names contain 'customer-05'" in answer and 'value="customer-05"' in answer
