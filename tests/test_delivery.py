"""End to end: ingest through the API, a real worker process, a real receiver on 127.0.0.1."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import standardwebhooks
import svix.webhooks

from .helpers import delivery_of, make_agent, make_endpoint, send, wait_for_status, wait_until
from .receiver import Reply


def test_delivery_verifies_with_standardwebhooks_and_svix(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    endpoint = make_endpoint(tenant.api, receiver.url)
    event = send(tenant.api, agent["id"], conversation_id="conv-42",
                 user={"id": "u-7", "email": "a@example.com", "name": "Ada"}, data={"text": "héllo"},
                 occurred_at="2026-11-26T12:00:00Z")
    assert event["deliveries"] == 1 and event["id"].startswith("evt_")

    request = receiver.wait_for(1)[0]
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("AgentHooks/")
    assert headers["webhook-id"] == event["id"]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
    assert standardwebhooks.Webhook(endpoint["secret"]).verify(request.body, headers)
    svix.webhooks.Webhook(endpoint["secret"]).verify(request.body, headers)  # raises when it does not verify
    # Signed exactly as the contract says, independently of both libraries.
    key = base64.b64decode(endpoint["secret"].removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body
    assert headers["webhook-signature"] == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

    assert json.loads(request.body) == {
        "id": event["id"], "type": "message.received", "timestamp": "2026-11-26T12:00:00Z",
        "agent": {"id": agent["id"], "name": "Support bot"}, "conversation_id": "conv-42",
        "user": {"id": "u-7", "email": "a@example.com", "name": "Ada"}, "data": {"text": "héllo"},
    }
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, event["id"])["id"], "succeeded")
    assert delivery["attempt_count"] == 1
    attempt = delivery["attempts"][0]
    assert attempt["trigger"] == "scheduled" and attempt["response_status"] == 200
    assert attempt["error"] is None and attempt["response_body"] == "ok" and attempt["duration_ms"] >= 0


def test_fan_out_filters_by_event_type_and_agent(tenant, receiver, worker):
    bot, other = make_agent(tenant.api, "bot"), make_agent(tenant.api, "other")
    base = receiver.url
    make_endpoint(tenant.api, base + "?all")
    make_endpoint(tenant.api, base + "?sent-only", event_types=["message.sent"])
    make_endpoint(tenant.api, base + "?bot-only", agent_ids=[bot["id"]])
    disabled = make_endpoint(tenant.api, base + "?disabled")
    assert tenant.api.patch(f"/api/v1/endpoints/{disabled['id']}", json={"enabled": False}).json["enabled"] is False

    assert send(tenant.api, bot["id"], "message.received")["deliveries"] == 2  # all, bot-only
    assert send(tenant.api, other["id"], "message.sent")["deliveries"] == 2  # all, sent-only
    assert send(tenant.api, other["id"], "tool.executed")["deliveries"] == 1  # all
    received = receiver.wait_for(5)
    time.sleep(1)  # nothing more arrives
    assert sorted(r.path.split("?")[1] for r in receiver.requests) == ["all", "all", "all", "bot-only", "sent-only"]
    assert len(received) == 5


def test_failures_are_retried_with_the_same_webhook_id_until_success(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.reply(Reply(500, b"boom"), Reply(500, b"boom again"))
    event = send(tenant.api, agent["id"])
    requests = receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in requests} == {event["id"]}
    assert len({r.body for r in requests}) == 1
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, event["id"])["id"], "succeeded")
    assert [a["response_status"] for a in delivery["attempts"]] == [500, 500, 200]
    assert delivery["attempts"][0]["response_body"] == "boom"
    assert delivery["attempt_count"] == 3 and delivery["next_attempt_at"] is None


def test_always_failing_receiver_ends_failed_after_the_schedule(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.default = Reply(503, b"unavailable")
    event = send(tenant.api, agent["id"])
    delivery_id = delivery_of(tenant.api, event["id"])["id"]
    retrying = wait_for_status(tenant.api, delivery_id, "retrying")
    assert retrying["next_attempt_at"] is not None
    delivery = wait_for_status(tenant.api, delivery_id, "failed")
    # Three delays in the schedule: one first attempt and three retries.
    assert delivery["attempt_count"] == 4 and len(receiver.requests) == 4
    assert delivery["next_attempt_at"] is None
    time.sleep(1.5)
    assert len(receiver.requests) == 4


def test_redirect_is_a_failure_and_is_not_followed(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.default = Reply(302, b"", {"Location": receiver.url + "?followed"})
    event = send(tenant.api, agent["id"])
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, event["id"])["id"], "failed")
    assert {a["response_status"] for a in delivery["attempts"]} == {302}
    assert {a["error"] for a in delivery["attempts"]} == {"redirect not followed"}
    assert not any("followed" in r.path for r in receiver.requests)


def test_slow_receiver_is_recorded_as_timeout(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.reply(Reply(200, delay=3.5))  # DELIVERY_TIMEOUT is 2 s in the tests
    event = send(tenant.api, agent["id"])
    delivery_id = delivery_of(tenant.api, event["id"])["id"]
    delivery = wait_for_status(tenant.api, delivery_id, "succeeded", timeout=30)
    first = delivery["attempts"][0]
    assert first["error"] == "timeout" and first["response_status"] is None
    assert 1900 <= first["duration_ms"] < 3400
    assert delivery["attempts"][1]["response_status"] == 200


def test_connection_refused_is_recorded(tenant, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, "http://127.0.0.1:9/nothing-listens-here")
    event = send(tenant.api, agent["id"])
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, event["id"])["id"], "failed")
    assert {a["error"] for a in delivery["attempts"]} == {"connection refused"}


def test_gone_disables_the_endpoint_at_once(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    endpoint = make_endpoint(tenant.api, receiver.url)
    receiver.default = Reply(410, b"gone")
    event = send(tenant.api, agent["id"])
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, event["id"])["id"], "failed")
    assert delivery["attempt_count"] == 1
    shown = tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}").json
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    assert send(tenant.api, agent["id"])["deliveries"] == 0


def test_retry_after_is_honoured(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.reply(Reply(429, b"slow down", {"Retry-After": "1"}))
    send(tenant.api, agent["id"])
    first, second = receiver.wait_for(2)
    # The schedule says 0.5 s ± 20 %; Retry-After asks for 1 s (within twice the scheduled wait).
    assert second.at - first.at >= 0.95


def test_manual_resend_adds_a_manual_attempt(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    event = send(tenant.api, agent["id"])
    delivery_id = delivery_of(tenant.api, event["id"])["id"]
    wait_for_status(tenant.api, delivery_id, "succeeded")
    response = tenant.api.post(f"/api/v1/deliveries/{delivery_id}/resend")
    assert response.status_code == 202
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event["id"]
    assert first.body == second.body
    delivery = wait_until(lambda: (d := tenant.api.get(f"/api/v1/deliveries/{delivery_id}").json)["attempt_count"] == 2 and d)
    assert [a["trigger"] for a in delivery["attempts"]] == ["scheduled", "manual"]
    assert delivery["status"] == "succeeded"


def test_a_resend_asked_for_while_the_attempt_is_in_flight_follows_it(tenant, receiver, worker):
    """The user presses Resend while the scheduled attempt is still waiting for the receiver: that attempt is
    recorded, and the resend follows it as a manual attempt (not lost, not merged into it)."""
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.reply(Reply(200, delay=1.0))  # slower than a drain waits for: its lane records the attempt
    event = send(tenant.api, agent["id"])
    delivery_id = delivery_of(tenant.api, event["id"])["id"]
    receiver.wait_for(1)
    assert tenant.api.post(f"/api/v1/deliveries/{delivery_id}/resend").status_code == 202
    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.95  # the resend went after the first attempt had ended
    delivery = wait_until(lambda: (d := tenant.api.get(f"/api/v1/deliveries/{delivery_id}").json)["attempt_count"] == 2 and d)
    assert [a["trigger"] for a in delivery["attempts"]] == ["scheduled", "manual"]
    assert delivery["status"] == "succeeded"
    time.sleep(1)
    assert len(receiver.requests) == 2


def test_deliveries_beyond_a_slow_endpoints_lane_go_out_as_soon_as_it_has_room(tenant, receiver, worker):
    """Every attempt outlasts the drain's patience, so the endpoint is slow: a lane's width of attempts is in
    flight and each is recorded by its lane when it ends. The rest wait for room in the lane, and go out
    as soon as there is some (the lane wakes a drain), not when the sweep next finds them (10 s and more)."""
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.default = Reply(200, delay=0.8)  # slower than a drain waits for, within DELIVERY_TIMEOUT
    started = time.time()
    events = [send(tenant.api, agent["id"])["id"] for _ in range(20)]  # a lane is 8 wide: three rounds
    received = receiver.wait_for(20, timeout=60)
    assert {r.headers["webhook-id"] for r in received} == set(events)
    assert max(r.at for r in received) - started < 6


def test_manual_resend_of_a_failed_delivery_that_now_succeeds(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.reply(*[Reply(500)] * 4)
    event = send(tenant.api, agent["id"])
    delivery_id = delivery_of(tenant.api, event["id"])["id"]
    wait_for_status(tenant.api, delivery_id, "failed")
    tenant.api.post(f"/api/v1/deliveries/{delivery_id}/resend")
    delivery = wait_for_status(tenant.api, delivery_id, "succeeded")
    assert delivery["attempt_count"] == 5 and delivery["attempts"][-1]["trigger"] == "manual"


def test_rotated_secret_signs_with_both_secrets(tenant, receiver, worker):
    agent = make_agent(tenant.api)
    endpoint = make_endpoint(tenant.api, receiver.url)
    old_secret = endpoint["secret"]
    rotated = tenant.api.post(f"/api/v1/endpoints/{endpoint['id']}/secret/rotate")
    assert rotated.status_code == 200
    new_secret = rotated.json["secret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    assert tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}/secret").json["secret"] == new_secret
    send(tenant.api, agent["id"])
    request = receiver.wait_for(1)[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret):
        assert standardwebhooks.Webhook(secret).verify(request.body, request.headers)
        svix.webhooks.Webhook(secret).verify(request.body, request.headers)  # raises when it does not verify


def test_test_event_goes_to_that_endpoint_alone(tenant, receiver, worker):
    make_agent(tenant.api)
    target = make_endpoint(tenant.api, receiver.url + "?target", event_types=["message.sent"])
    make_endpoint(tenant.api, receiver.url + "?other")
    response = tenant.api.post(f"/api/v1/endpoints/{target['id']}/test")
    assert response.status_code == 202
    assert response.json["type"] == "webhook.test" and response.json["deliveries"] == 1
    request = receiver.wait_for(1)[0]
    time.sleep(1)
    assert len(receiver.requests) == 1 and request.path.endswith("?target")
    body = json.loads(request.body)
    assert body["type"] == "webhook.test" and body["id"] == response.json["id"]
    assert standardwebhooks.Webhook(target["secret"]).verify(request.body, request.headers)


@pytest.mark.parametrize("status", [200, 204, 299])
def test_any_2xx_is_success(tenant, receiver, worker, status):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    receiver.default = Reply(status, b"")
    event = send(tenant.api, agent["id"])
    wait_for_status(tenant.api, delivery_of(tenant.api, event["id"])["id"], "succeeded")


def test_event_accepted_while_redis_is_down_is_delivered_once_it_is_back(app, tenant, receiver, worker):
    """The contract: Redis being down does not change ingest's answer, and nothing is lost."""
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    # This web process's Redis is unreachable (a closed port); the worker's is fine, as after an outage.
    app.config["REDIS_URL"] = "redis://127.0.0.1:9/0"
    app.extensions.pop("agenthooks_redis", None)
    accepted = send(tenant.api, agent["id"])
    assert accepted["deliveries"] == 1
    # The worker's periodic sweep finds the unqueued delivery in the database.
    request = receiver.wait_for(1, timeout=30)[0]
    assert request.headers["webhook-id"] == accepted["id"]
    wait_for_status(tenant.api, delivery_of(tenant.api, accepted["id"])["id"], "succeeded")


