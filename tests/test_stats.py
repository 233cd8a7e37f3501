"""The overview's statistics: deliveries per hour, success rate and p95 per endpoint, failing endpoints.

Known histories are written straight into the database (tests/factories.py), on SQLite and PostgreSQL.
"""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from webapp.dashboard.chart import stacked_bars, tick_step
from webapp.dashboard.formatting import ago, duration, percent
from webapp.extensions import db
from webapp.models import Attempt, AttemptTally, AttemptTotal, Delivery, utcnow
from webapp.services import stats, tallies
from webapp.services.agents import create_agent, delete_agent
from webapp.services.endpoints import delete_endpoint, disable

from . import factories
from .helpers import check_two_pages, login, make_agent, make_endpoint, send, wait_until
from .receiver import Reply


def test_success_rate_and_p95_count_the_attempts_of_the_last_24_hours(tenant):
    now = utcnow()
    with tenant.scope():
        fast, slow, idle = factories.endpoint(), factories.endpoint(), factories.endpoint()
        # 20 attempts of 10, 20, … 200 ms; every fourth one a 500: 15 of 20 succeed, p95 (nearest rank 19) = 190.
        for n in range(1, 21):
            factories.delivery(fast, at=now - timedelta(minutes=n), attempts=[(500 if n % 4 == 0 else 200, n * 10)])
        # Two deliveries of two attempts each (a timeout, then 200); one attempt older than a day is not counted.
        factories.delivery(slow, at=now - timedelta(hours=2), attempts=[(None, 15000), (200, 900)])
        factories.delivery(slow, at=now - timedelta(hours=3), attempts=[(None, 15000), (200, 700)])
        factories.delivery(slow, at=now - timedelta(hours=30), attempts=[(200, 99999)])
        fast, slow, idle = fast.id, slow.id, idle.id
        db.session.commit()
        health = stats.endpoint_health(now)

    assert (health[fast].attempts, health[fast].successes) == (20, 15)
    assert health[fast].success_rate == 0.75 and health[fast].p95_ms == 190
    assert (health[slow].attempts, health[slow].successes, health[slow].p95_ms) == (4, 2, 15000)
    assert idle not in health  # no attempts and no delivery: the page shows dashes


def test_p95_of_a_single_attempt_is_that_attempt(tenant):
    with tenant.scope():
        endpoint = factories.endpoint()
        factories.delivery(endpoint, attempts=[(204, 42)])
        db.session.commit()
        assert stats.endpoint_health()[endpoint.id].p95_ms == 42
        first_hour = utcnow() - timedelta(hours=1)
        assert stats.attempt_counts(first_hour) == {endpoint.id: (1, 1)}
        assert stats.duration_percentiles(first_hour, [endpoint.id], percentile=50) == {endpoint.id: 42}


def test_the_last_delivery_skips_pending_ones_and_failing_endpoints_are_found(tenant):
    now = utcnow()
    with tenant.scope():
        healthy, broken, retrying, off = (factories.endpoint() for _ in range(4))
        factories.delivery(healthy, status="failed", at=now - timedelta(hours=1), attempts=[(500, 5)])
        factories.delivery(healthy, status="succeeded", at=now - timedelta(minutes=5), attempts=[(200, 5)])
        factories.delivery(healthy, status="pending", at=now)  # not attempted yet: says nothing
        factories.delivery(broken, status="succeeded", at=now - timedelta(hours=1), attempts=[(200, 5)])
        factories.delivery(broken, status="failed", at=now - timedelta(minutes=5), attempts=[(None, 5)])
        factories.delivery(retrying, status="retrying", at=now, attempts=[(503, 5)])
        disable(off, "Disabled by a user.")
        db.session.commit()
        health = stats.endpoint_health(now)
        failing = [e.id for e in stats.failing_endpoints(health)]
        assert health[healthy.id].last_status == "succeeded" and health[healthy.id].last_response_status == 200
        assert health[broken.id].last_status == "failed" and health[broken.id].last_error == "connection refused"
        assert failing == [off.id, retrying.id, broken.id]  # newest first


