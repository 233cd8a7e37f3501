"""Event schemas: every built-in type has one, ingest checks events against it (or the custom type's) and
lists every violation with its JSON path, /events/validate checks without storing, "warn" mode accepts."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from webapp.catalogue import BUILT_IN, INGESTIBLE, SCHEMAS, TEST_EVENT_TYPE
from webapp.extensions import db
from webapp.models import Event
from webapp.services import schemas
from webapp.services.event_types import create_custom_type

from .helpers import csrf_token, make_agent

# For each built-in type: its example with one known field of the wrong type, and that field's path.
BROKEN = {
    "conversation.started": ({"data": {"channel": 7}}, "$.data.channel"),
    "message.received": ({"data": {"text": ["hello"]}}, "$.data.text"),
    "message.sent": ({"data": {"usage": {"output_tokens": -3}}}, "$.data.usage.output_tokens"),
    "tool.executed": ({"data": {"tool": ""}}, "$.data.tool"),
    "user.signed_up": ({"user": {"email": "not an address"}}, "$.user.email"),
    "credits.purchased": ({"data": {"currency": "dollars"}}, "$.data.currency"),
    "conversation.ended": ({"data": {"messages": "twelve"}}, "$.data.messages"),
    "error.occurred": ({"data": {"retryable": "yes"}}, "$.data.retryable"),
    TEST_EVENT_TYPE: ({"data": {"message": {"text": "hi"}}}, "$.data.message"),
}


def _broken(type_: str) -> tuple[dict, str]:
    change, path = BROKEN[type_]
    event = {key: (dict(value) if isinstance(value, dict) else value) for key, value in BUILT_IN[type_][1].items()}
    for key, value in change.items():
        event[key] = {**event.get(key, {}), **value}
    return event, path


def events_stored(tenant) -> int:
    with tenant.scope():
        return db.session.scalar(select(func.count()).select_from(Event))


def test_every_built_in_type_has_a_valid_schema_and_a_broken_example_for_this_test():
    assert set(SCHEMAS) == set(BUILT_IN) == set(BROKEN)
    for schema in SCHEMAS.values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("type_", list(BUILT_IN))
def test_the_example_passes_and_a_broken_one_names_the_path(type_):
    assert schemas.violations_of(SCHEMAS[type_], BUILT_IN[type_][1]) == ([], 0)
    event, path = _broken(type_)
    violations, total = schemas.violations_of(SCHEMAS[type_], event)
    assert total == 1 and violations[0].path == path, violations


def _property_paths(schema: dict, prefix: tuple = ()) -> list[tuple]:
    """Every path to a property a schema describes, nested objects' properties included."""
    paths = []
    for name, sub in schema.get("properties", {}).items():
        paths.append(prefix + (name,))
        paths += _property_paths(sub, prefix + (name,))
    return paths


# Values that probe where two validators may read a schema differently: types next to each other (bool and
# int, 1.0 and 1, big integers, NaN), lengths at the limits, "$" before a newline, non-ASCII digits and
# letters, email-like strings, lone surrogates.
_TRICKY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, -1, 0.0, -0.0, 1.0, 1.5])
    | st.text(max_size=8) | st.text(alphabet="AZaz@.\n \ud800é٣", max_size=6)
    | st.sampled_from(["USD", "USD\n", "usd", "", "a@b", "a@b.c", "@", "a b@c.d", "x" * 255, "x" * 256,
                      "é" * 256, "😀" * 255]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6)


def _mutations(type_: str):
    paths = _property_paths(SCHEMAS[type_])
    return st.lists(st.tuples(st.sampled_from(paths), _TRICKY), min_size=1, max_size=4)


def _mutated(example: dict, mutations) -> dict:
    event = json.loads(json.dumps(example))
    for path, value in mutations:
        node = event
        for name in path[:-1]:
            node = node.setdefault(name, {}) if isinstance(node.get(name, {}), dict) else None
            if node is None:
                break
        if node is not None:
            node[path[-1]] = value
    return event