def test_a_delivery_that_cannot_be_signed_does_not_hold_up_the_rest_of_its_batch(app, tenant, receiver, worker):
    """An endpoint whose stored secret no key decrypts (ENCRYPTION_KEY changed without ENCRYPTION_KEYS_OLD)
    cannot be signed for; the other endpoint's deliveries of the same events still go out at once."""
    from sqlalchemy import update

    from webapp.extensions import db
    from webapp.models import Endpoint
    from webapp.tenancy import tenant_scope

    agent = make_agent(tenant.api)
    broken = make_endpoint(tenant.api, receiver.url + "?broken")
    make_endpoint(tenant.api, receiver.url + "?fine")
    with app.app_context(), tenant_scope(tenant.id):
        db.session.execute(update(Endpoint).where(Endpoint.id == broken["id"])
                           .values(secret_encrypted="gAAAAA-not-a-token-any-key-opens"))
        db.session.commit()
    events = [send(tenant.api, agent["id"])["id"] for _ in range(5)]
    received = receiver.wait_for(5)
    assert sorted(r.headers["webhook-id"] for r in received) == sorted(events)
    time.sleep(1)
    assert {r.path.rsplit("?", 1)[1] for r in receiver.requests} == {"fine"}


def test_a_delivery_whose_endpoint_was_disabled_before_its_claim_fails_unsent_and_a_resend_still_goes(
        app, tenant, receiver, stack):
    """An endpoint disabled after its delivery was stored but before a worker claimed it (disable() leaves a
    delivery that a worker holds alone): the claim settles it as failed, "endpoint disabled", without sending
    it, and the batch's other delivery goes out. A resend asked for by hand is still sent."""
    from sqlalchemy import select, update

    from webapp.extensions import db
    from webapp.models import Delivery, Endpoint
    from webapp.tenancy import tenant_scope

    agent = make_agent(tenant.api)
    off = make_endpoint(tenant.api, receiver.url + "?off")
    make_endpoint(tenant.api, receiver.url + "?on")
    event = send(tenant.api, agent["id"])  # no worker yet: both deliveries wait
    with app.app_context(), tenant_scope(tenant.id):
        db.session.execute(update(Endpoint).where(Endpoint.id == off["id"]).values(enabled=False))
        db.session.commit()
    stored = tenant.api.get(f"/api/v1/events/{event['id']}").json["deliveries"]
    deliveries = {d["endpoint_id"]: d["id"] for d in stored}
    stack.start_worker()

    assert receiver.wait_for(1)[0].path.endswith("?on")
    failed = wait_for_status(tenant.api, deliveries[off["id"]], "failed")
    assert failed["attempt_count"] == 0 and failed["attempts"] == [] and failed["next_attempt_at"] is None
    with app.app_context(), tenant_scope(tenant.id):
        row = db.session.scalars(select(Delivery).where(Delivery.id == deliveries[off["id"]])).one()
        assert row.last_error == "endpoint disabled" and row.lease_until is None
    time.sleep(0.5)
    assert len(receiver.requests) == 1

    assert tenant.api.post(f"/api/v1/deliveries/{deliveries[off['id']]}/resend").status_code == 202
    resent = receiver.wait_for(2)[1]
    assert resent.path.endswith("?off") and resent.headers["webhook-id"] == event["id"]
    delivered = wait_for_status(tenant.api, deliveries[off["id"]], "succeeded")
    assert [a["trigger"] for a in delivered["attempts"]] == ["manual"]


