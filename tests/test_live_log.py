"""The live delivery log: a poll returns only the deliveries that changed since the last one, keeps the
page's filters, and never shows another tenant's rows. The detail page refreshes itself until final."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from webapp.deliveries import live
from webapp.extensions import db
from webapp.models import Delivery, utcnow
from webapp.services.common import ValidationError

from . import factories
from .helpers import login, make_agent

POLLER = re.compile(r'<p id="delivery-live"[^>]*hx-get="([^"]+)"')
HTMX = {"HX-Request": "true", "HX-Target": "delivery-live"}


@pytest.fixture
def owner(tenant, client):
    """A client logged in as the tenant's first user; its deliveries are made with ``tenant.scope()``."""
    login(client, "owner1@example.com")
    return client


def poll_url(body: str) -> str:
    match = POLLER.search(body)
    assert match, "no live poller on the page"
    return html.unescape(match.group(1))


def poll(client, url: str):
    response = client.get(url, headers=HTMX)
    body = response.get_data(as_text=True)
    return response, body, (poll_url(body) if response.status_code == 200 and "delivery-live" in body else url)


def history(tenant, count=3, minutes_ago=10, **fields) -> list[str]:
    """Deliveries made a while ago, so they are well behind any page's watermark."""
    with tenant.scope():
        endpoint = factories.endpoint()
        ids = [factories.delivery(endpoint, at=utcnow() - timedelta(minutes=minutes_ago, seconds=n), **fields).id
               for n in range(count)]
        db.session.commit()
        return ids


def set_status(tenant, delivery_id: str, status: str) -> None:
    with tenant.scope():
        db.session.execute(update(Delivery).where(Delivery.id == delivery_id).values(status=status))
        db.session.commit()


def new_delivery(tenant, **fields) -> str:
    with tenant.scope():
        endpoint = factories.endpoint()
        delivery_id = factories.delivery(endpoint, **fields).id
        db.session.commit()
        return delivery_id


def test_a_poll_returns_only_what_changed_and_204_when_nothing_did(tenant, owner):
    old = history(tenant)
    page = owner.get("/deliveries").get_data(as_text=True)
    assert all(delivery_id in page for delivery_id in old)
    url = poll_url(page)
    assert re.fullmatch(r"/deliveries\?since=[A-Za-z0-9_-]+", url)

    response, body, _ = poll(owner, url)
    assert response.status_code == 204 and body == ""

    set_status(tenant, old[1], "failed")
    added = new_delivery(tenant, status="pending")
    response, body, next_url = poll(owner, url)
    assert response.status_code == 200 and "<html" not in body
    # The new row goes on top of the table; the changed one replaces its own row; the rest stay out.
    assert re.search(rf'<template><tbody hx-swap-oob="afterbegin:#delivery-rows">\s*<tr id="{added}"', body)
    changed = re.search(rf'<tr id="{old[1]}"[^>]*>', body).group()
    assert 'hx-swap-oob="true"' in changed and 'data-version="' in changed
    assert 'class="status status-failed">failed<' in body
    assert old[0] not in body and old[2] not in body
    # The poller comes along, out of band, with the next token.
    assert re.search(r'<p id="delivery-live"[^>]*hx-swap-oob="true"', body) and next_url != url

    # The next poll does not offer the new row as new again.
    response, body, _ = poll(owner, next_url)
    assert "afterbegin" not in body


def test_rows_name_their_endpoint_and_agent_on_the_page_and_in_the_poll(tenant, owner):
    bot, gone = (make_agent(tenant.api, name)["id"] for name in ("Support bot", "Gone bot"))
    with tenant.scope():
        first = factories.endpoint(url="http://127.0.0.1:9/first")
        old = factories.delivery(first, agent_id=bot, at=utcnow() - timedelta(minutes=10)).id
        db.session.commit()
    tenant.api.delete(f"/api/v1/agents/{gone}")

    def row(body: str, delivery_id: str) -> str:
        return re.search(rf'<tr id="{delivery_id}".*?</tr>', body, re.S).group()

    page = owner.get("/deliveries").get_data(as_text=True)
    assert "http://127.0.0.1:9/first" in row(page, old) and "Support bot" in row(page, old)
    with tenant.scope():
        second = factories.endpoint(url="http://127.0.0.1:9/second")
        added = factories.delivery(second, agent_id=gone, status="pending").id
        db.session.commit()
    response, body, _ = poll(owner, poll_url(page))
    # The new row names its own endpoint, and the deleted agent by its id.
    assert "http://127.0.0.1:9/second" in row(body, added) and f">{gone}</td>" in row(body, added)


def test_the_poll_keeps_the_filters(tenant, owner):
    old = history(tenant, count=2, status="retrying")
    page = owner.get("/deliveries?status=retrying&event_type=message.received").get_data(as_text=True)
    url = poll_url(page)
    assert "status=retrying" in url and "event_type=message.received" in url

    other_type = new_delivery(tenant, status="retrying", event_type="tool.executed")
    other_status = new_delivery(tenant, status="succeeded")
    match = new_delivery(tenant, status="retrying")
    set_status(tenant, old[0], "succeeded")  # leaves the filter: updated in place, and marked
    _, body, _ = poll(owner, url)
    assert match in body and other_type not in body and other_status not in body
    row = re.search(rf'<tr id="{old[0]}"[^>]*>', body).group()
    assert 'data-in-filter="0"' in row and "outside-filter" in row