@pytest.mark.parametrize("type_", list(BUILT_IN))
def test_the_quick_check_passes_only_what_jsonschema_passes(type_):
    """Ingest lets jsonschema-rs pass valid events of built-in types; it must never pass one that jsonschema,
    which lists the violations, would refuse. And it must pass the examples, or it would save nothing."""
    assert schemas._passes_quickly(type_, BUILT_IN[type_][1])
    assert not schemas._passes_quickly(type_, _broken(type_)[0])

    @settings(max_examples=300, derandomize=True, deadline=None, database=None)
    @given(_mutations(type_))
    def agrees(mutations):
        event = _mutated(BUILT_IN[type_][1], mutations)
        if schemas._passes_quickly(type_, event):
            assert schemas.violations_of(SCHEMAS[type_], event) == ([], 0), event

    agrees()


@pytest.mark.parametrize("type_", INGESTIBLE)
def test_ingest_accepts_the_example_and_refuses_the_broken_one_naming_the_path(tenant, type_):
    agent = make_agent(tenant.api)
    response = tenant.api.post("/api/v1/events", json={"type": type_, "agent_id": agent["id"], **BUILT_IN[type_][1]})
    assert response.status_code == 202 and "warnings" not in response.json, response.json

    event, path = _broken(type_)
    before = events_stored(tenant)
    response = tenant.api.post("/api/v1/events", json={"type": type_, "agent_id": agent["id"], **event})
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "validation_failed" and error["message"].startswith(path + ":")
    assert [d["path"] for d in error["details"]] == [path]
    assert events_stored(tenant) == before


def test_a_422_lists_every_violation_with_its_path(tenant):
    agent = make_agent(tenant.api)
    response = tenant.api.post("/api/v1/events", json={
        "type": "credits.purchased", "agent_id": agent["id"], "user": {"id": 4.5, "name": ["Ada"]},
        "data": {"credits": -1, "amount": "19", "currency": "usd"}})
    assert response.status_code == 422
    error = response.json["error"]
    assert [d["path"] for d in error["details"]] == [
        "$.data.amount", "$.data.credits", "$.data.currency", "$.user.id", "$.user.name"]
    assert all(d["message"] for d in error["details"])
    assert error["message"].startswith("$.data.amount: ") and "(and 4 more violations: see details)" in error["message"]


def test_schemas_are_permissive_about_extra_fields_and_nulls(tenant):
    agent = make_agent(tenant.api)
    response = tenant.api.post("/api/v1/events", json={
        "type": "tool.executed", "agent_id": agent["id"], "user": None, "conversation_id": None, "mood": "sunny",
        "data": {"tool": "search", "input": [1, 2], "output": None, "error": None, "model": "x", "cost": 0.2}})
    assert response.status_code == 202, response.json
    # An event with only the required fields was always valid, and stays so for every type.
    for type_ in INGESTIBLE:
        assert tenant.api.post("/api/v1/events", json={"type": type_, "agent_id": agent["id"]}).status_code == 202


def test_event_types_answer_each_types_schema_example_and_mode(tenant):
    types = {t["name"]: t for t in tenant.api.get("/api/v1/event-types").json["data"]}
    for name in BUILT_IN:
        assert types[name]["schema"] == SCHEMAS[name] and types[name]["schema_mode"] == "reject"
        validator = Draft202012Validator(types[name]["schema"], format_checker=Draft202012Validator.FORMAT_CHECKER)
        assert list(validator.iter_errors(types[name]["example"])) == []


def test_validate_checks_without_storing(tenant):
    agent = make_agent(tenant.api)
    good = {"type": "message.received", "agent_id": agent["id"], "data": {"text": "hi"}}
    before = events_stored(tenant)
    response = tenant.api.post("/api/v1/events/validate", json=good)
    assert response.status_code == 200 and response.json == {"valid": True}

    bad = {**good, "data": {"text": 5}}
    validated, ingested = (tenant.api.post(path, json=bad) for path in ("/api/v1/events/validate", "/api/v1/events"))
    assert validated.status_code == ingested.status_code == 422
    assert validated.json == ingested.json
    response = tenant.api.post("/api/v1/events/validate", json={"type": "message.received", "agent_id": "agt_nope"})
    assert response.status_code == 422 and "agent_id" in response.json["error"]["message"]
    assert events_stored(tenant) == before + 0  # the refused ingest stored nothing either