def test_an_endpoint_deleted_while_its_batch_is_out_leaves_the_rest_of_the_batch_delivered_once(
        app, tenant, receiver, worker):
    """The endpoint goes (and its deliveries with it) while a batch holding its attempts is out, and its
    delete is still uncommitted when the batch's outcomes come back: the batch's other deliveries are
    recorded as delivered, each sent once, and the worker goes on."""
    from webapp.extensions import db
    from webapp.services.endpoints import delete_endpoint
    from webapp.tenancy import tenant_scope

    agent = make_agent(tenant.api)
    doomed = make_endpoint(tenant.api, receiver.url + "?doomed")
    make_endpoint(tenant.api, receiver.url + "?kept")
    receiver.default = Reply(200, delay=0.3)  # within a drain's patience: the batch is recorded as one
    events = [send(tenant.api, agent["id"])["id"] for _ in range(3)]
    receiver.wait_for(1)
    with app.app_context(), tenant_scope(tenant.id):
        delete_endpoint(doomed["id"])  # the cascade holds the rows of its deliveries until the commit
        time.sleep(1.5)  # while the attempts come back and their outcomes are recorded
        db.session.commit()
    for event_id in events:
        (kept,) = tenant.api.get(f"/api/v1/events/{event_id}").json["deliveries"]
        delivered = wait_for_status(tenant.api, kept["id"], "succeeded", timeout=8)
        assert delivered["attempt_count"] == 1
    events.append(send(tenant.api, agent["id"])["id"])  # the worker goes on

    def kept_requests():
        return [r.headers["webhook-id"] for r in receiver.requests if r.path.endswith("?kept")]
    wait_until(lambda: len(kept_requests()) >= len(events), message="the next event to be delivered")
    time.sleep(1)
    assert sorted(kept_requests()) == sorted(events)


