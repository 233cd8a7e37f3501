"""Never lose an event: real faults (kill -9, Redis down or flushed, SIGTERM, database down) against
real worker processes, a real Redis of the test's own and real receivers."""
from __future__ import annotations

import json
import random
import signal
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import redis

from jobs.pacing import HELD
from webapp.models import utcnow
from webapp.services.events import isoformat

from .helpers import delivery_of, make_agent, make_endpoint, send, wait_for_status, wait_until
from .receiver import Receiver, Reply


def delivered_ids(receiver) -> set[str]:
    return {r.headers["webhook-id"] for r in receiver.requests}


def statuses(api, event_ids):
    return [delivery_of(api, event_id)["status"] for event_id in event_ids]


def test_kill_9_mid_delivery_loses_nothing(tenant, receiver, stack):
    receiver.default = Reply(200, delay=0.3)  # slow enough that the kill lands mid-delivery
    workers = [stack.start_worker(), stack.start_worker()]
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    events = [send(tenant.api, agent["id"])["id"] for _ in range(50)]
    receiver.wait_for(10, timeout=30)
    for worker in workers:
        worker.stop(signal.SIGKILL)
    assert len(delivered_ids(receiver)) < 50
    stack.start_worker()
    stack.start_worker()
    # Queued jobs run at once; the attempts the kill abandoned come back when their lease runs out.
    wait_until(lambda: delivered_ids(receiver) >= set(events), timeout=90, message="all 50 events to arrive")
    wait_until(lambda: set(statuses(tenant.api, events)) == {"succeeded"}, timeout=30)


def test_events_accepted_while_redis_is_down_arrive_once_it_is_back(tenant, receiver, stack):
    stack.start_worker()
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    stack.stop_redis()
    accepted = [tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"]})
                for _ in range(20)]
    assert [r.status_code for r in accepted] == [202] * 20
    assert all(r.json["deliveries"] == 1 for r in accepted)
    time.sleep(2)
    assert receiver.requests == []
    stack.start_redis()
    events = {r.json["id"] for r in accepted}
    wait_until(lambda: delivered_ids(receiver) == events, timeout=60, message="all 20 events to arrive")


def test_flushed_redis_loses_neither_queued_deliveries_nor_scheduled_retries(app, tenant, receiver, stack):
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    # Five deliveries fail once and wait for their retry in RQ's scheduled registry...
    receiver.reply(*[Reply(503)] * 5)
    stack.env["DELIVERY_RETRY_SCHEDULE"] = "4,4,4"
    worker = stack.start_worker()
    retrying = [send(tenant.api, agent["id"])["id"] for _ in range(5)]
    wait_until(lambda: statuses(tenant.api, retrying) == ["retrying"] * 5, timeout=30)
    worker.stop()
    # ...and ten more sit in the queue with no worker running.
    queued = [send(tenant.api, agent["id"])["id"] for _ in range(10)]
    connection = redis.Redis.from_url(stack.redis.url)
    assert connection.zcard("rq:scheduled:" + "deliveries-" + str(__import__("zlib").crc32(tenant.id.encode()) % 8)) == 5
    connection.flushall()
    stack.start_worker()
    wait_until(lambda: delivered_ids(receiver) == set(retrying + queued), timeout=60,
               message="every delivery to arrive after the flush")
    wait_until(lambda: set(statuses(tenant.api, retrying + queued)) == {"succeeded"}, timeout=30)


def test_retries_go_out_on_time_after_redis_comes_back(tenant, receiver, stack):
    """RQ's scheduler process dies with Redis and its worker would start another only ten minutes later;
    a retry scheduled once Redis is back still goes out on time."""
    stack.env["DELIVERY_RETRY_SCHEDULE"] = "1,1,1"
    worker = stack.start_worker()
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    stack.stop_redis()
    time.sleep(3)
    stack.start_redis()
    receiver.reply(Reply(503))
    event = send(tenant.api, agent["id"])["id"]
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, event)["id"], "succeeded", timeout=20)
    assert [a["response_status"] for a in delivery["attempts"]] == [503, 200]
    assert worker.process.poll() is None  # the same worker: it rode out the outage
    log = worker.output()
    assert log.count("scheduler skipped while Redis is unavailable") == 1  # said once, not every second
    assert "scheduler runs again: Redis is back" in log
    # Stopping, it gives back the schedulers' locks it took, so another worker can schedule at once.
    assert worker.stop() == 0
    assert redis.Redis.from_url(stack.redis.url).keys("rq:scheduler-lock:*") == []


