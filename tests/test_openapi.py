"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document of every route of the API, and only of those."""
from __future__ import annotations

import re

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

from webapp.api import PUBLIC_ENDPOINTS
from webapp.api.openapi import document

API_PREFIX = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _openapi_path(rule: str) -> str:
    """Flask's ``/agents/<agent_id>`` (or ``<string:agent_id>``) is OpenAPI's ``/agents/{agent_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _api_rules(app):
    return [rule for rule in app.url_map.iter_rules()
            if rule.rule == API_PREFIX or rule.rule.startswith(API_PREFIX + "/")]


def _routes(app) -> dict[tuple[str, str], str]:
    """(path, method) -> Flask endpoint name, for every API route of the app."""
    return {(_openapi_path(rule.rule), method.lower()): rule.endpoint
            for rule in _api_rules(app) for method in rule.methods - IGNORED_METHODS}


def _operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {(path, method): operation for path, item in doc["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS}


def test_the_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)  # raises with the first error


def test_every_route_is_documented_and_every_documented_route_exists(app):
    routes = _routes(app)
    operations = _operations(document())
    assert routes, "the app has no API routes: the URL map was not read"
    assert sorted(set(routes) - set(operations)) == [], "routes missing from the OpenAPI document"
    assert sorted(set(operations) - set(routes)) == [], "documented operations the app does not have"
    for key, endpoint in routes.items():
        assert operations[key]["operationId"] == endpoint.removeprefix("api."), key


def test_every_operation_has_a_summary_and_documents_its_path_parameters(app):
    doc = document()
    for (path, method), operation in _operations(doc).items():
        assert operation.get("summary", "").endswith("."), (path, method)
        declared = {p["name"] for p in doc["paths"][path].get("parameters", []) + operation.get("parameters", [])
                    if "in" in p and p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), (path, method)


def test_only_public_endpoints_skip_the_api_key(app):
    doc = document()
    assert doc["security"] == [{"apiKey": []}]
    scheme = doc["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    public = {key for key, endpoint in _routes(app).items() if endpoint in PUBLIC_ENDPOINTS}
    assert public == {(API_PREFIX + "/openapi.json", "get")}
    for key, operation in _operations(doc).items():
        if key in public:
            assert operation["security"] == []
            assert "401" not in operation["responses"]
        else:
            assert "security" not in operation, key
            assert "401" in operation["responses"], key


def test_every_component_is_used():
    doc = document()
    text = repr({key: value for key, value in doc.items() if key != "components"}) + repr(doc["components"])
    for section in ("schemas", "responses", "headers", "parameters"):
        for name in doc["components"][section]:
            assert f"'#/components/{section}/{name}'" in text, f"unused component {section}/{name}"


def test_the_document_is_served_without_an_api_key(app):
    response = app.test_client().get(API_PREFIX + "/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == document()


# --- real answers match the document -------------------------------------------------------------------

class Conformance:
    """Checks that an answer's status is documented for its operation and that its body matches the schema."""

    def __init__(self):
        self.doc = document()

    def _resolve(self, node: dict) -> dict:
        while "$ref" in node:
            *_, section, name = node["$ref"].split("/")
            node = self.doc["components"][section][name]
        return node

    def check(self, response, path: str, method: str = "get"):
        operation = self.doc["paths"][API_PREFIX + path][method]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{method.upper()} {path} answered an undocumented {response.status_code}"
        documented = self._resolve(documented)
        if "content" not in documented:
            assert response.get_data() == b""
            return response
        for name, header in documented.get("headers", {}).items():
            if self._resolve(header).get("required"):
                assert name in response.headers, f"{method.upper()} {path}: missing header {name}"
        assert response.mimetype in documented["content"]
        schema = {**documented["content"][response.mimetype]["schema"], "components": self.doc["components"]}
        OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER).validate(response.get_json())
        return response


