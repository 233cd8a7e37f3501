"""The operator CLI and the migrations, run as an operator runs them."""
from __future__ import annotations

import json
import os
from collections import defaultdict
import subprocess
import sys
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select

from webapp import ROOT
from webapp.extensions import db
from webapp.ids import new_id, time_of
from webapp.models import AgentEventTally, Attempt, AttemptTally, AttemptTotal, Delivery, DeliveryTally, Event, utcnow
from webapp.services import tallies


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


@pytest.fixture
def scratch_database(app, tmp_path):
    """An empty database of the suite's kind for a migration to run in: a SQLite file, or on PostgreSQL a
    schema of its own in the suite's database (the suite's tables stay out of its search path)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS scratch_migration CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA scratch_migration")
    yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3Dscratch_migration"
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA scratch_migration CASCADE")
    engine.dispose()


def _store_endpoint(run, endpoint: str, agent_ids: str, at: str) -> None:
    """An endpoint of tenant ten_1 with the agent_ids given as JSON text, in plain SQL that every revision
    accepts; ``run`` is a connection's exec_driver_sql."""
    run("INSERT INTO endpoints (id, tenant_id, url, description, event_types, agent_ids, enabled, "
        f"secret_encrypted, created_at, updated_at) VALUES ('{endpoint}', 'ten_1', 'https://example.com', '', "
        f"'[]', '{agent_ids}', true, 'x', '{at}', '{at}')")


def _rows(engine, table, columns: tuple[str, ...]) -> set[tuple]:
    """The rows of ``table``, as tuples of ``columns``."""
    with engine.connect() as connection:
        return {tuple(row) for row in connection.execute(select(*(table.c[name] for name in columns)))}


def _store_two_endpoints_deliveries(connection, at: str):
    """Tenant ten_1 with endpoints ep_a and ep_b and a delivery to each (dlv_a, dlv_b) of one event, in plain
    SQL that every revision since 0007 accepts; returns the connection's exec_driver_sql for more."""
    run = connection.exec_driver_sql
    run(f"INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'Acme', '{at}')")
    for endpoint in ("ep_a", "ep_b"):
        _store_endpoint(run, endpoint, "[]", at)
    run(f"INSERT INTO events (id, tenant_id, type, occurred_at, received_at, body) "
        f"VALUES ('evt_1', 'ten_1', 'message.sent', '{at}', '{at}', '{{}}')")
    for delivery, endpoint in (("dlv_a", "ep_a"), ("dlv_b", "ep_b")):
        run("INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, attempt_count, "
            f"manual_pending, created_at, updated_at) VALUES ('{delivery}', 'ten_1', 'evt_1', '{endpoint}', "
            f"'message.sent', 'succeeded', 1, false, '{at}', '{at}')")
    return run


def test_migration_0008_gives_every_existing_attempt_its_deliverys_endpoint(scratch_database):
    """Attempts stored before 0008 keep counting in their endpoint's health: each gets its delivery's endpoint."""
    assert (result := flask("db", "upgrade", "0007", env={"DATABASE_URL": scratch_database})).returncode == 0, \
        result.stderr
    engine = create_engine(scratch_database)
    at = "2026-11-29 10:00:00"
    with engine.begin() as connection:
        run = _store_two_endpoints_deliveries(connection, at)
        for attempt, delivery in (("att_1", "dlv_a"), ("att_2", "dlv_a"), ("att_3", "dlv_b")):
            run("INSERT INTO attempts (id, tenant_id, delivery_id, trigger, started_at, duration_ms, request_headers) "
                f"VALUES ('{attempt}', 'ten_1', '{delivery}', 'scheduled', '{at}', 12, '{{}}')")

    assert (result := flask("db", "upgrade", env={"DATABASE_URL": scratch_database})).returncode == 0, result.stderr
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT id, endpoint_id FROM attempts ORDER BY id").all()
    assert [tuple(row) for row in rows] == [("att_1", "ep_a"), ("att_2", "ep_a"), ("att_3", "ep_b")]
    inspector = inspect(engine)
    assert {"ix_attempts_tenant_endpoint_id"} == {index["name"] for index in inspector.get_indexes("attempts")
                                                  if "tenant_id" in index["column_names"]}
    assert not next(c for c in inspector.get_columns("attempts") if c["name"] == "endpoint_id")["nullable"]
    assert _schema_drift(engine) == []
    if engine.dialect.name == "postgresql":
        # A worker still running the code before 0008 (PostgreSQL deployments replace processes after the
        # release phase) stores an attempt without the endpoint: it is filled in, not refused.
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO attempts (id, tenant_id, delivery_id, trigger, started_at, duration_ms, request_headers) "
                f"VALUES ('att_4', 'ten_1', 'dlv_b', 'scheduled', '{at}', 12, '{{}}')")
            assert connection.exec_driver_sql("SELECT endpoint_id FROM attempts WHERE id = 'att_4'").scalar() == "ep_b"
    assert flask("db", "downgrade", "0007", env={"DATABASE_URL": scratch_database}).returncode == 0
    engine.dispose()