def test_deliveries_per_hour_by_status(tenant):
    now = utcnow()
    with tenant.scope():
        endpoint = factories.endpoint()
        for status, hours_ago in (("succeeded", 0), ("succeeded", 0), ("failed", 0), ("retrying", 3),
                                  ("succeeded", 23), ("succeeded", 25),
                                  ("pending", 0), ("pending", 5), ("pending", 23), ("pending", 25)):
            factories.delivery(endpoint, status=status, at=now - timedelta(hours=hours_ago))
        this_hour = now.replace(minute=0, second=0, microsecond=0)
        # The first instant of an hour, and the last millisecond before it:
        factories.delivery(endpoint, status="pending", at=this_hour - timedelta(hours=2))
        factories.delivery(endpoint, status="pending", at=this_hour - timedelta(hours=2, milliseconds=1))
        db.session.commit()
        buckets = stats.hourly_deliveries(now)

    assert len(buckets) == 24
    assert buckets[-1].start == this_hour
    assert buckets[-1].counts == {"pending": 1, "retrying": 0, "succeeded": 2, "failed": 1}
    assert buckets[-4].counts["retrying"] == 1
    assert [b.counts["pending"] for b in buckets[-6:-2]] == [1, 0, 1, 1]  # 5 hours ago; 2 hours ago and just before
    # 23 hours ago is the first bucket; 25 hours ago is outside
    assert buckets[0].counts == {"pending": 1, "retrying": 0, "succeeded": 1, "failed": 0}
    assert sum(b.total for b in buckets) == 10


def test_statistics_never_count_another_tenants_rows(make_tenant):
    mine, theirs = make_tenant("Mine"), make_tenant("Theirs")
    with theirs.scope():
        endpoint = factories.endpoint()
        for _ in range(5):
            factories.delivery(endpoint, status="failed", attempts=[(500, 1000)])
        db.session.commit()
    with mine.scope():
        own = factories.endpoint()
        factories.delivery(own, attempts=[(200, 10)])
        db.session.commit()
        health = stats.endpoint_health()
        assert set(health) == {own.id} and health[own.id].p95_ms == 10
        assert sum(b.total for b in stats.hourly_deliveries()) == 1
        assert stats.has_events()
    with make_tenant("New").scope():
        assert stats.endpoint_health() == {} and not stats.has_events()


def test_the_overview_draws_the_chart_and_lists_health_and_failing_endpoints(tenant, client):
    now = utcnow()
    with tenant.scope():
        good, bad = factories.endpoint(url="http://127.0.0.1:9/good"), factories.endpoint(url="http://127.0.0.1:9/bad")
        for n in range(4):
            factories.delivery(good, at=now - timedelta(hours=n), attempts=[(200, 100 + n)])
        factories.delivery(bad, status="failed", at=now, attempts=[(None, 3)])
        db.session.commit()
    login(client, "owner1@example.com")
    page = client.get("/").get_data(as_text=True)

    svg = re.search(r'<svg class="chart-svg"[^>]*role="img" aria-labelledby="chart-title chart-desc".*?</svg>', page, re.DOTALL)
    assert svg, "no accessible chart on the overview"
    chart = svg.group()
    assert '<title id="chart-title">Deliveries per hour, last 24 hours, by status</title>' in chart
    assert "5 deliveries in the last 24 hours: 4 succeeded, 1 failed." in chart
    assert chart.count('class="bar-succeeded"') == 4 and chart.count('class="bar-failed"') == 1
    assert "<summary>Show as a table</summary>" in page  # the same numbers, for screen readers
    # Health per endpoint, and the failing one named with its reason.
    failing = page.split('id="failing-heading"')[1].split("</section>")[0]
    assert "http://127.0.0.1:9/bad" in failing and "connection refused" in failing
    assert "http://127.0.0.1:9/good" not in failing
    # The good endpoint's p95 is 103 ms, shown rounded up to two significant figures as the tallies keep it.
    assert ">100%</span>" in page and ">0%</span>" in page and "110 ms" in page
    # This tenant has sent events: no first-event panel, the snippets are folded away.
    assert "Send your first event" not in page and "Send an event from your agent" in page