def test_warn_mode_accepts_with_warnings_until_switched_back(app, tenant):
    agent = make_agent(tenant.api)
    bad = {"type": "message.sent", "agent_id": agent["id"], "data": {"text": 42}}
    with tenant.scope():
        schemas.set_mode("message.sent", "warn")
        db.session.commit()
    warning = [{"path": "$.data.text", "message": "42 is not of type 'string'"}]
    accepted = tenant.api.post("/api/v1/events", json=bad)
    assert accepted.status_code == 202 and accepted.json["warnings"] == warning
    assert tenant.api.post("/api/v1/events/validate", json=bad).json == {"valid": True, "warnings": warning}
    modes = {t["name"]: t["schema_mode"] for t in tenant.api.get("/api/v1/event-types").json["data"]}
    assert modes["message.sent"] == "warn" and modes["message.received"] == "reject"

    with tenant.scope():
        schemas.set_mode("message.sent", "reject")
        db.session.commit()
    assert tenant.api.post("/api/v1/events", json=bad).status_code == 422


def test_modes_are_per_tenant(make_tenant):
    a, b = make_tenant("A"), make_tenant("B")
    with a.scope():
        schemas.set_mode("message.sent", "warn")
        db.session.commit()
    for tenant, status in ((a, 202), (b, 422)):
        agent = make_agent(tenant.api)
        response = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"],
                                                           "data": {"text": 1}})
        assert response.status_code == status


def test_a_custom_type_checks_events_against_its_own_schema(tenant):
    agent = make_agent(tenant.api)
    with tenant.scope():
        create_custom_type({"name": "order.shipped", "schema": {
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "object", "required": ["order_id"],
                                    "properties": {"order_id": {"type": "string"}, "items": {
                                        "type": "array", "items": {"$ref": "#/$defs/item"}}}}},
            "$defs": {"item": {"type": "object", "required": ["sku"]}}}})
        create_custom_type({"name": "order.noted"})  # no schema: anything goes
        db.session.commit()

    def send(body):
        return tenant.api.post("/api/v1/events", json={"agent_id": agent["id"], **body})

    assert send({"type": "order.shipped", "data": {"order_id": "A-1", "items": [{"sku": "x"}]}}).status_code == 202
    refused = send({"type": "order.shipped", "data": {"items": [{"qty": 1}]}})
    assert refused.status_code == 422
    assert [d["path"] for d in refused.json["error"]["details"]] == ["$.data", "$.data.items[0]"]
    assert send({"type": "order.noted", "data": {"anything": [1]}}).status_code == 202
    types = {t["name"]: t for t in tenant.api.get("/api/v1/event-types").json["data"]}
    assert types["order.shipped"]["schema"]["required"] == ["data"] and types["order.noted"]["schema"] is None


@pytest.mark.parametrize("schema, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"type": "objekt"}', "is not a valid JSON Schema"),
    ('{"$ref": "https://example.com/schema.json"}', "may only refer to parts of itself"),
    ('{"$ref": "#/$defs/missing"}', "which it does not contain"),
    ('{"$schema": "https://example.com/my-dialect"}', "unknown JSON Schema dialect"),
    ('{"$schema": ["x"]}', "unknown JSON Schema dialect"),
    ('{"description": "' + "x" * 70000 + '"}', "at most 64 KiB"),
])
def test_a_custom_schema_that_cannot_work_is_refused_naming_the_field(tenant, schema, message):
    with tenant.scope(), pytest.raises(schemas.ValidationError) as caught:
        create_custom_type({"name": "order.shipped", "schema": schema})
    assert caught.value.field == "schema" and message in caught.value.message


# --- the dashboard -----------------------------------------------------------------------------------

@pytest.fixture
def user(client, signup):
    assert signup(client).status_code == 200
    return client


