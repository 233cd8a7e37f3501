"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium where it is installed, else the one
Playwright downloads; scripts/test provides one), driven by Playwright, against the app served over HTTP on
127.0.0.1, a real worker process and a real receiver.

They never skip: without a Chromium they fail and say how to install one.
Waits are on conditions (Playwright's expect), with generous timeouts; nothing sleeps.
"""
from __future__ import annotations

import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import standardwebhooks
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import update
from werkzeug.serving import make_server

from webapp import create_app
from webapp.dashboard.pickers import INLINE_MAX
from webapp.extensions import db
from webapp.models import Delivery, utcnow
from webapp.services.agents import create_agent
from webapp.services.endpoints import get_endpoint
from webapp.services.tenants import find_user_by_email
from webapp.tenancy import tenant_scope

from . import factories

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT = 20_000  # ms, for anything that waits on the worker
AGENT_ID = re.compile(r"agt_[0-9a-z]{26}")
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{20,}")
API_KEY = re.compile(r"ahk_[A-Za-z0-9_-]{32,}")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        executable = str(CHROMIUM) if CHROMIUM.exists() else None  # None: Playwright's own download
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.fail(f"the browser tests need Chromium: apt-get install chromium, or "
                        f".venv/bin/python -m playwright install chromium ({exc.message.splitlines()[0]})")
        yield browser
        browser.close()


@pytest.fixture
def server(app):
    """The web app served for real on 127.0.0.1 (threaded), configured from the environment as in production;
    ``app`` has emptied the database first."""
    web = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{web.server_port}"
    web.shutdown()
    thread.join(10)


@pytest.fixture
def page(browser, server):
    """A fresh browser session on the served app; any script error or refused resource fails the test."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    assert not problems, problems


class Dashboard:
    """The steps a user takes, through the pages as they are."""

    def __init__(self, page: Page):
        self.page = page

    def sign_up(self, org="Acme", email="ada@example.com", password="correct horse"):
        page = self.page
        page.goto("/signup")
        page.get_by_label("Organization").fill(org)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(org)

    def create_agent(self, name="Support bot") -> str:
        page = self.page
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
        page.get_by_role("link", name="New agent").click()
        page.get_by_label("Name").fill(name)
        page.get_by_role("button", name="Save agent").click()
        flash = page.locator(".flash-success")
        expect(flash).to_contain_text("created")
        return AGENT_ID.search(flash.inner_text()).group()

    def create_endpoint(self, url: str) -> str:
        page = self.page
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Endpoints").click()
        page.get_by_role("link", name="New endpoint").click()
        page.get_by_label("URL").fill(url)
        page.get_by_role("button", name="Save endpoint").click()
        expect(page.locator(".flash-success")).to_contain_text("Endpoint created")
        return page.url.rsplit("/", 1)[1]

    def reveal_secret(self) -> str:
        # htmx reveals it in place once the page's scripts have run; a click before that submits the button's
        # plain-GET fallback, a page of its own (seen on a busy machine: the test's URL check then failed).
        self.page.wait_for_load_state("load")
        self.page.get_by_role("button", name="Reveal").click()
        secret = self.page.locator("#secret-value")
        expect(secret).to_have_text(SECRET)
        return secret.inner_text()

    def create_key(self, name="agent") -> str:
        page = self.page
        page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
        page.get_by_label("Name").fill(name)
        page.get_by_role("button", name="Create key").click()
        expect(page.get_by_text("it won't be shown again")).to_be_visible()
        return API_KEY.fullmatch(page.locator("#api-key").inner_text()).group()


def send_event(server: str, key: str, agent_id: str, **fields) -> dict:
    response = requests.post(f"{server}/api/v1/events", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                             json={"type": "message.received", "agent_id": agent_id, **fields})
    assert response.status_code == 202, response.text
    return response.json()


def test_sign_up_to_a_live_delivery_and_a_resend(page, server, receiver, worker):
    ui = Dashboard(page)
    ui.sign_up()
    expect(page.get_by_role("heading", name="Send your first event")).to_be_visible()
    agent_id = ui.create_agent()
    ui.create_endpoint(receiver.url)
    secret = ui.reveal_secret()
    key = ui.create_key()
    page.goto("/")
    expect(page.locator("#snippet-curl")).to_contain_text(f'"agent_id": "{agent_id}"')
    expect(page.locator("#snippet-python")).to_contain_text(f'"agent_id": "{agent_id}"')

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deliveries").click()
    expect(page.locator("#delivery-live")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")  # a reload would forget it
    event = send_event(server, key, agent_id, data={"text": "hello"})

    row = page.locator("#delivery-rows > tr[id^=dlv_]")
    expect(row).to_have_count(1, timeout=TIMEOUT)
    expect(row.locator(".status")).to_have_text("succeeded", timeout=TIMEOUT)
    expect(row.locator(".c-attempts")).to_have_text("1")
    expect(row.locator(".c-response")).to_have_text("200")
    first = receiver.wait_for(1)[0]
    assert first.headers["webhook-id"] == event["id"]
    standardwebhooks.Webhook(secret).verify(first.body, first.headers)

    row.get_by_role("button", name="Resend").click()
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == event["id"] and second.body == first.body
    expect(row.locator(".c-attempts")).to_have_text("2", timeout=TIMEOUT)
    expect(row.locator(".status")).to_have_text("succeeded")
    expect(row.locator(".queued")).to_have_count(0, timeout=TIMEOUT)
    assert page.evaluate("window.stillTheSamePage") is True

    # The row opens the delivery: both attempts, the headers sent, the payload.
    row.locator("td.c-type").click()
    expect(page.get_by_role("heading", name=re.compile("^Attempt 2"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("^Attempt 1"))).to_be_visible()
    expect(page.locator("#payload")).to_contain_text('"text": "hello"')
    expect(page.locator("#delivery-state")).to_contain_text(f"webhook-id: {event['id']}")
    expect(page.locator("#delivery-state")).to_contain_text("manual")


def test_rotate_a_secret_then_create_and_revoke_a_key(page, server):
    ui = Dashboard(page)
    ui.sign_up()
    endpoint_id = ui.create_endpoint("http://127.0.0.1:9/hook")
    old = ui.reveal_secret()

    page.get_by_role("link", name="Rotate…").click()
    expect(page.get_by_text("For the next 24 hours the old secret keeps signing")).to_be_visible()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="New signing secret")).to_be_visible()
    new = page.locator("#secret-value").inner_text()
    assert SECRET.fullmatch(new) and new != old
    page.get_by_role("link", name="Back to the endpoint").click()
    expect(page.get_by_text("the previous one keeps signing alongside it until")).to_be_visible()
    assert ui.reveal_secret() == new and page.url.endswith(endpoint_id)

    key = ui.create_key("ci")
    assert requests.get(f"{server}/api/v1/agents", headers={"Authorization": f"Bearer {key}"}, timeout=10).ok
    page.get_by_role("link", name="Done").click()
    row = page.locator("tbody tr", has_text="ci")
    expect(row).to_contain_text(key[:12])
    row.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Requests with it will get 401 at once.")
    dialog.get_by_role("button", name="Revoke").click()
    expect(row).to_have_class("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(page.locator("#toasts")).to_contain_text("Key “ci” revoked.")
    response = requests.get(f"{server}/api/v1/agents", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 401


def test_a_script_in_an_event_shows_as_text_and_never_runs(page, server, receiver, worker):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    ui = Dashboard(page)
    ui.sign_up()
    agent_id = ui.create_agent("<script>alert(3)</script>")
    ui.create_endpoint(receiver.url)
    key = ui.create_key()
    payload = "<script>alert(1)</script>"
    send_event(server, key, agent_id, data={"text": payload, "html": "<img src=x onerror=alert(2)>"})

    page.goto("/deliveries")
    row = page.locator("#delivery-rows > tr[id^=dlv_]")
    expect(row.locator(".status")).to_have_text("succeeded", timeout=TIMEOUT)
    expect(row.locator(".c-agent")).to_have_text("<script>alert(3)</script>")
    row.locator("td.c-type").click()
    expect(page.locator("#payload")).to_contain_text(f'"text": "{payload}"')
    expect(page.locator("#payload")).to_contain_text('"html": "<img src=x onerror=alert(2)>"')
    assert page.locator("#payload script, #payload img").count() == 0
    for path in ("/agents", "/deliveries"):
        page.goto(path)
        expect(page.locator("main")).to_contain_text("<script>alert(3)</script>")
    assert dialogs == []


def test_the_live_log_slots_a_late_row_in_order_and_leaves_unchanged_rows_alone(page, app):
    """A change that commits late (its delivery's id is older than the newest row shown) still finds its
    place, and a row the page already shows in the same version is not swapped again (no flicker, and
    keyboard focus stays where it is)."""
    Dashboard(page).sign_up()
    with app.app_context():
        tenant_id = find_user_by_email("ada@example.com").tenant_id
    now = utcnow()
    with app.app_context(), tenant_scope(tenant_id):
        endpoint = factories.endpoint()
        older = factories.delivery(endpoint, at=now - timedelta(minutes=10)).id
        newer = factories.delivery(endpoint, at=now - timedelta(minutes=5)).id
        endpoint_id = endpoint.id
        db.session.commit()
    page.goto("/deliveries")
    rows = page.locator("#delivery-rows > tr[id^=dlv_]")
    expect(rows).to_have_count(2)

    with app.app_context(), tenant_scope(tenant_id):
        late = factories.delivery(get_endpoint(endpoint_id), at=now - timedelta(minutes=7)).id
        db.session.execute(update(Delivery).where(Delivery.id == late).values(status="failed"))
        db.session.commit()
    expect(rows).to_have_count(3, timeout=TIMEOUT)
    assert [rows.nth(i).get_attribute("id") for i in range(3)] == [newer, late, older]

    # The late row comes again with the next poll (it changed within the look-back): same version, no swap,
    # so the very element stays (a swap would replace it, and this mark with it).
    page.evaluate("id => { document.getElementById(id).dataset.mark = 'same element' }", late)
    with page.expect_response(lambda r: "/deliveries?since=" in r.url and r.status == 200, timeout=TIMEOUT):
        pass
    expect(page.locator(f"#{late} .status")).to_have_text("failed")
    assert page.evaluate("id => document.getElementById(id).dataset.mark", late) == "same element"


def test_the_delivery_log_filters_by_one_of_many_agents_typed_or_picked(page, app):
    """Beyond pickers.INLINE_MAX agents the agent filter is a search box: typing fills its suggestions; picking
    one (its id) or typing a whole name and pressing Enter shows that agent's deliveries."""
    Dashboard(page).sign_up()
    with app.app_context():
        tenant_id = find_user_by_email("ada@example.com").tenant_id
    with app.app_context(), tenant_scope(tenant_id):
        made = {n: create_agent({"name": f"customer-{n:03}"}).id for n in range(INLINE_MAX + 1)}
        endpoint = factories.endpoint()
        for n in (42, 43, 43):
            factories.delivery(endpoint, agent_id=made[n])
        db.session.commit()
    page.goto("/deliveries")
    box = page.get_by_role("combobox", name="Agent")
    rows = page.locator("#delivery-rows > tr[id^=dlv_]")
    expect(rows).to_have_count(3)

    box.fill("customer-04")
    suggestions = page.locator("#agent_id-suggestions option")
    expect(suggestions).to_have_count(10, timeout=TIMEOUT)
    picked = page.locator("#agent_id-suggestions option", has_text="customer-042")
    expect(picked).to_have_attribute("value", made[42])
    box.fill(picked.get_attribute("value"))  # what choosing it in the browser's list puts in the box
    box.press("Enter")
    expect(page).to_have_url(re.compile(rf"agent_id={made[42]}"))
    expect(rows).to_have_count(1)
    expect(page.locator("#agent_id-chosen")).to_have_text("customer-042")

    box.fill("Customer-043")
    box.press("Enter")
    expect(page).to_have_url(re.compile(rf"agent_id={made[43]}"))
    expect(rows).to_have_count(2)
    expect(page.locator("#agent_id-chosen")).to_have_text("customer-043")
    # (A name that several agents share answers 422 with a message: tests/test_pickers.py.)


def test_an_endpoint_filters_on_some_of_many_agents_added_by_name(page, app):
    """Beyond pickers.INLINE_MAX agents the endpoint form lists only the ticked ones: Add ticks the one typed,
    in place (htmx), or says why it cannot; Save keeps the ticked ones."""
    dashboard = Dashboard(page)
    dashboard.sign_up()
    with app.app_context():
        tenant_id = find_user_by_email("ada@example.com").tenant_id
    with app.app_context(), tenant_scope(tenant_id):
        made = {n: create_agent({"name": f"customer-{n:03}"}).id for n in range(INLINE_MAX + 1)}
        db.session.commit()
    page.goto("/endpoints/new")
    page.get_by_label("URL").fill("http://127.0.0.1:9/crm")
    box, add = page.get_by_role("combobox", name="Add an agent"), page.get_by_role("button", name="Add")
    agents = page.get_by_role("group", name="Agents").get_by_role("checkbox")
    expect(agents).to_have_count(0)

    box.fill("customer-04")
    expect(page.locator("#add_agent-suggestions option")).to_have_count(10, timeout=TIMEOUT)
    add.click()
    expect(page.get_by_role("alert")).to_contain_text("10 agents' names contain 'customer-04'")
    expect(agents).to_have_count(0)

    page.get_by_role("combobox", name="Add an agent").fill("customer-042")
    page.get_by_role("button", name="Add").click()
    expect(agents).to_have_count(1)
    expect(page.get_by_role("checkbox", name="customer-042")).to_be_checked()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_role("combobox", name="Add an agent")).to_have_value("")
    page.get_by_role("combobox", name="Add an agent").fill(made[7])  # an id, as a suggestion puts it
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("checkbox", name="customer-007")).to_be_checked()
    page.get_by_role("combobox", name="Add an agent").fill("customer-042")  # ticked already: it says so
    page.get_by_role("button", name="Add").click()
    note = page.get_by_role("status").filter(has_text="ticked already")
    expect(note).to_have_text("“customer-042” is ticked already.")
    expect(agents).to_have_count(2)

    page.get_by_role("button", name="Save endpoint").click()
    expect(page.locator(".flash-success")).to_contain_text("Endpoint created")
    with app.app_context(), tenant_scope(tenant_id):
        endpoint_id = page.url.rsplit("/", 1)[1]
        assert get_endpoint(endpoint_id).agent_ids == [made[42], made[7]]