def test_migration_0009_tallies_the_last_48_hours_of_attempts_as_the_worker_would(scratch_database):
    """Endpoint health reads tallies from 0009 on: the attempts stored before it are counted by the backfill
    (its SQL rounding and success rule against tallies.py's own), and the worker's next record adds to them."""
    assert (result := flask("db", "upgrade", "0008", env={"DATABASE_URL": scratch_database})).returncode == 0, \
        result.stderr
    engine = create_engine(scratch_database)
    now = utcnow()
    with engine.begin() as connection:
        _store_two_endpoints_deliveries(connection, "2026-11-29 10:00:00")
        # Durations that round (183, 1,001, 99,999) and that do not; a 2xx, a 503, a 302 and a timeout; attempts
        # an hour apart and in the same hour; one older than the 48 hours that retention keeps of tallies.
        attempts = [dict(endpoint_id=endpoint, started_at=now - timedelta(hours=hours), duration_ms=duration,
                         response_status=status, error=None if status else "timed out")
                    for endpoint, hours, duration, status in (
                        ("ep_a", 0, 42, 200), ("ep_a", 0, 42, 503), ("ep_a", 0, 183, 204), ("ep_a", 1, 1001, 200),
                        ("ep_a", 47, 7, 302), ("ep_b", 0, 99999, None), ("ep_b", 0, 186, 200), ("ep_b", 50, 5, 200))]
        connection.execute(insert(Attempt.__table__), [
            dict(attempt, id=f"att_{n}", tenant_id="ten_1", delivery_id="dlv_" + attempt["endpoint_id"][-1],
                 trigger="scheduled", request_headers={}) for n, attempt in enumerate(attempts)])

    assert (result := flask("db", "upgrade", env={"DATABASE_URL": scratch_database})).returncode == 0, result.stderr
    table = AttemptTally.__table__
    columns = ("tenant_id", "endpoint_id", "hour", "up_to_ms", "attempts", "successes")

    def stored() -> set[tuple]:
        return _rows(engine, table, columns)

    expected = {tuple(row[name] for name in columns) for row in tallies.tally_rows("ten_1", attempts[:-1])}
    assert stored() == expected and len(expected) == 6  # 42 ms twice in one tally; 183 and 186 both up to 190
    assert _schema_drift(engine) == []
    # The worker's next attempt in the same hour, endpoint and rounding adds to the backfilled tally.
    with engine.begin() as connection:
        tallies.add(connection, "ten_1", [attempts[0]])
    assert stored() == expected - {("ten_1", "ep_a", tallies.hour_of(now), 42, 2, 1)} | {
        ("ten_1", "ep_a", tallies.hour_of(now), 42, 3, 2)}
    assert flask("db", "downgrade", "0008", env={"DATABASE_URL": scratch_database}).returncode == 0
    assert "attempt_tallies" not in inspect(engine).get_table_names()
    engine.dispose()


def test_migration_0014_tallies_the_last_48_hours_of_deliveries_as_the_worker_would(scratch_database):
    """The chart reads deliveries past pending from tallies from 0014 on: those stored before it are counted by
    the backfill, by the hour of their ids and their status, as the worker counts their changes."""
    assert (result := flask("db", "upgrade", "0013", env={"DATABASE_URL": scratch_database})).returncode == 0, \
        result.stderr
    engine = create_engine(scratch_database)
    now = utcnow()
    deliveries = [dict(id=new_id("dlv", now - timedelta(hours=hours, minutes=minutes)), endpoint_id=endpoint,
                       status=status)
                  for endpoint, hours, minutes, status in (
                      ("ep_a", 0, 0, "succeeded"), ("ep_a", 0, 0, "succeeded"), ("ep_a", 0, 0, "failed"),
                      ("ep_a", 0, 0, "pending"), ("ep_b", 0, 0, "retrying"), ("ep_b", 1, 0, "succeeded"),
                      ("ep_b", 47, 59, "failed"), ("ep_a", 49, 0, "succeeded"))]
    with engine.begin() as connection:
        _store_two_endpoints_deliveries(connection, "2026-11-29 10:00:00")
        connection.execute(insert(Delivery.__table__), [
            dict(delivery, tenant_id="ten_1", event_id="evt_1", event_type="message.sent", attempt_count=1,
                 manual_pending=False, created_at=now, updated_at=now) for delivery in deliveries])

    assert (result := flask("db", "upgrade", env={"DATABASE_URL": scratch_database})).returncode == 0, result.stderr
    table = DeliveryTally.__table__
    columns = ("tenant_id", "endpoint_id", "hour", "status", "deliveries")

    def stored() -> set[tuple]:
        return _rows(engine, table, columns)

    settled = [tallies.Change(d["id"], d["endpoint_id"], None, d["status"]) for d in deliveries]
    expected = {tuple(row[name] for name in columns) for row in tallies.delivery_rows("ten_1", settled)}
    assert stored() == expected and len(expected) == 5  # two succeeded in one; none pending; 49 hours ago is past KEPT
    assert _schema_drift(engine) == []
    # The worker's next delivery of the same endpoint, hour and status adds to the backfilled tally.
    with engine.begin() as connection:
        tallies.add_deliveries(connection, tallies.delivery_rows("ten_1", settled[:1]))
    hour = tallies.hour_of(time_of(deliveries[0]["id"]))
    assert stored() == expected - {("ten_1", "ep_a", hour, "succeeded", 2)} | {("ten_1", "ep_a", hour, "succeeded", 3)}
    assert flask("db", "downgrade", "0013", env={"DATABASE_URL": scratch_database}).returncode == 0
    assert "delivery_tallies" not in inspect(engine).get_table_names()