def test_the_overview_lists_the_health_of_the_ten_busiest_endpoints_of_many(tenant, client):
    """A tenant with an endpoint per customer's agent has hundreds: the overview shows the busiest ten."""
    with tenant.scope():
        for n in range(12):  # endpoint n has n attempts of 10 × n ms
            endpoint = factories.endpoint(url=f"http://127.0.0.1:9/customer-{n}")
            if n:
                factories.delivery(endpoint, attempts=[(200, 10 * n)] * n)
        db.session.commit()
    login(client, "owner1@example.com")
    page = client.get("/").get_data(as_text=True)
    table = page.split('id="health-heading"')[1].split("</section>")[0]
    assert "The 10 busiest of 12 endpoints, by attempts in the last 24 hours." in table
    shown = re.findall(r"http://127\.0\.0\.1:9/customer-(\d+)</a>.*?>(\d+) ms<.*?>(\d+)</td>", table, re.DOTALL)
    # Busiest first, each with its p95 and attempts; 0 and 1 are left to the endpoint list.
    assert shown == [(str(n), str(10 * n), str(n)) for n in range(11, 1, -1)]
    assert "/endpoints" in table and "All endpoints" in table


def test_the_busiest_are_filled_up_with_the_newest_when_few_endpoints_had_attempts(tenant):
    with tenant.scope():
        made = [factories.endpoint(url=f"http://127.0.0.1:9/customer-{n}") for n in range(12)]
        factories.delivery(made[3], attempts=[(200, 10)] * 2)
        factories.delivery(made[5], attempts=[(500, 10)] * 3)
        db.session.commit()
        shown = [e.id for e in stats.busiest(stats.endpoint_health())]
        # Ids order by creation time to the millisecond: the newest others are those with the highest ids.
        others = sorted((e.id for e in made if e not in (made[3], made[5])), reverse=True)
        assert shown == [made[5].id, made[3].id, *others[:8]]


def test_the_endpoint_list_pages_through_many_endpoints_newest_first(tenant, client):
    with tenant.scope():
        made = [factories.endpoint(url=f"http://127.0.0.1:9/customer-{n}") for n in range(105)]
        newest_first = [e.url.rsplit("-", 1)[1] for e in sorted(made, key=lambda e: e.id, reverse=True)]
        oldest = min(made, key=lambda e: e.id)
        factories.delivery(oldest, attempts=[(200, 10)])
        oldest_url = oldest.url
        db.session.commit()
    login(client, "owner1@example.com")

    def listed(page: str) -> list[str]:
        return re.findall(r"http://127\.0\.0\.1:9/customer-(\d+)</a>", page)

    _, _, second = check_two_pages(client, "/endpoints", listed, newest_first)
    # The oldest endpoint's health is on its page.
    assert ">100%</span>" in second.split(f"{oldest_url}</a>")[1].split("</tr>")[0]


