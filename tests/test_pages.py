"""The dashboard pages, driven through the real forms (CSRF and all) as a user in a browser would."""
from __future__ import annotations

import html
import json
import re

import pytest
from .helpers import csrf_token

AGENT_ID = re.compile(r"agt_[0-9a-z]{26}")
ENDPOINT_ID = re.compile(r"ep_[0-9a-z]{26}")
DELIVERY_ID = re.compile(r"dlv_[0-9a-z]{26}")
KEY_ID = re.compile(r"key_[0-9a-z]{26}")
TYPE_ID = re.compile(r"etp_[0-9a-z]{26}")
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{20,}")
API_KEY = re.compile(r"ahk_[A-Za-z0-9_-]{32,}")
HOOK_URL = "http://127.0.0.1:9/hook"  # nothing listens there; deliveries are only queued in these tests
CUSTOM_TYPE = "order.shipped"


@pytest.fixture
def user(client, signup):
    """A client logged in as a fresh tenant's first user."""
    response = signup(client)
    assert response.status_code == 200, text(response)
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def token(client, path="/") -> str:
    return csrf_token(text(client.get(path)))


def post(client, path, data=None, *, htmx=False, follow=True):
    """POST a form the way the page does: with the session's CSRF token (and as htmx when asked)."""
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(path, data={"csrf_token": token(client), **(data or {})}, headers=headers,
                       follow_redirects=follow)


def create_agent(client, name="Support bot", description="Answers tickets") -> str:
    response = post(client, "/agents/new", {"name": name, "description": description})
    assert response.status_code == 200, text(response)
    return AGENT_ID.search(text(response)).group()


def create_endpoint(client, url=HOOK_URL, **fields) -> str:
    response = post(client, "/endpoints/new", {"url": url, "enabled": "y", **fields})
    assert response.status_code == 200, text(response)
    assert response.request.path.startswith("/endpoints/ep_") and "Endpoint created." in text(response)
    return response.request.path.rsplit("/", 1)[1]


def reveal(client, endpoint_id) -> str:
    response = client.get(f"/endpoints/{endpoint_id}/secret", headers={"HX-Request": "true"})
    return SECRET.search(text(response)).group()


def send_test_event(client, endpoint_id) -> str:
    response = post(client, f"/endpoints/{endpoint_id}/test")
    assert "Sent a webhook.test event" in text(response)
    return DELIVERY_ID.search(text(response)).group()


def one_of_everything(client) -> dict:
    """One of everything in the logged-in owner's tenant, made through the pages, and the ids the
    dashboard's routes take (``user_id`` is the owner's; the custom type is CUSTOM_TYPE)."""
    ids = {"agent_id": create_agent(client), "endpoint_id": create_endpoint(client)}
    ids["delivery_id"] = send_test_event(client, ids["endpoint_id"])
    post(client, "/keys", {"name": "owner's"})
    ids["key_id"] = KEY_ID.search(text(client.get("/keys"))).group()
    post(client, "/event-types", {"name": CUSTOM_TYPE})
    ids["type_id"] = TYPE_ID.search(text(client.get("/event-types"))).group()
    post(client, "/team/invitations", {"email": "pending@example.com", "role": "viewer"})
    team_page = text(client.get("/team"))
    ids["invitation_id"] = re.search(r"inv_[0-9a-z]{26}", team_page).group()
    ids["user_id"] = re.search(r"usr_[0-9a-z]{26}", team_page).group()
    return ids