def test_migration_0015_totals_each_endpoints_hours_from_their_tallies(scratch_database):
    """Attempt counts and success rates read each endpoint's hourly totals from 0015 on: the backfill sums the
    tallies kept before it by endpoint and hour, as tallies.add totals new attempts, and the next add adds to them."""
    assert (result := flask("db", "upgrade", "0014", env={"DATABASE_URL": scratch_database})).returncode == 0, \
        result.stderr
    engine = create_engine(scratch_database)
    now = utcnow()
    attempts = [dict(endpoint_id=endpoint, started_at=now - timedelta(hours=hours), duration_ms=duration,
                     response_status=status, error=None if status else "timed out")
                for endpoint, hours, duration, status in (
                    ("ep_a", 0, 42, 200), ("ep_a", 0, 42, 503), ("ep_a", 0, 183, 204), ("ep_a", 1, 1001, 200),
                    ("ep_b", 0, 99999, None), ("ep_b", 0, 186, 200), ("ep_b", 47, 5, 200))]
    rows = tallies.tally_rows("ten_1", attempts)
    with engine.begin() as connection:
        _store_two_endpoints_deliveries(connection, "2026-11-29 10:00:00")
        connection.execute(insert(AttemptTally.__table__), rows)

    assert (result := flask("db", "upgrade", env={"DATABASE_URL": scratch_database})).returncode == 0, result.stderr
    table = AttemptTotal.__table__
    columns = ("tenant_id", "endpoint_id", "hour", "attempts", "successes")

    def stored() -> set[tuple]:
        return _rows(engine, table, columns)

    this_hour = tallies.hour_of(now)
    expected = {("ten_1", "ep_a", this_hour, 3, 2), ("ten_1", "ep_a", this_hour - timedelta(hours=1), 1, 1),
                ("ten_1", "ep_b", this_hour, 2, 1), ("ten_1", "ep_b", tallies.hour_of(now - timedelta(hours=47)), 1, 1)}
    assert stored() == expected == {tuple(row[name] for name in columns) for row in tallies.total_rows(rows)}
    assert _schema_drift(engine) == []
    with engine.begin() as connection:  # the worker's next attempt of ep_a this hour
        tallies.add(connection, "ten_1", [attempts[0]])
    assert stored() == expected - {("ten_1", "ep_a", this_hour, 3, 2)} | {("ten_1", "ep_a", this_hour, 4, 3)}
    assert flask("db", "downgrade", "0014", env={"DATABASE_URL": scratch_database}).returncode == 0
    assert "attempt_totals" not in inspect(engine).get_table_names()
    engine.dispose()