def test_the_agent_list_shows_each_agents_events_of_the_last_day_and_when_its_last_came(make_tenant, client):
    tenant, other = make_tenant("Acme"), make_tenant("Other")
    busy, dormant, quiet = (make_agent(tenant.api, name)["id"] for name in ("Busy", "Dormant", "Quiet"))
    for _ in range(3):  # through the API, as an agent sends them
        send(tenant.api, busy)
    send(other.api, make_agent(other.api, "Busy")["id"])  # the other tenant's, on its own list only
    now = utcnow()
    with tenant.scope():
        # Written straight into the database, as a bulk loader (or an old web process) would: counted too.
        for hours_ago in (2, 2, 22, 25, 30):
            factories.event(agent_id=busy, at=now - timedelta(hours=hours_ago))
        factories.event(agent_id=dormant, at=now - timedelta(days=3, hours=1))
        factories.event(agent_id=None, at=now)  # a test event names no agent
        db.session.commit()
    login(client, "owner1@example.com")
    page = client.get("/agents").get_data(as_text=True)

    def row(name: str) -> list[str]:
        cells = page.split(f">{name}</a>")[1].split("</tr>")[0]
        return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]

    # Id, description, events in the last 24 hours (the current clock hour and the 23 before), last event.
    assert row("Busy")[2:4] == ["6", "just now"]
    assert row("Dormant")[2:4] == ["0", "3 days ago"]
    assert row("Quiet")[2:4] == ["0", "none in 30 days"]
    assert page.count("<tr id=") == 3


def test_the_agent_list_pages_through_many_agents_by_name(tenant, client):
    names = [f"customer-{n:03}" for n in range(105)]
    with tenant.scope():
        made = {name: create_agent({"name": name}).id for name in reversed(names)}  # ids in the other order
        db.session.commit()
    login(client, "owner1@example.com")

    def listed(page: str) -> list[str]:
        return re.findall(r">(customer-\d+)</a>", page)

    _, following, _ = check_two_pages(client, "/agents", listed, names, "First", "Next")
    # The next page's cursor is the last agent of the page before: once it is deleted, the link says so.
    with tenant.scope():
        delete_agent(made[names[99]])
        db.session.commit()
    for gone in (following, "/agents?cursor=nonsense"):
        response = client.get(gone, follow_redirects=True)
        assert response.request.path == "/agents" and "does not exist" in response.get_data(as_text=True)
        assert listed(response.get_data(as_text=True)) == names[:99] + names[100:101]


# The chart's layout and the way numbers are written

def test_chart_axis_steps_are_round():
    assert [4 * tick_step(v) for v in (0, 3, 5, 9, 41, 199, 201, 1234)] == [4, 4, 8, 12, 60, 200, 240, 1600]


def test_chart_bars_stack_in_proportion():
    now = utcnow()
    buckets = [stats.Bucket(now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23 - i)) for i in range(24)]
    buckets[-1].counts.update(succeeded=30, failed=10)
    chart = stacked_bars(buckets)
    last = chart.bars[-1]
    succeeded, failed = last.segments
    assert (succeeded.status, failed.status) == ("succeeded", "failed")
    assert succeeded.height == 3 * failed.height
    assert abs(failed.y + failed.height - succeeded.y) < 1e-9  # failed sits on top of succeeded
    assert chart.ticks[-1][0] == 40 and chart.bars[-1].label is not None
    assert chart.total == 40 and "busiest hour" in chart.summary


def test_numbers_are_written_for_people():
    assert [percent(v) for v in (1, 0.9999, 0.75, 0.98765, 0)] == ["100%", "99.9%", "75%", "98.8%", "0%"]
    assert [duration(v) for v in (3, 999, 1530, 15000)] == ["3 ms", "999 ms", "1.53 s", "15.0 s"]
    now = utcnow()
    assert [ago(now - timedelta(seconds=s), now) for s in (5, 90, 7300, 3 * 86400)] == [
        "just now", "1 min ago", "2 h ago", "3 days ago"]