def test_a_drain_with_nothing_to_do_gives_way_to_other_jobs_only(app, make_tenant, stack):
    """A drain whose claim found nothing claims again for a moment (cheaper than a new job for the next
    event) unless another job waits for its worker: its own tenant's next drain does not count; another
    tenant's drain does; and when Redis cannot say, it gives way."""
    from webapp.queue import others_waiting, wake_drain

    mine, other = make_tenant("Mine"), make_tenant("Other")
    with app.app_context():
        assert not others_waiting(mine.id)
        assert wake_drain(mine.id)
        assert not others_waiting(mine.id)
        assert wake_drain(other.id)
        assert others_waiting(mine.id)
        stack.stop_redis()
        assert others_waiting(mine.id)


def test_a_claim_leaves_the_log_alone_and_updates_the_row_in_place(app, tenant, receiver, stack):
    """A worker's claim writes its lease and nothing that the log shows: the delivery's updated_at (the live
    log's watermark) keeps its value, so the log has nothing new to send for it. On PostgreSQL the row is
    updated in place (a HOT update, which adds no entry to any of the table's indexes), in the room that
    migration 0007 leaves on each page."""
    from sqlalchemy import select, text

    from jobs.drain import _claim_batch
    from webapp.extensions import db
    from webapp.models import Delivery
    from webapp.services.deliveries import changed_since
    from webapp.tenancy import tenant_scope

    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    event = send(tenant.api, agent["id"])  # no worker: the delivery waits for the claim below
    with app.app_context(), tenant_scope(tenant.id):
        stored = db.session.scalars(select(Delivery).where(Delivery.event_id == event["id"])).one()
        delivery_id, stored_at = stored.id, stored.updated_at
        db.session.commit()

        assert [row.id for row in _claim_batch(tenant.id)] == [delivery_id]
        if db.engine.dialect.name == "postgresql":
            in_place = db.session.scalar(text(
                "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'deliveries'"))
            assert in_place == 1
            # On a page already full of rows this needs the room the table keeps free.
            options = db.session.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'"))
            assert "fillfactor=70" in options
        db.session.commit()

        claimed = db.session.get(Delivery, delivery_id, populate_existing=True)
        assert claimed.lease_until is not None and claimed.status == "pending"
        assert claimed.updated_at == stored_at and changed_since(stored_at) == []