def test_sigterm_finishes_the_attempt_in_flight(tenant, receiver, stack):
    receiver.reply(Reply(200, delay=1.5))  # within the tests' 2 s DELIVERY_TIMEOUT
    worker = stack.start_worker()
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    event = send(tenant.api, agent["id"])["id"]
    receiver.wait_for(1, timeout=20)
    started = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=25) is not None
    assert time.monotonic() - started < 25
    delivery = wait_for_status(tenant.api, delivery_of(tenant.api, event)["id"], "succeeded", timeout=5)
    assert delivery["attempt_count"] == 1


def test_ingest_answers_503_with_retry_after_while_the_database_is_down(app, tenant):
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
    from webapp import create_app
    broken = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://postgres@127.0.0.1:9/none"
                         "?connect_timeout=2"})
    response = broken.test_client().post("/api/v1/events", json={"type": "message.sent", "agent_id": "agt_x"},
                                         headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert response.status_code == 503
    assert response.json["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"].isdigit()


def test_endpoint_that_only_fails_is_disabled_then_enabled_and_recovered(app, tenant, receiver, stack):
    stack.env["ENDPOINT_DISABLE_AFTER"] = "3"
    stack.env["DELIVERY_RETRY_SCHEDULE"] = "1,1,1,1,1,1"
    stack.start_worker()
    agent = make_agent(tenant.api)
    endpoint = make_endpoint(tenant.api, receiver.url)
    receiver.default = Reply(500, b"down")
    started = utcnow() - timedelta(seconds=1)
    events = [send(tenant.api, agent["id"])["id"] for _ in range(3)]
    shown = wait_until(lambda: (e := tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}").json)["enabled"] is False
                       and e, timeout=40, message="the endpoint to be disabled")
    assert "Every delivery has failed since" in shown["disabled_reason"]
    wait_until(lambda: set(statuses(tenant.api, events)) == {"failed"}, timeout=20)

    # The tenant fixes the receiver, enables the endpoint and recovers what failed.
    receiver.default = Reply(200)
    assert tenant.api.patch(f"/api/v1/endpoints/{endpoint['id']}", json={"enabled": True}).json["enabled"] is True
    recovered = tenant.api.post(f"/api/v1/endpoints/{endpoint['id']}/recover", json={"since": isoformat(started)})
    assert recovered.status_code == 202 and recovered.json == {"deliveries": 3}
    wait_until(lambda: set(statuses(tenant.api, events)) == {"succeeded"}, timeout=30)
    detail = tenant.api.get(f"/api/v1/deliveries/{delivery_of(tenant.api, events[0])['id']}").json
    assert detail["attempts"][-1]["trigger"] == "manual" and detail["attempts"][-1]["response_status"] == 200


def test_a_success_ends_the_failing_streak_so_a_later_failure_does_not_disable_the_endpoint(
        app, tenant, receiver, stack):
    """ENDPOINT_DISABLE_AFTER counts from the first failure of an unbroken streak: an endpoint that failed,
    answered again, and fails once more later than that is not disabled."""
    stack.env["ENDPOINT_DISABLE_AFTER"] = "2"
    stack.env["DELIVERY_RETRY_SCHEDULE"] = "1,1,1,1,1,1"
    stack.start_worker()
    agent = make_agent(tenant.api)
    endpoint = make_endpoint(tenant.api, receiver.url)
    receiver.reply(Reply(500, b"down"))
    first = send(tenant.api, agent["id"])["id"]
    wait_for_status(tenant.api, delivery_of(tenant.api, first)["id"], "succeeded")  # its retry got a 200
    time.sleep(2.5)  # longer than ENDPOINT_DISABLE_AFTER since that first failure
    receiver.reply(Reply(500, b"down again"))
    second = send(tenant.api, agent["id"])["id"]
    delivered = wait_for_status(tenant.api, delivery_of(tenant.api, second)["id"], "succeeded")
    assert [a["response_status"] for a in delivered["attempts"]] == [500, 200]
    shown = tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}").json
    assert shown["enabled"] is True and shown["disabled_reason"] is None