def test_percentiles_are_the_nearest_rank_rounded_up_to_two_significant_figures(tenant):
    """The tallies keep durations rounded up; rounding never reorders them, so the percentile is the true
    nearest rank, rounded up the same way."""
    durations = [(n * 7919) % 1009 for n in range(1, 38)]  # 37 distinct values in no order, up to 1,008 ms
    with tenant.scope():
        endpoint = factories.endpoint()
        for duration in durations:
            factories.delivery(endpoint, attempts=[(200, duration)])
        db.session.commit()
        first_hour = utcnow() - timedelta(hours=1)
        for percentile in (1, 50, 90, 95, 99, 100):
            nearest_rank = sorted(durations)[-(-percentile * len(durations) // 100) - 1]
            percentiles = stats.duration_percentiles(first_hour, [endpoint.id], percentile)
            assert percentiles == {endpoint.id: tallies.rounded_up(nearest_rank)}, percentile
        assert stats.attempt_counts(first_hour) == {endpoint.id: (37, 37)}


def test_durations_round_up_to_two_significant_figures():
    assert [tallies.rounded_up(ms) for ms in (0, 7, 42, 100, 101, 183, 999, 1000, 1001, 1530, 15000, 99999)] == [
        0, 7, 42, 100, 110, 190, 1000, 1000, 1100, 1600, 15000, 100000]


def test_health_counts_the_same_24_clock_hours_as_the_chart(tenant):
    now = utcnow()
    first = tallies.hour_of(now) - timedelta(hours=23)  # the chart's first bar
    with tenant.scope():
        endpoint = factories.endpoint()
        factories.delivery(endpoint, at=first + timedelta(minutes=1), attempts=[(200, 30)])
        factories.delivery(endpoint, at=first - timedelta(minutes=1), attempts=[(500, 90)])  # the hour before
        db.session.commit()
        health = stats.endpoint_health(now)[endpoint.id]
        assert (health.attempts, health.successes, health.p95_ms) == (1, 1, 30)
        assert stats.hourly_deliveries(now)[0].start == first


def test_deleting_an_endpoint_deletes_its_tallies(tenant):
    with tenant.scope():
        kept, deleted = factories.endpoint(), factories.endpoint()
        for endpoint in (kept, deleted):
            factories.delivery(endpoint, attempts=[(503, 20), (200, 40)])
        kept, deleted = kept.id, deleted.id
        db.session.commit()
        delete_endpoint(deleted)
        db.session.commit()
        assert set(db.session.scalars(select(AttemptTally.endpoint_id))) == {kept}
        assert set(db.session.scalars(select(AttemptTotal.endpoint_id))) == {kept}
        assert set(stats.endpoint_health()) == {kept}


def test_two_workers_tallies_agree_with_the_attempts_they_store(tenant, receiver, stack):
    """Two worker processes record a burst to two endpoints at once, some attempts failing and retried:
    every stored attempt is counted once in endpoint health, on both databases."""
    agent = make_agent(tenant.api)
    endpoints = [make_endpoint(tenant.api, f"{receiver.url}?n={n}")["id"] for n in range(2)]
    receiver.replies.extend([Reply(status=503)] * 12)  # the first 12 answers fail; those deliveries retry
    events = [send(tenant.api, agent["id"])["id"] for _ in range(80)]
    stack.start_worker()
    stack.start_worker()

    def all_succeeded() -> bool:
        with tenant.scope():
            return db.session.scalars(select(Delivery.status)).all() == ["succeeded"] * len(events) * 2

    wait_until(all_succeeded, timeout=60, message="every delivery to succeed")
    with tenant.scope():
        health = stats.endpoint_health()
        for endpoint_id in endpoints:
            stored = db.session.execute(select(Attempt.duration_ms, Attempt.response_status)
                                        .where(Attempt.endpoint_id == endpoint_id)).all()
            durations = sorted(duration for duration, _ in stored)
            p95 = tallies.rounded_up(durations[-(-95 * len(durations) // 100) - 1])
            ok = sum(status == 200 for _, status in stored)
            assert (health[endpoint_id].attempts, health[endpoint_id].successes, health[endpoint_id].p95_ms) == (
                len(stored), ok, p95)
        assert sum(h.attempts for h in health.values()) == 80 * 2 + 12
        assert sum(h.successes for h in health.values()) == 80 * 2