def test_a_claim_reads_its_batch_not_the_tenants_whole_history(app, tenant, receiver, stack):
    """A claim looks up the rows it chose by primary key, so what it reads does not grow with every delivery the
    tenant ever had. On PostgreSQL its UPDATE once repeated the tenant's condition, and a plan made while the
    table was small (cached on the connection, or with no statistics: autovacuum off) then walked the tenant's
    every row for each claim: 3-14 ms a claim at 3,200 rows. The plan is forced generic here, as a connection
    that has run the claim a few times uses it. (``stack``: the shared worker is paused; nothing delivers.)"""
    from sqlalchemy import text, update

    from jobs.drain import _claim_batch
    from webapp.extensions import db
    from webapp.models import Delivery
    from webapp.tenancy import tenant_scope

    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    for n in range(200):
        send(tenant.api, agent["id"], data={"n": n})
    with app.app_context(), tenant_scope(tenant.id):
        db.session.execute(update(Delivery).values(status="succeeded", next_attempt_at=None))  # the history
        db.session.commit()
    due = send(tenant.api, agent["id"], data={"n": "due"})
    postgresql = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")

    def rows_read() -> int:
        return db.session.scalar(text("SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables "
                                      "WHERE relname = 'deliveries'"))

    with app.app_context(), tenant_scope(tenant.id):
        if postgresql:
            db.session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
            before = rows_read()
        assert [row.event_id for row in _claim_batch(tenant.id)] == [due["id"]]
        if postgresql:
            # The due row, found in the due index, then by its key; not the 200 others.
            assert rows_read() - before < 20
        db.session.rollback()