def test_recover_validates_since(tenant):
    endpoint = tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/x"}).json
    response = tenant.api.post(f"/api/v1/endpoints/{endpoint['id']}/recover", json={})
    assert response.status_code == 422 and "since" in response.json["error"]["message"]
    assert tenant.api.post("/api/v1/endpoints/ep_nope/recover", json={}).status_code == 404


def assert_paced(tenant, receiver, stack):
    """24 deliveries to an endpoint paced at 4 a second keep that pace, with no burst, and 10 to another
    endpoint go out meanwhile."""
    stack.start_worker()
    stack.start_worker()
    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url + "?paced", rate_limit=4)
    make_endpoint(tenant.api, receiver.url + "?free", event_types=["tool.executed"])
    for _ in range(24):
        send(tenant.api, agent["id"], "message.sent")
    free_started = time.time()
    for _ in range(10):
        send(tenant.api, agent["id"], "tool.executed")
    receiver.wait_for(34, timeout=60)
    paced = sorted(r.at for r in receiver.requests if r.path.endswith("?paced"))
    free = sorted(r.at for r in receiver.requests if r.path.endswith("?free"))
    # 24 deliveries at 4 a second: 23 intervals of 0.25 s between the first and the last.
    rate = (len(paced) - 1) / (paced[-1] - paced[0])
    assert 3.6 <= rate <= 4.4, rate
    # No two-second window holds more than its rate allows (+10 %, +1 for the window's edges): no bursts.
    gaps = [round(b - a, 2) for a, b in zip(paced, paced[1:])]
    assert max(sum(1 for t in paced if start <= t < start + 2) for start in paced) <= 9, gaps
    # The other endpoint's deliveries were not stuck behind the paced ones.
    assert free[-1] - free_started < 3, free[-1] - free_started


def test_pacing_holds_an_endpoint_to_its_rate_without_slowing_the_others(tenant, receiver, stack):
    assert_paced(tenant, receiver, stack)


def test_a_burst_to_a_paced_endpoint_does_not_hold_up_the_tenants_other_endpoints(tenant, receiver, stack):
    """A paced endpoint's backlog waits aside for its slots, not in the queue ahead of everything else: a
    delivery to another endpoint, queued behind a burst of 200 to one paced at 1 a second, arrives at once."""
    agent = make_agent(tenant.api)
    paced = make_endpoint(tenant.api, receiver.url + "?paced", rate_limit=1, event_types=["message.sent"])
    make_endpoint(tenant.api, receiver.url + "?free", event_types=["tool.executed"])
    for _ in range(200):
        send(tenant.api, agent["id"], "message.sent")
    send(tenant.api, agent["id"], "tool.executed")
    stack.start_worker()  # only now: the burst is all queued ahead of the other endpoint's delivery
    ready = time.time()
    wait_until(lambda: any(r.path.endswith("?free") for r in receiver.requests), timeout=30)
    arrived = next(r.at for r in receiver.requests if r.path.endswith("?free"))
    assert arrived - ready < 1, f"{arrived - ready:.2f} s after the worker started"
    # (The held ones would go on for minutes: the endpoint and its deliveries go.)
    assert tenant.api.delete(f"/api/v1/endpoints/{paced['id']}").status_code == 204


