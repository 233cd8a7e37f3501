"""The overview chart's deliveries past pending come from tallies kept as their statuses change: every way a
delivery's status changes must leave the chart equal to the deliveries' rows."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select, update

from webapp.extensions import db
from webapp.ids import new_id, time_of
from webapp.models import Delivery, Endpoint, utcnow
from webapp.services import stats, tallies
from webapp.services.endpoints import disable
from webapp.services.tallies import Change

from . import factories
from .helpers import make_agent, make_endpoint, send, wait_for_status
from .receiver import Reply


def _chart(app, tenant) -> Counter:
    """The chart's counts, by (hour, status)."""
    with app.app_context(), tenant.scope():
        return Counter({(bucket.start, status): n for bucket in stats.hourly_deliveries()
                        for status, n in bucket.counts.items() if n})


def _rows(app, tenant) -> Counter:
    """What the chart should show: the tenant's deliveries counted one by one, by hour of creation and status."""
    with app.app_context(), tenant.scope():
        return Counter((tallies.hour_of(time_of(id_)), status)
                       for id_, status in db.session.execute(select(Delivery.id, Delivery.status)))


def _statuses(chart: Counter) -> Counter:
    totals = Counter()
    for (_, status), n in chart.items():
        totals[status] += n
    return totals


def test_the_chart_matches_the_deliveries_however_they_settle(app, tenant, receiver, stack):
    agent = make_agent(tenant.api)
    ok = make_endpoint(tenant.api, receiver.url + "?ok")
    unclaimed = make_endpoint(tenant.api, receiver.url + "?unclaimed")
    switched_off = make_endpoint(tenant.api, receiver.url + "?off")
    event = send(tenant.api, agent["id"])  # no worker yet: its three deliveries wait
    deliveries = {d["endpoint_id"]: d["id"] for d in tenant.api.get(f"/api/v1/events/{event['id']}").json["deliveries"]}

    def check(**expected):
        chart = _chart(app, tenant)
        assert chart == _rows(app, tenant)
        assert _statuses(chart) == Counter(expected)

    check(pending=3)
    # Disabled by its user: its waiting delivery ends failed (services/endpoints.disable).
    assert tenant.api.patch(f"/api/v1/endpoints/{switched_off['id']}", json={"enabled": False}).status_code == 200
    check(pending=2, failed=1)
    # Disabled behind the worker's back, before its claim: the claim settles it, unsent (jobs/attempts.prepare).
    with app.app_context(), tenant.scope():
        db.session.execute(update(Endpoint).where(Endpoint.id == unclaimed["id"]).values(enabled=False))
        db.session.commit()
    stack.start_worker()
    wait_for_status(tenant.api, deliveries[ok["id"]], "succeeded")
    wait_for_status(tenant.api, deliveries[unclaimed["id"]], "failed")
    check(succeeded=1, failed=2)
    # A resend of a succeeded delivery that fails now turns it failed; one of a failed one that succeeds, succeeded.
    receiver.reply(Reply(500, b"no"))
    assert tenant.api.post(f"/api/v1/deliveries/{deliveries[ok['id']]}/resend").status_code == 202
    wait_for_status(tenant.api, deliveries[ok["id"]], "failed")
    check(failed=3)
    assert tenant.api.post(f"/api/v1/deliveries/{deliveries[unclaimed['id']]}/resend").status_code == 202
    wait_for_status(tenant.api, deliveries[unclaimed["id"]], "succeeded")
    check(succeeded=1, failed=2)
    # Retried, then failed at the end of the schedule: counted once, as failed (the one enabled endpoint left).
    receiver.default = Reply(503, b"busy")
    failing = send(tenant.api, agent["id"])
    failing_id = next(d["id"] for d in tenant.api.get(f"/api/v1/events/{failing['id']}").json["deliveries"]
                      if d["endpoint_id"] == ok["id"])
    wait_for_status(tenant.api, failing_id, "failed")
    check(succeeded=1, failed=3)
    # A deleted endpoint takes its deliveries and their tallies with it.
    assert tenant.api.delete(f"/api/v1/endpoints/{ok['id']}").status_code == 204
    check(succeeded=1, failed=1)


def test_delivery_rows_count_what_enters_and_leaves_each_status_but_pending():
    now = utcnow()
    hour = tallies.hour_of(now)
    this_hour, an_hour_ago, long_ago = (new_id("dlv", at) for at in (now, now - timedelta(hours=1),
                                                                     now - tallies.KEPT - timedelta(hours=1)))
    rows = tallies.delivery_rows("ten_1", [
        Change(this_hour, "ep_b", None, "succeeded"),         # new and settled at once (a loader, a test)
        Change(this_hour, "ep_b", None, "pending"),           # new: nothing
        Change(this_hour, "ep_b", "pending", "retrying"),
        Change(this_hour, "ep_b", "succeeded", "succeeded"),  # no change
        Change(an_hour_ago, "ep_a", "succeeded", "failed"),   # a resend that failed
        Change(an_hour_ago, "ep_a", "retrying", "failed"),
        Change(long_ago, "ep_a", "failed", "succeeded"),      # an hour already pruned: left out
    ], now)
    earlier = hour - timedelta(hours=1)
    assert rows == [
        dict(tenant_id="ten_1", endpoint_id="ep_a", hour=earlier, status="failed", deliveries=2),
        dict(tenant_id="ten_1", endpoint_id="ep_a", hour=earlier, status="retrying", deliveries=-1),
        dict(tenant_id="ten_1", endpoint_id="ep_a", hour=earlier, status="succeeded", deliveries=-1),
        dict(tenant_id="ten_1", endpoint_id="ep_b", hour=hour, status="retrying", deliveries=1),
        dict(tenant_id="ten_1", endpoint_id="ep_b", hour=hour, status="succeeded", deliveries=1)]


def test_disabling_an_endpoint_counts_its_pending_and_retrying_deliveries_as_failed(app, tenant):
    now = utcnow()
    with app.app_context(), tenant.scope():
        endpoint = factories.endpoint()
        for status, hours_ago in (("pending", 0), ("retrying", 0), ("retrying", 2), ("succeeded", 2)):
            factories.delivery(endpoint, status=status, at=now - timedelta(hours=hours_ago))
        db.session.commit()
        assert _statuses(_chart(app, tenant)) == Counter(pending=1, retrying=2, succeeded=1)
        disable(endpoint, "Disabled by a user.")
        db.session.commit()
    assert _chart(app, tenant) == _rows(app, tenant)
    assert _statuses(_chart(app, tenant)) == Counter(failed=3, succeeded=1)


def test_counts_of_a_transaction_rolled_back_are_not_written(app, tenant):
    with app.app_context(), tenant.scope():
        endpoint = factories.endpoint()
        db.session.commit()
        tallies.count_changes(tenant.id, [Change(new_id("dlv"), endpoint.id, None, "succeeded")])
        db.session.rollback()
        db.session.commit()
        assert _statuses(_chart(app, tenant)) == Counter()
        tallies.count_changes(tenant.id, [Change(new_id("dlv"), endpoint.id, None, "failed")])
        db.session.commit()
        assert _statuses(_chart(app, tenant)) == Counter(failed=1)