def test_a_claim_that_ranks_a_slow_endpoints_rows_is_not_compiled_by_postgresql(app, tenant, receiver, stack,
                                                                                 monkeypatch):
    """A claim that keeps a slow endpoint to a lane's width ranks its rows, which takes a sort; the claim's
    settings price a sort at 10^10 on PostgreSQL (enable_sort off, so that the choice walks its index), far
    above jit_above_cost. PostgreSQL then compiled every such claim with LLVM, 120-180 ms for 0.6 ms of work,
    and a tenant with one slow endpoint had its other deliveries at a quarter of their rate. The claim's
    transaction has JIT off: its plan, explained in that transaction, has none."""
    import json as json_module

    from sqlalchemy import event

    from jobs import drain
    from jobs.lanes import Lanes
    from webapp.extensions import db
    from webapp.tenancy import tenant_scope

    agent = make_agent(tenant.api)
    slow = make_endpoint(tenant.api, receiver.url)
    for n in range(3):
        send(tenant.api, agent["id"], data={"n": n})
    lanes = Lanes()
    lanes.mark_slow(slow["id"])
    monkeypatch.setattr(drain, "lanes", lanes)  # this worker has seen the endpoint answer slowly
    claims = []

    def keep_the_claim(conn, cursor, statement, parameters, context, executemany):
        if "WITH chosen" in statement:
            claims.append((statement, parameters))

    with app.app_context(), tenant_scope(tenant.id):
        event.listen(db.engine, "before_cursor_execute", keep_the_claim)
        try:
            assert len(drain._claim_batch(tenant.id)) == 3  # the ranking claim: they are within a lane's width
        finally:
            event.remove(db.engine, "before_cursor_execute", keep_the_claim)
        assert "row_number" in claims[0][0]
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
            # Explained as it ran, in its transaction (with the claim's settings).
            plan = db.session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + claims[0][0],
                                                           claims[0][1]).scalar()
            assert "Sort" in json_module.dumps(plan)  # the window's sort, priced at 10^10
            assert "JIT" not in plan[0]
        db.session.rollback()


def test_a_claim_takes_a_batch_earliest_first_and_two_workers_never_claim_the_same_delivery(app, tenant, receiver,
                                                                                            stack):
    """One statement chooses and leases a drain's batch: exactly the batch, the earliest due first. Another
    worker claiming meanwhile gets the next ones (PostgreSQL: while the first claim is still uncommitted,
    it skips the rows locked by it; SQLite: after it, as it has one writer), and once every due delivery
    is held, a claim finds none. (``stack``: the session's shared worker is paused, or it would deliver them.)"""
    import threading

    from sqlalchemy import select

    from jobs.drain import _claim_batch
    from webapp.extensions import db
    from webapp.models import Delivery
    from webapp.tenancy import tenant_scope

    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    for n in range(25):  # no worker: the deliveries wait for the claims below
        send(tenant.api, agent["id"], data={"n": n})
    with app.app_context(), tenant_scope(tenant.id):
        due = list(db.session.scalars(select(Delivery.id).order_by(Delivery.next_attempt_at, Delivery.id)))
        db.session.commit()
    concurrent = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    first, claimed_first, release, held_too_long = [], threading.Event(), threading.Event(), []

    def first_worker():
        with app.app_context(), tenant_scope(tenant.id):
            try:
                first.extend(row.id for row in _claim_batch(tenant.id, 10))
                if concurrent:
                    claimed_first.set()
                    # Its transaction stays open while the other worker claims (which must not wait for it).
                    held_too_long.append(not release.wait(30))
                db.session.commit()
            finally:
                claimed_first.set()
                db.session.remove()

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert claimed_first.wait(30)
    with app.app_context(), tenant_scope(tenant.id):
        try:
            second = [row.id for row in _claim_batch(tenant.id, 10)]
            db.session.commit()
        finally:
            release.set()
            thread.join(30)
        third = [row.id for row in _claim_batch(tenant.id, 10)]
        db.session.commit()
        fourth = _claim_batch(tenant.id, 10)
        db.session.commit()
    assert held_too_long in ([], [False])
    assert first == due[:10]
    assert second == due[10:20]
    assert third == due[20:]
    assert fourth == []