def test_a_slow_receiver_on_a_paced_endpoint_does_not_hold_up_the_tenants_other_endpoints(tenant, receiver, stack):
    """A paced delivery is sent in its endpoint's lane, not in the job that its slot released: while the paced
    endpoint's receiver takes 1.5 s to answer each, the one worker goes on to the tenant's other deliveries."""
    slow = Receiver()
    slow.default = Reply(200, delay=1.5)
    try:
        agent = make_agent(tenant.api)
        make_endpoint(tenant.api, slow.url, rate_limit=4, event_types=["message.sent"])
        make_endpoint(tenant.api, receiver.url, event_types=["tool.executed"])
        stack.start_worker()
        for _ in range(8):
            send(tenant.api, agent["id"], "message.sent")
        slow.wait_for(2)  # the paced deliveries are going out, each answered 1.5 s later
        sent = time.time()
        for _ in range(5):
            send(tenant.api, agent["id"], "tool.executed")
        receiver.wait_for(5, timeout=30)
        assert receiver.requests[-1].at - sent < 1, f"{receiver.requests[-1].at - sent:.2f} s"
        arrivals = sorted(r.at for r in slow.wait_for(8))  # and still at their pace
        assert min(b - a for a, b in zip(arrivals, arrivals[1:])) > 0.2, arrivals
    finally:
        slow.close()


def test_pacing_holds_while_the_database_keeps_claims_waiting(app, tenant, receiver, stack):
    """Another writer holds the database's write lock, on and off, for up to 0.45 s: claims wait behind it,
    so paced deliveries are claimed late by varying amounts; they still go out at their pace, not in bursts."""
    stop = threading.Event()
    busy = threading.Thread(target=_keep_the_database_busy, args=(app, stop))
    busy.start()
    try:
        assert_paced(tenant, receiver, stack)
    finally:
        stop.set()
        busy.join()


def test_a_held_delivery_goes_at_its_slot_while_the_database_keeps_writers_waiting(app, tenant, receiver, stack):
    """A delivery held aside for its pacing slot keeps its claim meanwhile: at its slot it goes out without
    writing first, so a writer holding the database's write lock across the slot does not make it late."""
    make_endpoint(tenant.api, receiver.url, rate_limit=1)
    agent = make_agent(tenant.api)
    stack.start_worker()
    first, second = (send(tenant.api, agent["id"])["id"] for _ in range(2))
    connection = redis.Redis.from_url(stack.redis.url)
    wait_until(lambda: connection.zcard(HELD) == 1 and statuses(tenant.api, [first]) == ["succeeded"], timeout=20,
               message="the first delivered and the second held for its slot, a second later")
    slot = connection.zrange(HELD, 0, 0, withscores=True)[0][1]
    time.sleep(max(slot - 0.3 - time.time(), 0))
    with _write_lock(app):
        time.sleep(slot + 1.5 - time.time())
    receiver.wait_for(2)
    arrived = receiver.requests[1].at
    assert receiver.requests[1].headers["webhook-id"] == second
    assert slot <= arrived < slot + 0.5, f"{arrived - slot:.2f} s after its slot, the lock held until +1.5 s"
    wait_until(lambda: statuses(tenant.api, [second]) == ["succeeded"], timeout=20)


def test_deliveries_held_for_their_slots_survive_a_flushed_redis(tenant, receiver, stack):
    """Held deliveries that Redis loses are found by the sweep once their claims run out: each still
    arrives, once, at the endpoint's pace."""
    make_endpoint(tenant.api, receiver.url, rate_limit=1)
    agent = make_agent(tenant.api)
    worker = stack.start_worker()
    events = [send(tenant.api, agent["id"])["id"] for _ in range(5)]
    connection = redis.Redis.from_url(stack.redis.url)
    wait_until(lambda: connection.zcard(HELD) >= 3, timeout=20, message="deliveries held for their slots")
    worker.stop()
    connection.flushall()
    stack.start_worker()
    wait_until(lambda: delivered_ids(receiver) == set(events), timeout=60,
               message="every paced delivery to arrive after the flush")
    wait_until(lambda: set(statuses(tenant.api, events)) == {"succeeded"}, timeout=30)
    assert len(receiver.requests) == 5, [r.headers["webhook-id"] for r in receiver.requests]
    arrivals = sorted(r.at for r in receiver.requests)
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) >= 0.9, arrivals