def test_migration_0010_indexes_every_endpoints_agents_and_keeps_them_on_any_write(scratch_database):
    """Ingest finds endpoints by agent from 0010 on: the endpoints before it are indexed by the backfill, and
    the database's triggers index every later write of agent_ids, in plain SQL as by the app."""
    assert (result := flask("db", "upgrade", "0009", env={"DATABASE_URL": scratch_database})).returncode == 0, \
        result.stderr
    engine = create_engine(scratch_database)
    at = "2026-11-29 10:00:00"
    with engine.begin() as connection:
        run = connection.exec_driver_sql
        run(f"INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'Acme', '{at}')")
        # Every agent, two named (one twice), and a JSON null, which the app's "not agent_ids" reads as every agent.
        for endpoint, agent_ids in (("ep_a", "[]"), ("ep_b", '["agt_1", "agt_2", "agt_1"]'), ("ep_c", "null")):
            _store_endpoint(run, endpoint, agent_ids, at)

    assert (result := flask("db", "upgrade", env={"DATABASE_URL": scratch_database})).returncode == 0, result.stderr

    def stored() -> set[tuple]:
        with engine.connect() as connection:
            return {tuple(row) for row in connection.exec_driver_sql(
                "SELECT tenant_id, agent_id, endpoint_id FROM endpoint_agents")}

    assert stored() == {("ten_1", "*", "ep_a"), ("ten_1", "agt_1", "ep_b"), ("ten_1", "agt_2", "ep_b"),
                        ("ten_1", "*", "ep_c")}
    assert _schema_drift(engine) == []
    with engine.begin() as connection:
        run = connection.exec_driver_sql
        _store_endpoint(run, "ep_d", '["agt_3"]', at)
        run("UPDATE endpoints SET agent_ids = '[]' WHERE id = 'ep_b'")
        run("UPDATE endpoints SET url = 'https://example.com/d' WHERE id = 'ep_d'")  # not the filter: kept
        run("DELETE FROM endpoints WHERE id = 'ep_c'")
    assert stored() == {("ten_1", "*", "ep_a"), ("ten_1", "*", "ep_b"), ("ten_1", "agt_3", "ep_d")}
    assert flask("db", "downgrade", "0009", env={"DATABASE_URL": scratch_database}).returncode == 0
    assert "endpoint_agents" not in inspect(engine).get_table_names()
    with engine.begin() as connection:  # no trigger is left behind to write to the dropped table
        _store_endpoint(connection.exec_driver_sql, "ep_e", '["agt_1"]', at)
    engine.dispose()


def test_migration_0011_tallies_every_agents_events_and_keeps_counting_every_insert(scratch_database):
    """The agent list reads tallies from 0011 on: the events before it are counted by the backfill, both its
    parts (received until a minute ago, and since), and the trigger counts every later insert, plain SQL too."""
    assert (result := flask("db", "upgrade", "0010", env={"DATABASE_URL": scratch_database})).returncode == 0, \
        result.stderr
    engine = create_engine(scratch_database)
    now = utcnow()
    three_hours_ago = tallies.hour_of(now) - timedelta(hours=3)
    received = [("ten_1", "agt_1", three_hours_ago + timedelta(minutes=10)),
                ("ten_1", "agt_1", three_hours_ago + timedelta(minutes=20)),
                ("ten_1", "agt_1", now - timedelta(seconds=90)), ("ten_1", "agt_1", now - timedelta(seconds=20)),
                ("ten_1", "agt_2", now - timedelta(days=40)), ("ten_2", "agt_3", now - timedelta(hours=1)),
                ("ten_1", None, now - timedelta(hours=2))]  # a test event: no agent, no tally

    def store(connection, events) -> None:
        connection.execute(insert(Event.__table__), [
            dict(id=f"evt_{at.timestamp()}_{agent_id}", tenant_id=tenant_id, type="message.sent", agent_id=agent_id,
                 occurred_at=at, received_at=at, body="{}") for tenant_id, agent_id, at in events])

    def expected(events) -> set[tuple]:
        hours = defaultdict(list)
        for tenant_id, agent_id, at in events:
            if agent_id:
                hours[tenant_id, agent_id, tallies.hour_of(at)].append(at)
        return {(*key, len(ats), max(ats)) for key, ats in hours.items()}

    def stored() -> set[tuple]:
        table = AgentEventTally.__table__
        with engine.connect() as connection:
            return {tuple(row) for row in connection.execute(select(
                table.c.tenant_id, table.c.agent_id, table.c.hour, table.c.events, table.c.last_received_at))}

    with engine.begin() as connection:
        for tenant in ("ten_1", "ten_2"):
            connection.exec_driver_sql(
                f"INSERT INTO tenants (id, name, created_at) VALUES ('{tenant}', 'Acme', '2026-11-29 10:00:00')")
        store(connection, received)

    assert (result := flask("db", "upgrade", env={"DATABASE_URL": scratch_database})).returncode == 0, result.stderr
    assert stored() == expected(received) and len(expected(received)) >= 4
    assert _schema_drift(engine) == []
    later = [("ten_1", "agt_1", utcnow()), ("ten_1", "agt_4", utcnow()), ("ten_1", None, utcnow())]
    with engine.begin() as connection:
        store(connection, later)
    assert stored() == expected(received + later)
    assert flask("db", "downgrade", "0010", env={"DATABASE_URL": scratch_database}).returncode == 0
    assert "agent_event_tallies" not in inspect(engine).get_table_names()
    with engine.begin() as connection:  # no trigger is left behind to write to the dropped table
        store(connection, [("ten_1", "agt_1", utcnow() + timedelta(seconds=1))])
    engine.dispose()
