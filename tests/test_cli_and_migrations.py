"""The operator CLI and the migrations, run as an operator runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from webapp import ROOT
from webapp.extensions import db


def flask(*args, env=None):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "webapp", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_tenant_create_prints_a_tenant_id_and_a_working_api_key(app, client):
    result = flask("tenant", "create", "--org", "Acme", "--email", "ops@example.com", "--password",
                   "long enough pw", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"tenant_id", "api_key"}
    assert created["tenant_id"].startswith("ten_") and created["api_key"].startswith("ahk_")
    response = client.get("/api/v1/agents", headers={"Authorization": f"Bearer {created['api_key']}"})
    assert response.status_code == 200 and response.json["data"] == []
    # The first user can log in to the dashboard with that email and password.
    from webapp.services.tenants import authenticate
    with app.app_context():
        assert authenticate("ops@example.com", "long enough pw").tenant_id == created["tenant_id"]


@pytest.mark.parametrize("args, message", [
    (["--org", "Acme", "--email", "not-an-email", "--password", "long enough pw"], "email"),
    (["--org", "Acme", "--email", "x@example.com", "--password", "short"], "Password"),
])
def test_tenant_create_refuses_bad_input_with_a_clear_message(app, args, message):
    result = flask("tenant", "create", *args, "--json")
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_tenant_create_refuses_a_taken_email(app):
    args = ["tenant", "create", "--org", "Acme", "--email", "dup@example.com", "--password", "long enough pw"]
    assert flask(*args).returncode == 0
    again = flask(*args)
    assert again.returncode != 0 and "already exists" in again.stderr


def _schema_drift(engine) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), db.metadata)


def test_migrations_build_the_models_schema_from_empty_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = flask("db", "upgrade", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    assert {"tenants", "users", "api_keys", "agents", "endpoints", "events", "deliveries", "attempts"} <= set(
        inspect(engine).get_table_names())
    assert _schema_drift(engine) == []
    assert flask("db", "downgrade", "base", env={"DATABASE_URL": url}).returncode == 0
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_the_test_database_was_migrated_without_drift(app):
    """The session database (PostgreSQL in CI) was built by the migrations; it matches the models."""
    with app.app_context():
        assert _schema_drift(db.engine) == []


def test_a_malformed_rate_limit_stops_the_app_at_start_up_with_a_clear_message(app):
    result = flask("routes", env={"INGEST_RATE_LIMIT": "lots"})
    assert result.returncode != 0
    assert "INGEST_RATE_LIMIT must be a rate such as '100 per minute', got 'lots'" in result.stderr