def test_a_drain_holds_a_resend_to_a_disabled_paced_endpoint_and_settles_the_scheduled_one_beside_it(
        app, tenant, receiver, stack):
    """A disabled paced endpoint whose batch holds a resend (sent even so, at its slot) and a scheduled
    delivery (settled unattempted): the drain holds the one and fails the other at once, not leaving it
    claimed, and neither held nor settled, until its claim runs out."""
    from sqlalchemy import update

    from jobs.drain import _drain_batch
    from webapp.extensions import db
    from webapp.models import Delivery, Endpoint
    from webapp.tenancy import tenant_scope

    endpoint = make_endpoint(tenant.api, receiver.url, rate_limit=1)
    agent = make_agent(tenant.api)
    resent, scheduled = (delivery_of(tenant.api, send(tenant.api, agent["id"])["id"])["id"] for _ in range(2))
    with app.app_context(), tenant_scope(tenant.id):
        # As a race leaves it: the endpoint disabled after its deliveries were due, one of them resent.
        db.session.execute(update(Endpoint).where(Endpoint.id == endpoint["id"]).values(enabled=False))
        db.session.execute(update(Delivery).where(Delivery.id == resent).values(manual_pending=True))
        db.session.commit()
        assert _drain_batch(app, tenant.id, 50) == 2
    assert redis.Redis.from_url(stack.redis.url).zcard(HELD) == 1
    settled = tenant.api.get(f"/api/v1/deliveries/{scheduled}").json
    assert settled["status"] == "failed" and settled["attempt_count"] == 0


def test_disabling_an_endpoint_ends_its_held_deliveries_at_once(tenant, receiver, stack):
    """Deliveries held for their pacing slots are outstanding, not in flight: disabling the endpoint fails
    them then, unattempted, and none of them is sent at its slot."""
    endpoint = make_endpoint(tenant.api, receiver.url, rate_limit=1)
    agent = make_agent(tenant.api)
    stack.start_worker()
    events = [send(tenant.api, agent["id"])["id"] for _ in range(4)]
    connection = redis.Redis.from_url(stack.redis.url)
    wait_until(lambda: connection.zcard(HELD) == 3 and len(receiver.requests) == 1, timeout=20,
               message="the first delivered and three held for their slots")
    assert tenant.api.patch(f"/api/v1/endpoints/{endpoint['id']}", json={"enabled": False}).status_code == 200
    held = [event for event in events if event not in delivered_ids(receiver)]
    assert len(held) >= 2
    assert statuses(tenant.api, held) == ["failed"] * len(held)
    assert {delivery_of(tenant.api, event)["attempt_count"] for event in held} == {0}
    time.sleep(3.5)  # past the last one's slot
    assert delivered_ids(receiver).isdisjoint(held)


def test_a_delivery_held_before_claims_were_kept_is_still_sent_at_its_slot(tenant, receiver, stack):
    """A held job from before an upgrade carries no claim (its lease): when its slot comes, the new worker
    claims the delivery anew and sends it, rather than leave it to the sweep."""
    make_endpoint(tenant.api, receiver.url, rate_limit=1)
    agent = make_agent(tenant.api)
    event = send(tenant.api, agent["id"])["id"]
    delivery = delivery_of(tenant.api, event)
    connection = redis.Redis.from_url(stack.redis.url)
    connection.flushall()  # the job ingest queued: only the held one below is left to send it
    slot = time.time() + 1
    member = [tenant.id, delivery["id"], 0, False, "scheduled", f"{delivery['id']}-0-r1"]  # the old shape
    connection.zadd(HELD, {json.dumps(member): slot})
    stack.start_worker()
    receiver.wait_for(1, timeout=8)  # the sweep would take the delivery up only 10 s after its ingest
    assert receiver.requests[0].headers["webhook-id"] == event
    assert receiver.requests[0].at >= slot
    wait_until(lambda: statuses(tenant.api, [event]) == ["succeeded"], timeout=20)