def post(client, path, data=None, **kwargs):
    token = csrf_token(client.get("/keys").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **(data or {})}, follow_redirects=True, **kwargs)


def test_the_event_types_page_shows_each_schema_and_links_its_page(user):
    page = user.get("/event-types").get_data(as_text=True)
    assert "&#34;$schema&#34;: &#34;https://json-schema.org/draft/2020-12/schema&#34;" in page
    assert 'href="/event-types/schema?type=tool.executed"' in page
    detail = user.get("/event-types/schema?type=tool.executed").get_data(as_text=True)
    assert "&#34;duration_ms&#34;" in detail and "Only warn about events that fail the schema" in detail
    assert user.get("/event-types/schema?type=no.such").status_code == 404
    assert user.get(f"/event-types/schema?type={TEST_EVENT_TYPE}").status_code == 200


def test_switch_a_type_to_warn_and_back_on_its_page(user):
    response = post(user, "/event-types/schema/mode", {"type": "message.sent", "mode": "warn"})
    assert response.request.path == "/event-types/schema"
    page = response.get_data(as_text=True)
    assert "events that fail the schema are accepted now, with warnings" in page
    assert "Reject events that fail the schema" in page
    assert "message.sent</code>" in user.get("/event-types").get_data(as_text=True)
    assert "Schema (warn only)" in user.get("/event-types").get_data(as_text=True)
    response = post(user, "/event-types/schema/mode", {"type": "message.sent", "mode": "reject"})
    assert "refused with 422 now" in response.get_data(as_text=True)
    assert post(user, "/event-types/schema/mode", {"type": "no.such", "mode": "warn"}).status_code == 404
    assert post(user, "/event-types/schema/mode", {"type": "message.sent", "mode": "maybe"}).status_code == 400


def test_add_a_custom_type_with_a_schema_then_edit_it(user):
    response = post(user, "/event-types", {"name": "order.shipped", "schema": '{"type": "objekt"}'})
    assert response.status_code == 422 and "Schema is not a valid JSON Schema" in response.get_data(as_text=True)
    response = post(user, "/event-types", {"name": "order.shipped",
                                           "schema": '{"properties": {"data": {"required": ["order_id"]}}}'})
    assert response.status_code == 200 and "Edit schema" in response.get_data(as_text=True)

    page = user.get("/event-types/schema?type=order.shipped").get_data(as_text=True)
    assert "&#34;order_id&#34;" in page
    response = post(user, "/event-types/schema?type=order.shipped", {"schema": '{"$ref": "http://evil/x"}'})
    assert response.status_code == 422 and "may only refer to parts of itself" in response.get_data(as_text=True)
    response = post(user, "/event-types/schema?type=order.shipped", {"schema": ""})
    assert "Schema of order.shipped removed" in response.get_data(as_text=True)
    assert "Add a schema" in user.get("/event-types").get_data(as_text=True)
    # Built-in schemas are the catalogue's.
    assert post(user, "/event-types/schema?type=message.sent", {"schema": "{}"}).status_code == 404


def test_another_tenants_custom_type_page_is_404(app, user, signup):
    post(user, "/event-types", {"name": "secret.thing", "schema": '{"title": "hidden"}'})
    intruder = app.test_client()
    signup(intruder, org="Intruder", email="eve@example.com")
    assert intruder.get("/event-types/schema?type=secret.thing").status_code == 404
    assert post(intruder, "/event-types/schema?type=secret.thing", {"schema": "{}"}).status_code == 404
    assert post(intruder, "/event-types/schema/mode", {"type": "secret.thing", "mode": "warn"}).status_code == 404
    assert "hidden" in user.get("/event-types/schema?type=secret.thing").get_data(as_text=True)


def test_the_schema_pages_carry_no_inline_script_or_style(user):
    post(user, "/event-types", {"name": "order.shipped", "schema": '{"title": "t"}'})
    for path in ("/event-types", "/event-types/schema?type=message.sent", "/event-types/schema?type=order.shipped"):
        page = user.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", page), path