def dashboard_rules(app):
    """Every dashboard route (not the API, not static files) with its methods."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("api."):
            continue
        yield rule, sorted(rule.methods - {"HEAD", "OPTIONS"})


# Sign-up, log-in, log-out

def test_sign_up_lands_on_the_overview_of_the_new_organization(client, signup):
    page = signup(client, org="Acme Robotics")
    assert page.status_code == 200 and page.request.path == "/"
    body = text(page)
    assert "<h1>Acme Robotics</h1>" in body
    assert "Send your first event" in body
    assert "http://localhost/api/v1/events" in body
    assert "Create an API key" in body and "Register an agent" in body
    # curl and Python, each with a copy button, and a placeholder that says what to do first.
    assert 'id="snippet-curl"' in body and 'id="snippet-python"' in body
    assert body.count('data-copy-target="#snippet-') == 2
    assert body.count('"agent_id": "&lt;create an agent first&gt;"') == 2
    assert "import requests" in body and "requests.post(" in body and "No deliveries in the last 24 hours" in body


def test_sign_up_form_has_the_labelled_fields(client):
    body = text(client.get("/signup"))
    for label in ("Organization", "Email", "Password"):
        assert f">{label}</label>" in body
    assert 'value="Sign up"' in body
    body = text(client.get("/login"))
    assert ">Email</label>" in body and ">Password</label>" in body and 'value="Log in"' in body


def test_log_out_then_a_wrong_password_or_email_gets_one_message(user):
    response = post(user, "/logout")
    assert response.request.path == "/login" and "You are logged out." in text(response)
    assert user.get("/").status_code == 302

    login_token = token(user, "/login")
    for email, password in (("ada@example.com", "wrong horse"), ("nobody@example.com", "correct horse")):
        response = user.post("/login", data={"email": email, "password": password, "csrf_token": login_token})
        assert response.status_code == 422
        assert "Invalid email or password." in text(response)

    response = user.post("/login", data={"email": "ADA@example.com", "password": "correct horse",
                                         "csrf_token": login_token}, follow_redirects=True)
    assert response.request.path == "/" and "<h1>Acme</h1>" in text(response)
    # The session was renewed at log-in: the token from before no longer works.
    assert user.post("/logout", data={"csrf_token": login_token}).status_code == 400


def test_duplicate_email_shows_the_error_on_the_email_field(client, signup):
    signup(client)
    post(client, "/logout")
    response = signup(client, org="Other", email="Ada@Example.com")
    assert response.status_code == 422
    assert re.search(r'id="email-error">An account with this email already exists<', text(response))


def test_sign_up_errors_land_on_their_fields(client, signup):
    response = signup(client, org="Acme", email="not-an-email", password="correct horse")
    assert response.status_code == 422 and 'id="email-error">Email is not a valid email address<' in text(response)
    response = signup(client, org="Acme", email="ada@example.com", password="short")
    assert response.status_code == 422 and "Password must be at least 8 characters" in text(response)


def test_log_in_returns_to_the_page_asked_for_and_only_to_ours(client, signup):
    signup(client)
    post(client, "/logout")
    response = client.get("/agents")
    assert response.status_code == 302 and response.location == "/login?next=%2Fagents"
    login_token = token(client, "/login")
    credentials = {"email": "ada@example.com", "password": "correct horse", "csrf_token": login_token}
    response = client.post("/login?next=%2Fagents", data=credentials)
    assert response.location == "/agents"
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        post(client, "/logout")
        credentials["csrf_token"] = token(client, "/login")
        response = client.post("/login", query_string={"next": target}, data=credentials)
        assert response.location == "/", target


def test_logged_in_users_are_sent_from_log_in_and_sign_up_to_the_overview(user):
    for path in ("/login", "/signup"):
        response = user.get(path)
        assert response.status_code == 302 and response.location == "/"


def test_anonymous_users_are_redirected_to_log_in(app, client):
    login_token = token(client, "/login")
    checked = 0
    for rule, methods in dashboard_rules(app):
        if rule.endpoint.startswith("auth."):
            continue
        path = re.sub(r"<(\w+:)?(\w+)>", "x_1", rule.rule)
        for method in methods:
            response = client.open(path, method=method, data={"csrf_token": login_token})
            assert response.status_code == 302, (method, path)
            assert response.location.startswith("/login?next="), (method, path)
            checked += 1
    assert checked >= 25


def test_error_pages_render_for_anonymous_users(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = text(response)
    assert "AgentHooks" in body and "Back to the dashboard" in body and "Log out" not in body


# Agents

def test_create_edit_and_delete_an_agent(user):
    response = post(user, "/agents/new", {"name": "Support bot", "description": "Answers tickets"})
    assert response.request.path == "/agents"
    body = text(response)
    agent_id = AGENT_ID.search(body).group()
    assert "Support bot" in body and "Answers tickets" in body and f"Its id is {agent_id}" in body

    assert 'value="Support bot"' in text(user.get(f"/agents/{agent_id}/edit"))
    response = post(user, f"/agents/{agent_id}/edit", {"name": "Sales bot", "description": ""})
    assert "Sales bot" in text(response) and "Support bot" not in text(response)

    response = post(user, f"/agents/{agent_id}/delete", htmx=True)
    assert response.status_code == 200 and text(response) == ""  # the row is swapped away
    assert "No agents yet." in text(user.get("/agents"))
    assert user.get(f"/agents/{agent_id}/edit").status_code == 404


def test_agent_delete_without_htmx_redirects_with_a_message(user):
    agent_id = create_agent(user)
    response = post(user, f"/agents/{agent_id}/delete")
    assert response.request.path == "/agents" and "Agent “Support bot” deleted." in text(response)


def test_agent_delete_asks_for_confirmation(user):
    create_agent(user)
    body = text(user.get("/agents"))
    assert 'hx-confirm="Delete the agent “Support bot”?' in body and 'hx-target="closest tr"' in body


def test_agent_without_a_name_is_refused_on_the_name_field(user):
    response = post(user, "/agents/new", {"name": "   ", "description": "x"})
    assert response.status_code == 422 and 'id="name-error">Name may not be blank<' in text(response)
    response = post(user, "/agents/new", {"description": "x"})
    assert response.status_code == 422 and "Name is required" in text(response)


def test_agent_names_are_escaped(user):
    create_agent(user, name="<script>alert(1)</script>", description="<b>bold</b>")
    for path in ("/agents", "/endpoints/new", "/", "/deliveries"):
        body = text(user.get(path))
        assert "<script>alert(1)" not in body and "<b>bold" not in body, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text(user.get("/agents"))


# Endpoints

def test_create_an_endpoint_and_reveal_its_secret(user):
    page = text(user.get("/endpoints/new"))
    assert 'value="message.received"' in page and "webhook.test" not in page
    endpoint_id = create_endpoint(user, event_types=["message.received", "tool.executed"],
                                  description="Billing receiver")
    detail = text(user.get(f"/endpoints/{endpoint_id}"))
    assert HOOK_URL in detail and "Billing receiver" in detail
    assert "<code>message.received</code>, <code>tool.executed</code>" in detail
    assert not SECRET.search(detail)
    assert re.search(rf'<form method="get" action="/endpoints/{endpoint_id}/secret"\s+hx-get="/endpoints/{endpoint_id}/secret" '
                     r'hx-target="#secret" hx-swap="outerHTML">\s*<button type="submit" class="secondary">Reveal</button>', detail)

    fragment = user.get(f"/endpoints/{endpoint_id}/secret", headers={"HX-Request": "true"})
    assert fragment.headers["Cache-Control"] == "no-store"
    assert "<html" not in text(fragment) and 'id="secret"' in text(fragment)
    secret = SECRET.search(text(fragment)).group()
    # Without htmx, the same URL is the whole page with the secret shown.
    page = user.get(f"/endpoints/{endpoint_id}/secret")
    assert "<html" in text(page) and secret in text(page)
    listing = text(user.get("/endpoints"))
    assert HOOK_URL in listing and "no deliveries yet" in listing and "Success (24 h)" in listing


def test_rotating_the_secret_asks_first_and_shows_the_new_one(user):
    endpoint_id = create_endpoint(user)
    old = reveal(user, endpoint_id)
    confirm = text(user.get(f"/endpoints/{endpoint_id}/rotate"))
    assert "24 hours" in confirm and old not in confirm
    response = post(user, f"/endpoints/{endpoint_id}/rotate")
    assert response.headers["Cache-Control"] == "no-store"
    new = SECRET.search(text(response)).group()
    assert new != old and "24 hours" in text(response)
    assert reveal(user, endpoint_id) == new


def test_endpoint_errors_land_on_their_fields(user):
    response = post(user, "/endpoints/new", {"url": "ftp://example.com/hook"})
    assert response.status_code == 422
    assert 'id="url-error">URL must start with http:// or https://<' in text(response)
    endpoint_id = create_endpoint(user)
    response = post(user, f"/endpoints/{endpoint_id}/edit", {"url": HOOK_URL, "event_types": ["no.such_type"]})
    assert response.status_code == 422 and "Event types unknown event type" in text(response)


def test_edit_subscriptions_disable_and_enable_an_endpoint(user):
    agent_id = create_agent(user, name="Sales bot")
    endpoint_id = create_endpoint(user)
    form = text(user.get(f"/endpoints/{endpoint_id}/edit"))
    assert f'value="{agent_id}"' in form and "Sales bot" in form
    response = post(user, f"/endpoints/{endpoint_id}/edit", {
        "url": "http://127.0.0.1:9/other", "description": "", "event_types": ["error.occurred"],
        "agent_ids": [agent_id]})  # "enabled" unchecked
    body = text(response)
    assert response.request.path == f"/endpoints/{endpoint_id}" and "Endpoint saved." in body
    assert "http://127.0.0.1:9/other" in body and "<code>error.occurred</code>" in body and "Sales bot" in body
    assert "disabled" in body and "Disabled by a user." in body
    assert "Disabled by a user." in text(user.get("/endpoints")) and "Sales bot" in text(user.get("/endpoints"))

    response = post(user, f"/endpoints/{endpoint_id}/enable")
    assert "Endpoint enabled" in text(response) and "Disabled by a user." not in text(response)


def test_delete_an_endpoint(user):
    endpoint_id = create_endpoint(user)
    response = post(user, f"/endpoints/{endpoint_id}/delete", htmx=True, follow=False)
    assert response.headers["HX-Redirect"] == "/endpoints"
    assert "No endpoints yet." in text(user.get("/endpoints"))
    assert user.get(f"/endpoints/{endpoint_id}").status_code == 404


# Deliveries

def test_a_test_event_shows_in_the_delivery_log_and_its_detail(user):
    endpoint_id = create_endpoint(user)
    delivery_id = send_test_event(user, endpoint_id)

    log = text(user.get("/deliveries"))
    assert delivery_id in log and "<code>webhook.test</code>" in log and HOOK_URL in log
    # pending, or retrying/failed if a worker (another test module's) got to it: nothing listens on HOOK_URL
    assert re.search(r'class="status status-(pending|retrying|failed)">\1<', log)
    assert re.search(r'<p id="delivery-live" class="live" data-live-log="delivery-rows" hx-get="/deliveries\?since=[^"]+" '
                     r'hx-trigger="every 3s, refresh" hx-swap="none">', log)

    detail = text(user.get(f"/deliveries/{delivery_id}"))
    assert "This is a test event from AgentHooks." in detail and "&#34;type&#34;: &#34;webhook.test&#34;" in detail
    assert HOOK_URL in detail


def test_resend_swaps_the_row_or_redirects(user):
    delivery_id = send_test_event(user, create_endpoint(user))
    response = post(user, f"/deliveries/{delivery_id}/resend", htmx=True)
    assert re.match(rf'<tr id="{delivery_id}" data-version="\d+"', text(response)) and "<html" not in text(response)
    assert "resend queued" in text(response) and f'id="resend-{delivery_id}"' in text(response)
    assert "Resend queued" in response.headers["HX-Trigger"]
    response = post(user, f"/deliveries/{delivery_id}/resend")
    assert response.request.path == f"/deliveries/{delivery_id}" and "Resend queued" in text(response)


def test_the_log_filters_and_polls_with_its_filters(user):
    endpoint_id = create_endpoint(user)
    delivery_id = send_test_event(user, endpoint_id)
    assert delivery_id not in text(user.get("/deliveries?status=succeeded"))
    assert delivery_id in text(user.get(f"/deliveries?event_type=webhook.test&endpoint_id={endpoint_id}"))
    assert delivery_id not in text(user.get("/deliveries?event_type=message.sent"))
    assert "No deliveries match these filters." in text(user.get("/deliveries?event_type=message.sent"))

    page = text(user.get("/deliveries?event_type=webhook.test"))
    poll = html.unescape(re.search(r'id="delivery-live"[^>]*hx-get="([^"]+)"', page).group(1))
    assert poll.startswith("/deliveries?event_type=webhook.test&since=")

    response = user.get("/deliveries?status=bogus")
    assert response.status_code == 422 and "Status must be one of" in text(response)
    assert "delivery-live" not in text(response)
    assert user.get("/deliveries?cursor=%%%").status_code == 422


def test_an_event_sent_as_the_overview_says_arrives_and_its_payload_is_escaped(user):
    agent_id = create_agent(user)
    create_endpoint(user)
    api_key = API_KEY.search(text(post(user, "/keys", {"name": "agent"}))).group()
    overview = text(user.get("/"))
    assert overview.count(f'"agent_id": "{agent_id}"') == 2  # curl and Python
    assert "create an agent first" not in overview

    response = user.post("/api/v1/events", headers={"Authorization": f"Bearer {api_key}"},
                         json={"type": "message.received", "agent_id": agent_id,
                               "data": {"text": "<img src=x onerror=alert(1)>"}})
    assert response.status_code == 202 and response.json["deliveries"] == 1
    log = text(user.get(f"/deliveries?agent_id={agent_id}"))
    delivery_id = DELIVERY_ID.search(log).group()
    detail = text(user.get(f"/deliveries/{delivery_id}"))
    assert "<img src=x" not in detail and "&lt;img src=x onerror=alert(1)&gt;" in detail
    assert html.unescape(detail).count(agent_id) >= 2


# API keys

def test_a_new_key_is_shown_once_then_only_its_prefix(user):
    response = post(user, "/keys", {"name": "Production agent"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = text(response)
    plaintext = API_KEY.search(body).group()
    assert "won't be shown again" in html.unescape(body)

    listing = text(user.get("/keys"))
    assert plaintext not in listing and f"{plaintext[:12]}…" in listing and "Production agent" in listing
    assert not API_KEY.search(listing)


def test_revoke_a_key(user):
    api_key = API_KEY.search(text(post(user, "/keys", {"name": "old"}))).group()
    key_id = KEY_ID.search(text(user.get("/keys"))).group()
    assert user.get("/api/v1/agents", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200

    response = post(user, f"/keys/{key_id}/revoke")
    assert response.request.path == "/keys" and "Key “old” revoked." in text(response)
    assert f'<tr id="{key_id}" class="revoked">' in text(response)
    assert user.get("/api/v1/agents", headers={"Authorization": f"Bearer {api_key}"}).status_code == 401


def test_htmx_requests_carry_the_csrf_token_in_a_header(user):
    post(user, "/keys", {"name": "ci"})
    key_id = KEY_ID.search(text(user.get("/keys"))).group()
    page = text(user.get("/keys"))
    header_token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert f'hx-headers=\'{{"X-CSRFToken": "{header_token}"}}\'' in page
    response = user.post(f"/keys/{key_id}/revoke", headers={"HX-Request": "true", "X-CSRFToken": header_token})
    assert response.status_code == 200 and text(response).startswith(f'<tr id="{key_id}" class="revoked">')
    assert json.loads(response.headers["HX-Trigger"]) == {"toast": "Key “ci” revoked."}


# Event types

def test_add_and_delete_a_custom_event_type(user):
    page = text(user.get("/event-types"))
    assert "<code>conversation.started</code>" in page and "&#34;conversation_id&#34;: &#34;conv-42&#34;" in page

    response = post(user, "/event-types", {"name": "order.shipped", "description": "An order left the warehouse"})
    assert response.request.path == "/event-types" and "Event type order.shipped added" in text(response)
    assert 'value="order.shipped"' in text(user.get("/endpoints/new"))

    for name, message in (("Order Shipped", "Name must be dotted lower-case words"),
                          ("message.sent", "Name is a built-in event type"),
                          ("order.shipped", "Name already exists")):
        response = post(user, "/event-types", {"name": name})
        assert response.status_code == 422 and message in text(response), name

    type_id = TYPE_ID.search(text(user.get("/event-types"))).group()
    assert text(post(user, f"/event-types/{type_id}/delete", htmx=True)) == ""
    assert "<code>order.shipped</code>" not in text(user.get("/event-types"))


def test_pages_carry_no_inline_script_style_or_handler(user):
    """A strict Content-Security-Policy (no 'unsafe-inline') must not break any page."""
    agent_id = create_agent(user)
    endpoint_id = create_endpoint(user, agent_ids=[agent_id])
    delivery_id = send_test_event(user, endpoint_id)
    post(user, "/keys", {"name": "ci"})
    pages = ["/", "/agents", f"/agents/{agent_id}/edit", "/endpoints", "/endpoints/new", f"/endpoints/{endpoint_id}",
             f"/endpoints/{endpoint_id}/edit", f"/endpoints/{endpoint_id}/rotate", f"/endpoints/{endpoint_id}/secret",
             "/deliveries", f"/deliveries/{delivery_id}", "/keys", "/event-types", "/no-such-page"]
    for path in pages:
        body = text(user.get(path))
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), path
        assert not re.search(r"\s(on[a-z]+|style)\s*=", body), path
        for url in re.findall(r'(?:src|href)="([^"]*)"', body):  # no CDN: everything is served by us
            assert url.startswith(("/", "#")) and not url.startswith("//"), (path, url)
    post(user, "/logout")
    for path in ("/login", "/signup"):
        assert '<script src="/static/htmx.min.js" defer></script>' in text(user.get(path))


# CSRF and tenancy

def test_every_post_route_refuses_a_request_without_the_csrf_token(app, user):
    checked = 0
    for rule, methods in dashboard_rules(app):
        if "POST" in methods:
            path = re.sub(r"<(\w+:)?(\w+)>", "x_1", rule.rule)
            for headers in ({}, {"HX-Request": "true"}):
                response = user.post(path, headers=headers)
                assert response.status_code == 400, path
                assert "CSRF" in text(response)
            checked += 1
    assert checked >= 15


def test_another_tenant_gets_404_on_every_page_and_action(app, client, signup):
    owner = client
    signup(owner)
    ids = one_of_everything(owner)

    intruder = app.test_client()
    signup(intruder, org="Intruder", email="eve@example.com")
    intruder_token = token(intruder)
    checked = 0
    for rule, methods in dashboard_rules(app):
        if not rule.arguments or rule.endpoint.startswith("auth."):
            continue  # auth.* take no tenant's id: an invitation link is a bearer token (tests/test_teams.py)
        path = rule.rule
        for name in rule.arguments:  # a KeyError here means a new kind of id: add it above
            path = path.replace(f"<{name}>", ids[name])
        for method in methods:
            for headers in ({}, {"HX-Request": "true"}):
                response = intruder.open(path, method=method, data={"csrf_token": intruder_token}, headers=headers)
                assert response.status_code == 404, (method, path, headers)
            checked += 1
    assert checked >= 15

    # Nothing of the owner's changed.
    assert f'<tr id="{ids["key_id"]}">' in text(owner.get("/keys"))
    assert ids["agent_id"] in text(owner.get("/agents"))
    assert "order.shipped" in text(owner.get("/event-types"))
    assert owner.get(f"/endpoints/{ids['endpoint_id']}").status_code == 200
    assert owner.get(f"/deliveries/{ids['delivery_id']}").status_code == 200
    assert ids["invitation_id"] in text(owner.get("/team")) and "owner" in text(owner.get("/team"))
    # And the intruder's own pages show none of it.
    for path in ("/", "/agents", "/endpoints", "/deliveries", "/keys", "/event-types", "/team"):
        body = text(intruder.get(path))
        assert not any(value in body for value in ids.values()) and HOOK_URL not in body, path


def test_an_expired_session_sends_htmx_requests_to_log_in_instead_of_swapping_it_in(client):
    response = client.get("/deliveries", headers={"HX-Request": "true", "HX-Target": "delivery-rows"})
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login?next=")
    assert response.get_data() == b""