def test_resending_a_held_delivery_sends_it_once_at_its_slot(tenant, receiver, stack):
    """Resend on a delivery that waits for its pacing slot: it goes once, at that slot, as the manual attempt;
    the endpoint's pace holds and the other deliveries go once each too."""
    make_endpoint(tenant.api, receiver.url, rate_limit=1)
    agent = make_agent(tenant.api)
    stack.start_worker()
    events = [send(tenant.api, agent["id"])["id"] for _ in range(3)]
    connection = redis.Redis.from_url(stack.redis.url)
    wait_until(lambda: connection.zcard(HELD) == 2, timeout=20, message="two deliveries held for their slots")
    last_slot = max(score for _, score in connection.zrange(HELD, 0, -1, withscores=True))
    resent = delivery_of(tenant.api, events[-1])["id"]
    assert tenant.api.post(f"/api/v1/deliveries/{resent}/resend").status_code == 202
    wait_until(lambda: set(statuses(tenant.api, events)) == {"succeeded"}, timeout=20)
    time.sleep(1.5)  # time for a second send, were there one
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(events)
    arrivals = sorted(r.at for r in receiver.requests)
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) >= 0.9, arrivals
    assert arrivals[-1] < last_slot + 0.5
    attempts = tenant.api.get(f"/api/v1/deliveries/{resent}").json["attempts"]
    assert [a["trigger"] for a in attempts] == ["manual"]


@contextmanager
def _write_lock(app):
    """Hold the database's write lock (SQLite) or the deliveries' (PostgreSQL: reads still pass) meanwhile."""
    from webapp.extensions import db

    with app.app_context():
        connection = db.engine.raw_connection()
        sqlite = db.engine.dialect.name == "sqlite"
    driver = connection.driver_connection
    isolation = driver.isolation_level if sqlite else None
    try:
        if sqlite:
            driver.isolation_level = None  # so that BEGIN IMMEDIATE is ours to issue
        connection.cursor().execute("BEGIN IMMEDIATE" if sqlite else "LOCK TABLE deliveries IN EXCLUSIVE MODE")
        yield
        connection.commit()
    finally:
        if sqlite:
            driver.isolation_level = isolation  # as the pool lent it
        connection.close()


def _keep_the_database_busy(app, stop: threading.Event) -> None:
    pattern = random.Random(7)  # the same stretches in every run
    while not stop.is_set():
        with _write_lock(app):
            time.sleep(pattern.uniform(0.1, 0.45))
        stop.wait(pattern.uniform(0.1, 0.5))


def test_one_tenants_flood_does_not_delay_another_tenant(make_tenant, receiver, stack):
    """Tenants on different queue shards are served in turn (round robin), not first come first served."""
    from webapp.queue import QUEUE_SHARDS
    import zlib

    flooder = make_tenant("Flood")
    other = make_tenant("Other")
    while zlib.crc32(other.id.encode()) % QUEUE_SHARDS == zlib.crc32(flooder.id.encode()) % QUEUE_SHARDS:
        other = make_tenant()  # tenants that share a shard share its order; this test is about two that do not
    receiver.default = Reply(200, delay=0.05)
    for tenant, path in ((flooder, "flood"), (other, "other")):
        agent = make_agent(tenant.api)
        make_endpoint(tenant.api, f"{receiver.url}?{path}")
        tenant.agent = agent["id"]
    for _ in range(150):
        send(flooder.api, flooder.agent)
    for _ in range(5):
        send(other.api, other.agent)
    stack.start_worker()
    receiver.wait_for(155, timeout=90)
    order = [r.path.rsplit("?", 1)[1] for r in receiver.requests]
    # The other tenant's five arrive among the first few dozen, not after the flood's 150.
    assert max(i for i, path in enumerate(order) if path == "other") < 30, order.index("other")