def test_another_tenants_changes_never_reach_the_poll(make_tenant, client):
    mine, theirs = make_tenant("Mine"), make_tenant("Theirs")
    login(client, "owner1@example.com")
    history(mine, count=1)
    theirs_old = history(theirs, count=2)
    url = poll_url(client.get("/deliveries").get_data(as_text=True))

    theirs_new = new_delivery(theirs, status="pending")
    set_status(theirs, theirs_old[0], "failed")
    response, body, _ = poll(client, url)
    assert response.status_code == 204, body
    assert theirs_new not in body and theirs_old[0] not in body


def test_a_token_the_page_did_not_hand_out_gets_the_newest_page_afresh(tenant, owner):
    old = history(tenant, count=1)
    response = owner.get("/deliveries?since=not-a-token", headers=HTMX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["HX-Retarget"] == "#delivery-log"
    assert body.startswith('<div id="delivery-log"') and old[0] in body and "<html" not in body
    # Without htmx, the same URL is simply the page.
    assert "<html" in owner.get("/deliveries?since=not-a-token").get_data(as_text=True)


def test_older_pages_do_not_poll_and_keep_keyset_pagination(tenant, owner):
    history(tenant, count=55)
    page = owner.get("/deliveries").get_data(as_text=True)
    older = re.search(r'<a class="button secondary" href="([^"]+)">Older</a>', page)
    assert older and page.count('<tr id="dlv_') == 50
    older_page = owner.get(html.unescape(older.group(1))).get_data(as_text=True)
    assert older_page.count('<tr id="dlv_') == 5 and "delivery-live" not in older_page
    assert "this page does not update" in older_page and ">Newest</a>" in older_page


def test_the_live_state_moves_its_watermark_only_as_far_as_is_safe():
    now = utcnow()
    state = live.LiveState(since=now - timedelta(minutes=1), top="dlv_5", bottom=None, shown=3)
    assert live.LiveState.decode(state.encode()) == state

    class Row:
        def __init__(self, id_, status, updated_at):
            self.id, self.status, self.updated_at = id_, status, updated_at

    rows = [Row("dlv_4", "failed", now - timedelta(seconds=30)), Row("dlv_6", "pending", now - timedelta(seconds=1)),
            Row("dlv_7", "succeeded", now - timedelta(seconds=20))]
    delta = live.delta(state, rows, None, polled_at=now)
    assert [r.id for r in delta.new] == ["dlv_7", "dlv_6"] and [r.id for r in delta.changed] == ["dlv_4"]
    assert delta.state.top == "dlv_7" and delta.state.shown == 5
    # A change stamped within LAG of the poll may have company that commits later: look again from there.
    assert delta.state.since == now - live.LAG
    quiet = live.delta(state, [Row("dlv_4", "failed", now - timedelta(seconds=30))], None, polled_at=now)
    assert quiet.state.since == now - timedelta(seconds=30)
    # New rows must match the status filter; too many changes or rows start the page afresh.
    assert [r.id for r in live.delta(state, rows, "pending", polled_at=now).new] == ["dlv_6"]
    assert live.delta(state, [rows[0]] * (live.MAX_CHANGES + 1), None, polled_at=now).reset
    assert live.delta(live.LiveState(since=now, top="dlv_1", shown=live.MAX_ROWS), rows, None, polled_at=now).reset
    with pytest.raises(ValidationError):
        live.LiveState.decode("eyJ4IjoxfQ")  # {"x": 1}


def test_the_detail_page_refreshes_until_the_delivery_is_final(tenant, owner):
    delivery_id = new_delivery(tenant, status="retrying", attempts=[(503, 12)])
    page = owner.get(f"/deliveries/{delivery_id}").get_data(as_text=True)
    refresh = re.search(r'<div id="delivery-state" data-live-detail hx-get="([^"]+)" hx-trigger="every 2s, refresh"', page)
    assert refresh, "a delivery under way should refresh itself"
    assert "webhook-id: evt_" in page and "Request headers sent" in page and "Attempt 1" in page
    url = html.unescape(refresh.group(1))
    state = {"HX-Request": "true", "HX-Target": "delivery-state"}
    assert owner.get(url, headers=state).status_code == 204  # unchanged

    set_status(tenant, delivery_id, "succeeded")
    fragment = owner.get(url, headers=state).get_data(as_text=True)
    assert fragment.startswith('<div id="delivery-state">') and "hx-get" not in fragment.split(">")[0]
    assert "status-succeeded" in fragment and "<html" not in fragment


def test_resend_from_the_detail_page_swaps_the_state_block(tenant, owner):
    from .helpers import csrf_token

    delivery_id = new_delivery(tenant, status="failed", attempts=[(500, 3)])
    token = csrf_token(owner.get(f"/deliveries/{delivery_id}").get_data(as_text=True))
    response = owner.post(f"/deliveries/{delivery_id}/resend", data={"csrf_token": token},
                          headers={"HX-Request": "true", "HX-Target": "delivery-state"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.startswith('<div id="delivery-state" data-live-detail')
    assert "resend queued" in body and "Resend queued" in response.headers["HX-Trigger"]