@pytest.fixture
def api(app, tenant):
    """A test client with a new tenant's API key."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tenant.api_key}"
    return client


def test_answers_match_the_document(app, api):
    spec = Conformance()
    agent = spec.check(api.post(API_PREFIX + "/agents", json={"name": "Support bot"}), "/agents", "post").get_json()
    spec.check(api.get(API_PREFIX + f"/agents/{agent['id']}"), "/agents/{agent_id}")
    spec.check(api.patch(API_PREFIX + f"/agents/{agent['id']}", json={"description": None}),
               "/agents/{agent_id}", "patch")
    spec.check(api.get(API_PREFIX + "/agents?limit=1"), "/agents")

    endpoint = spec.check(api.post(API_PREFIX + "/endpoints", json={
        "url": "http://127.0.0.1:9/hook", "event_types": ["message.received"], "agent_ids": [agent["id"]]}),
        "/endpoints", "post").get_json()
    spec.check(api.patch(API_PREFIX + f"/endpoints/{endpoint['id']}", json={"enabled": False}),
               "/endpoints/{endpoint_id}", "patch")
    spec.check(api.patch(API_PREFIX + f"/endpoints/{endpoint['id']}", json={"enabled": True}),
               "/endpoints/{endpoint_id}", "patch")
    spec.check(api.get(API_PREFIX + "/endpoints"), "/endpoints")
    spec.check(api.get(API_PREFIX + f"/endpoints/{endpoint['id']}/secret"), "/endpoints/{endpoint_id}/secret")
    spec.check(api.post(API_PREFIX + f"/endpoints/{endpoint['id']}/secret/rotate"),
               "/endpoints/{endpoint_id}/secret/rotate", "post")
    test = spec.check(api.post(API_PREFIX + f"/endpoints/{endpoint['id']}/test"),
                      "/endpoints/{endpoint_id}/test", "post").get_json()
    spec.check(api.get(API_PREFIX + f"/events/{test['id']}"), "/events/{event_id}")  # no agent: agent_id null

    event = {"type": "message.received", "agent_id": agent["id"], "conversation_id": "conv-42",
             "user": {"id": "u-7"}, "data": {"text": "hello"}, "occurred_at": "2026-11-26T12:00:00Z"}
    accepted = spec.check(api.post(API_PREFIX + "/events", json=event, headers={"Idempotency-Key": "k-1"}),
                          "/events", "post")
    assert accepted.status_code == 202
    replayed = spec.check(api.post(API_PREFIX + "/events", json=event, headers={"Idempotency-Key": "k-1"}),
                          "/events", "post")
    assert replayed.status_code == 200
    spec.check(api.get(API_PREFIX + f"/events/{accepted.get_json()['id']}"), "/events/{event_id}")

    deliveries = spec.check(api.get(API_PREFIX + "/deliveries?limit=100"), "/deliveries").get_json()
    assert deliveries["data"]
    delivery_id = deliveries["data"][0]["id"]
    spec.check(api.get(API_PREFIX + f"/deliveries/{delivery_id}"), "/deliveries/{delivery_id}")
    spec.check(api.post(API_PREFIX + f"/deliveries/{delivery_id}/resend"), "/deliveries/{delivery_id}/resend", "post")
    spec.check(api.get(API_PREFIX + "/event-types"), "/event-types")

    # The documented errors have the contract's shape.
    spec.check(api.get(API_PREFIX + "/agents/agt_nope"), "/agents/{agent_id}")
    spec.check(api.get(API_PREFIX + "/deliveries?status=lost"), "/deliveries")
    spec.check(api.post(API_PREFIX + "/agents", data="{", content_type="application/json"), "/agents", "post")
    spec.check(api.post(API_PREFIX + "/agents", data="name=x", content_type="text/plain"), "/agents", "post")
    spec.check(api.post(API_PREFIX + "/events", json={"type": "message.received"}), "/events", "post")
    spec.check(app.test_client().get(API_PREFIX + "/agents"), "/agents")
    spec.check(api.delete(API_PREFIX + f"/endpoints/{endpoint['id']}"), "/endpoints/{endpoint_id}", "delete")
    spec.check(api.delete(API_PREFIX + f"/agents/{agent['id']}"), "/agents/{agent_id}", "delete")