def test_recover_from_the_dashboard_resends_only_the_failed_deliveries_of_the_period(app, tenant, receiver, worker):
    """The endpoint page's Recover form does what the API's recover does: the receiver gets each failed
    delivery of the chosen period again, with the same webhook-id; older ones and successes stay as they are."""
    from sqlalchemy import update

    from webapp.extensions import db
    from webapp.models import Delivery

    from .helpers import csrf_token

    agent = make_agent(tenant.api)
    endpoint = make_endpoint(tenant.api, receiver.url)
    events = [send(tenant.api, agent["id"])["id"] for _ in range(3)]
    receiver.wait_for(3)
    ids = [wait_for_status(tenant.api, delivery_of(tenant.api, e)["id"], "succeeded")["id"] for e in events]
    # The first two ended failed (their retries exhausted) while the receiver was down; the first, two hours ago.
    with tenant.scope():
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids[:2])).values(status="failed"))
        db.session.execute(update(Delivery).where(Delivery.id == ids[0])
                           .values(created_at=utcnow() - timedelta(hours=2)))
        db.session.commit()

    page = app.test_client()
    token = csrf_token(page.get("/login").get_data(as_text=True))
    page.post("/login", data={"email": "owner1@example.com", "password": "correct horse battery", "csrf_token": token})
    detail = page.get(f"/endpoints/{endpoint['id']}").get_data(as_text=True)
    assert "Resend failed deliveries" in detail and "at most 10.0 a second" in detail
    response = page.post(f"/endpoints/{endpoint['id']}/recover",
                         data={"hours": "1", "csrf_token": csrf_token(detail)}, follow_redirects=True)
    assert "Resending 1 failed delivery from the last hour, at most 10 a second." in response.get_data(as_text=True)

    wait_for_status(tenant.api, ids[1], "succeeded")
    receiver.wait_for(4)
    assert [r.headers["webhook-id"] for r in receiver.requests].count(events[1]) == 2
    attempts = tenant.api.get(f"/api/v1/deliveries/{ids[1]}").json["attempts"]
    assert [a["trigger"] for a in attempts] == ["scheduled", "manual"]
    assert tenant.api.get(f"/api/v1/deliveries/{ids[0]}").json["status"] == "failed"  # outside the period
    assert len(receiver.requests) == 4

    # Nothing failed in the period any more: it says so.
    response = page.post(f"/endpoints/{endpoint['id']}/recover",
                         data={"hours": "1", "csrf_token": csrf_token(detail)}, follow_redirects=True)
    assert "No failed deliveries from the last hour to resend." in response.get_data(as_text=True)
    response = page.post(f"/endpoints/{endpoint['id']}/recover",
                         data={"hours": "5", "csrf_token": csrf_token(detail)}, follow_redirects=True)
    assert "Choose how far back to look for failed deliveries." in response.get_data(as_text=True)


def test_a_slow_receiver_holds_up_only_its_own_deliveries(tenant, receiver, stack):
    """One worker, one endpoint whose receiver takes 1 s to answer and ten deliveries for it queued
    first: another endpoint's twenty deliveries still arrive at once, not after 10 s of waiting."""
    slow = Receiver()
    # Slow (over the lanes' half second), yet well within the tests' 2 s DELIVERY_TIMEOUT, so that every attempt
    # succeeds: with 1.5 s, one attempt of ten once took over 2 s on a busy machine and was retried.
    slow.default = Reply(200, delay=1.0)
    try:
        stack.start_worker()
        agent = make_agent(tenant.api)
        make_endpoint(tenant.api, slow.url, event_types=["tool.executed"])
        make_endpoint(tenant.api, receiver.url, event_types=["message.sent"])
        slow_events = [send(tenant.api, agent["id"], "tool.executed")["id"] for _ in range(10)]
        started = time.time()
        fast_events = [send(tenant.api, agent["id"], "message.sent")["id"] for _ in range(20)]
        receiver.wait_for(20, timeout=20)
        assert max(r.at for r in receiver.requests) - started < 4
        assert delivered_ids(receiver) == set(fast_events)
        slow.wait_for(10, timeout=30)
        wait_until(lambda: set(statuses(tenant.api, slow_events + fast_events)) == {"succeeded"}, timeout=30)
        assert {delivery_of(tenant.api, e)["attempt_count"] for e in slow_events} == {1}
    finally:
        slow.close()


def test_a_burst_is_delivered_in_batches_each_once(tenant, receiver, stack):
    """A burst of events is claimed and sent in batches (far fewer worker jobs than deliveries), and
    every event still arrives exactly once."""
    from rq import Worker

    agent = make_agent(tenant.api)
    make_endpoint(tenant.api, receiver.url)
    events = [send(tenant.api, agent["id"])["id"] for _ in range(100)]
    stack.start_worker()
    receiver.wait_for(100, timeout=60)
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(events)
    wait_until(lambda: set(statuses(tenant.api, events)) == {"succeeded"}, timeout=30)
    [worker] = Worker.all(connection=redis.Redis.from_url(stack.redis.url))
    assert worker.successful_job_count <= 100 / 4, worker.successful_job_count
