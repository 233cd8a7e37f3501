"""Fuzzing the API with Schemathesis against /api/v1/openapi.json: no 5xx, every answer matches the document.

In-process against the WSGI app, with a bounded, derandomized number of examples per operation (so a run
is repeatable and well under two minutes). The fuzzed tenant lives in a database and a Redis database of
its own: the shared test worker (which allows private destinations) must never deliver to a URL that
Hypothesis made up.
"""
from __future__ import annotations

import os

import flask_migrate
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from redis import Redis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)
from sqlalchemy import text

from webapp import create_app
from webapp.extensions import db
from webapp.services.api_keys import create_key
from webapp.services.tenants import create_tenant
from webapp.tenancy import tenant_scope

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ_SCHEMA = "fuzz"
FUZZ_REDIS_DB = 9


@pytest.fixture
def fuzz_app(tmp_path):
    """An app on a database and a Redis database of its own, refusing private destinations."""
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{FUZZ_REDIS_DB}"
    config = {"TESTING": True, "REDIS_URL": redis_url, "ALLOW_PRIVATE_DESTINATIONS": False,
              "INGEST_RATE_LIMIT": "1000000 per minute"}
    if os.environ["DATABASE_URL"].startswith("sqlite"):
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'fuzz.sqlite3'}"
    else:  # a schema of its own on the same PostgreSQL server
        main = create_app({"TESTING": True})
        with main.app_context():
            db.session.execute(text(f"DROP SCHEMA IF EXISTS {FUZZ_SCHEMA} CASCADE"))
            db.session.execute(text(f"CREATE SCHEMA {FUZZ_SCHEMA}"))
            db.session.commit()
            db.engine.dispose()
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True,
                                               "connect_args": {"options": f"-csearch_path={FUZZ_SCHEMA}"}}
    app = create_app(config)
    with app.app_context():
        flask_migrate.upgrade()
    Redis.from_url(redis_url).flushdb()
    yield app
    with app.app_context():
        db.engine.dispose()
    Redis.from_url(redis_url).flushdb()
    if "SQLALCHEMY_ENGINE_OPTIONS" in config:
        with create_app({"TESTING": True}).app_context():
            db.session.execute(text(f"DROP SCHEMA IF EXISTS {FUZZ_SCHEMA} CASCADE"))
            db.session.commit()


@pytest.fixture
def fuzz_tenant(fuzz_app):
    """A tenant with an API key, an agent, an endpoint and an event, so real ids can stand in for made-up ones."""
    with fuzz_app.app_context():
        tenant, _ = create_tenant("Fuzz", "fuzz@example.com", "correct horse battery")
        with tenant_scope(tenant.id):
            _, key = create_key("fuzz")
        db.session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    client = fuzz_app.test_client()
    agent = client.post("/api/v1/agents", json={"name": "fuzz bot"}, headers=headers).json
    endpoint = client.post("/api/v1/endpoints", json={"url": "https://example.com/hook"}, headers=headers).json
    event = client.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"]}, headers=headers).json
    delivery = client.get(f"/api/v1/events/{event['id']}", headers=headers).json["deliveries"][0]
    ids = {"agent_id": agent["id"], "endpoint_id": endpoint["id"], "event_id": event["id"],
           "delivery_id": delivery["id"]}
    return headers, ids


def test_the_api_matches_its_openapi_document(fuzz_app, fuzz_tenant):
    headers, ids = fuzz_tenant
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    calls = 0
    for operation in operations:
        takes_ids = operation.method.upper() != "DELETE" and any(p.name in ids for p in operation.path_parameters)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                nonlocal calls
                case.headers = {**(case.headers or {}), **headers}  # the key is not what is being fuzzed
                case.call_and_validate(checks=CHECKS)
                calls += 1
                body = case.body if isinstance(case.body, dict) else None
                if takes_ids or (body is not None and "agent_id" in body):
                    # The same request on real objects, past the 404s and the unknown-agent 422s.
                    case.path_parameters = {**case.path_parameters,
                                            **{name: ids[name] for name in case.path_parameters if name in ids}}
                    if body is not None and "agent_id" in body:
                        case.body = {**body, "agent_id": ids["agent_id"]}
                        if mode is GenerationMode.POSITIVE and "type" in body:
                            case.body["type"] = "message.sent"
                    case.call_and_validate(checks=CHECKS)
                    calls += 1

            fuzz()
    assert calls >= len(operations) * 2 * 5
