"""Security: headers and cookies, the proxy, rate limits, secrets at rest, recent log-in, the audit log, XSS."""
from __future__ import annotations

import html
import re
import uuid

import pytest
from sqlalchemy import select, text

from webapp import create_app
from webapp.crypto import decrypt
from webapp.extensions import db
from webapp.models import AuditEvent, Endpoint, User
from webapp.security import PAGE_CSP

from .helpers import csrf_token, wait_until

XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{20,}")


def page(response) -> str:
    return response.get_data(as_text=True)


def unique_ip() -> str:
    """An address of this test's own: Redis (and so every rate-limit counter) outlives a test."""
    value = uuid.uuid4().int
    return f"198.18.{value % 250}.{value // 250 % 250 + 1}"


def client_from(app, ip: str | None = None):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip or unique_ip()
    return client


def token(client) -> str:
    """The session's CSRF token, from the overview (logged in) or the log-in page."""
    response = client.get("/")
    return csrf_token(page(response if response.status_code == 200 else client.get("/login")))


def form_post(client, path, data=None, **kwargs):
    """POST a form as the page does, with the session's CSRF token."""
    return client.post(path, data={"csrf_token": token(client), **(data or {})}, **kwargs)


@pytest.fixture
def user(app, signup):
    client = client_from(app)
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    assert signup(client, email=email).status_code == 200
    client.email = email
    return client


def create_endpoint(client, **fields) -> str:
    response = form_post(client, "/endpoints/new", {"url": "http://127.0.0.1:9/hook", "enabled": "y", **fields},
                         follow_redirects=True)
    assert response.status_code == 200, page(response)
    return response.request.path.rsplit("/", 1)[1]


# --- headers and cookies --------------------------------------------------------------------------------

def test_pages_carry_a_strict_csp_and_the_other_security_headers(client):
    response = client.get("/login")
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
                      "frame-ancestors 'none'", "base-uri 'self'", "form-action 'self'"):
        assert directive in PAGE_CSP
    assert "unsafe-inline" not in PAGE_CSP and "unsafe-eval" not in PAGE_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP: HSTS would mean nothing
    for path in ("/no-such-page", "/static/style.css"):
        assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_api_answers_load_nothing_and_hsts_comes_with_https(client, tenant):
    response = tenant.api.get("/api/v1/agents")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    secure = client.get("/login", base_url="https://agenthooks.example")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    agent = tenant.api.post("/api/v1/agents", json={"name": "bot"}).json
    event = tenant.api.post("/api/v1/events", json={"type": "message.sent", "agent_id": agent["id"]})
    for answer in (response, event, secure):  # each header once, whoever set it
        assert all(len(answer.headers.getlist(name)) == 1 for name in answer.headers.keys()), answer.headers
    assert event.headers["X-RateLimit-Limit"].isdigit()  # the API's own count, not Flask-Limiter's


def test_the_limiter_passes_api_requests_by_or_the_app_does_not_start():
    """Flask-Limiter's hooks skip the API (it counts its own); should a version of it hook in otherwise,
    the app refuses to start rather than count events twice or not skip them."""
    from flask import Flask

    from webapp.extensions import limiter_passes_by

    with pytest.raises(RuntimeError, match="Flask-Limiter's three request hooks"):
        limiter_passes_by(Flask("bare"), "api")


def test_htmx_runs_under_the_csp_without_inline_code_or_eval():
    """htmx's own style injection is off, and no template uses a feature that needs eval (hx-on, js: values)."""
    from webapp import ROOT

    base = (ROOT / "templates" / "base.html").read_text()
    assert '"includeIndicatorStyles": false' in base
    for template in (ROOT / "templates").rglob("*.html"):
        source = template.read_text()
        assert not re.search(r"hx-on|hx-vars|js:|javascript:|<script(?![^>]*\bsrc=)", source), template


def test_session_cookie_is_httponly_samesite_and_secure_when_configured(signup):
    for secure in (False, True):
        app = create_app({"TESTING": True, "SESSION_COOKIE_SECURE": secure})
        client = client_from(app)
        base_url = "https://agenthooks.example" if secure else "http://localhost"
        login_page = client.get("/login", base_url=base_url)
        cookie = login_page.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_log_in_starts_a_fresh_session(app, user):
    with user.session_transaction() as session:
        session["planted"] = "by someone else before log-in"
    form_post(user, "/logout")
    response = form_post(user, "/login", {"email": user.email, "password": "correct horse"})
    assert response.status_code == 302
    with user.session_transaction() as session:
        assert "planted" not in session and session["_user_id"]


def test_x_forwarded_headers_count_only_behind_a_configured_proxy(app, signup):
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    direct = client_from(app, "192.0.2.10")
    direct.get("/login", headers=forwarded)
    assert signup(direct, email="direct@example.com").status_code == 200
    response = direct.get("/", headers=forwarded)
    assert "Strict-Transport-Security" not in response.headers
    behind = create_app({"TESTING": True, "PROXY_FIX": 1})
    proxied = client_from(behind, "10.1.2.3")  # Heroku's router
    response = proxied.get("/login", headers=forwarded)
    assert response.headers["Strict-Transport-Security"]
    form_token = csrf_token(page(response))
    # (Over HTTPS, Flask-WTF also wants a Referer of our own.)
    proxied.post("/signup", data={"org": "Behind", "email": "behind@example.com", "password": "correct horse",
                                  "csrf_token": form_token}, headers={**forwarded, "Referer": "https://localhost/signup"})
    with app.app_context():
        from webapp.tenancy import all_tenants

        with all_tenants():
            ips = dict(db.session.execute(select(AuditEvent.actor_label, AuditEvent.ip)).all())
    assert ips == {"direct@example.com": "192.0.2.10", "behind@example.com": "203.0.113.9"}


# --- rate limits ----------------------------------------------------------------------------------------

def _login(client, email, password="wrong password"):
    token = csrf_token(page(client.get("/login")))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def assert_limited(response):
    assert response.status_code == 429
    assert response.headers["Retry-After"].isdigit() and 0 < int(response.headers["Retry-After"]) <= 60
    assert "Too many attempts. Wait" in page(response)


def test_log_in_is_limited_per_account_across_addresses(app):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    email = f"{uuid.uuid4().hex}@example.com"
    statuses = [_login(client_from(app), email).status_code for _ in range(3)]
    assert statuses == [422, 422, 422]
    assert_limited(_login(client_from(app), email))
    assert _login(client_from(app), f"other-{email}").status_code == 422  # another account is not affected


def test_log_in_is_limited_per_address_across_accounts(app):
    app.config["LOGIN_IP_RATE_LIMIT"] = "3 per minute"
    client = client_from(app)
    for _ in range(3):
        assert _login(client, f"{uuid.uuid4().hex}@example.com").status_code == 422
    assert_limited(_login(client, f"{uuid.uuid4().hex}@example.com"))
    assert client.get("/login").status_code == 200  # looking at the form costs nothing


def test_sign_up_is_limited_per_address(app, signup):
    app.config["SIGNUP_RATE_LIMIT"] = "2 per minute"
    client = client_from(app)
    for n in range(2):
        with client.session_transaction() as session:
            session.clear()  # log the new user out again
        assert signup(client, email=f"{uuid.uuid4().hex}@example.com").status_code == 200
    with client.session_transaction() as session:
        session.clear()
    token = csrf_token(page(client.get("/signup")))
    assert_limited(client.post("/signup", data={"org": "Spam", "email": "spam@example.com", "password": "x" * 12,
                                                "csrf_token": token}))


def test_limits_recover_after_their_window(app, tenant):
    app.config["LOGIN_RATE_LIMIT"] = "2 per 2 seconds"
    email = f"{uuid.uuid4().hex}@example.com"
    for _ in range(2):
        _login(client_from(app), email)
    assert _login(client_from(app), email).status_code == 429
    wait_until(lambda: _login(client_from(app), email).status_code == 422, timeout=6, interval=0.5,
               message="the log-in limit to recover")

    app.config["INGEST_RATE_LIMIT"] = "2 per 2 seconds"
    agent = tenant.api.post("/api/v1/agents", json={"name": "bot"}).json
    body = {"type": "message.sent", "agent_id": agent["id"]}
    for _ in range(3):
        tenant.api.post("/api/v1/events", json=body)
    limited = tenant.api.post("/api/v1/events", json=body)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) <= 2
    wait_until(lambda: tenant.api.post("/api/v1/events", json=body).status_code == 202, timeout=6, interval=0.5,
               message="the ingest limit to recover")


# --- secrets at rest ------------------------------------------------------------------------------------

def _raw(app, statement: str, **params):
    with app.app_context():
        return db.session.execute(text(statement), params).all()


def test_secrets_keys_and_passwords_are_never_stored_in_plain(app, tenant):
    endpoint = tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/hook"}).json
    secret = tenant.api.get(f"/api/v1/endpoints/{endpoint['id']}/secret").json["secret"]
    stored = _raw(app, "SELECT secret_encrypted FROM endpoints WHERE id = :id", id=endpoint["id"])[0][0]
    assert secret not in stored and secret.removeprefix("whsec_") not in stored and stored.startswith("gAAAA")
    keys = _raw(app, "SELECT prefix, key_hash FROM api_keys")
    assert all(tenant.api_key not in value for row in keys for value in row)
    passwords = [row[0] for row in _raw(app, "SELECT password_hash FROM users")]
    assert passwords and all(p.startswith("scrypt:") and "correct horse" not in p for p in passwords)


def test_encryption_key_rotation_and_reencrypt(app, tenant):
    endpoint_id = tenant.api.post("/api/v1/endpoints", json={"url": "https://example.com/hook"}).json["id"]
    secret = tenant.api.get(f"/api/v1/endpoints/{endpoint_id}/secret").json["secret"]
    rotated_from = tenant.api.post(f"/api/v1/endpoints/{endpoint_id}/secret/rotate").json["secret"]

    def reconfigure(**config):
        app.config.update(config)
        app.extensions.pop("agenthooks_fernet", None)

    # A separate ENCRYPTION_KEY, with the key that encrypted so far (SECRET_KEY) listed as old: still readable.
    reconfigure(ENCRYPTION_KEY="a-new-encryption-key-of-some-length", ENCRYPTION_KEYS_OLD=[app.config["SECRET_KEY"]])
    assert tenant.api.get(f"/api/v1/endpoints/{endpoint_id}/secret").json["secret"] == rotated_from
    result = app.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code == 0 and "Re-encrypted the signing secrets of 1 endpoint" in result.output
    # The old key can go now, and SECRET_KEY no longer matters to the stored secrets.
    reconfigure(ENCRYPTION_KEYS_OLD=[], SECRET_KEY="a-rotated-session-key")
    assert tenant.api.get(f"/api/v1/endpoints/{endpoint_id}/secret").json["secret"] == rotated_from
    with tenant.scope():
        endpoint = db.session.scalars(select(Endpoint)).one()
        assert decrypt(endpoint.previous_secret_encrypted) == secret  # the 24-hour overlap survives too
    # Without the key that encrypted them, secrets cannot be read: the CLI says so and changes nothing.
    reconfigure(ENCRYPTION_KEY="yet-another-key")
    result = app.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code != 0 and "cannot be decrypted with any configured key" in result.output


def test_api_keys_are_compared_in_constant_time():
    from webapp.crypto import api_key_matches, hash_api_key

    assert api_key_matches(hash_api_key("ahk_one"), "ahk_one")
    assert not api_key_matches(hash_api_key("ahk_one"), "ahk_two")


# --- a recent log-in before a secret is shown -----------------------------------------------------------

def _age_login(client, seconds: int) -> None:
    with client.session_transaction() as session:
        session["authenticated_at"] -= seconds


def test_revealing_a_secret_asks_for_the_password_after_ten_minutes(app, user):
    endpoint_id = create_endpoint(user)
    assert SECRET.search(page(user.get(f"/endpoints/{endpoint_id}/secret", headers={"HX-Request": "true"})))
    _age_login(user, 601)

    target = f"/endpoints/{endpoint_id}/secret"
    response = user.get(target, headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"] == f"/login/confirm?next=/endpoints/{endpoint_id}/secret"
    assert not SECRET.search(page(response))
    response = user.get(target)
    assert response.status_code == 302 and response.location.startswith("/login/confirm?next=")
    for path in (f"/endpoints/{endpoint_id}/rotate",):
        assert user.get(path).status_code == 302
        assert form_post(user, path).status_code == 302

    confirm = response.location
    form = page(user.get(confirm))
    assert "Confirm your password" in form and user.email in form
    wrong = user.post(confirm, data={"password": "not it", "csrf_token": csrf_token(form)})
    assert wrong.status_code == 422 and "Password is not correct" in page(wrong)
    right = user.post(confirm, data={"password": "correct horse", "csrf_token": csrf_token(form)},
                      follow_redirects=True)
    assert right.request.path == target and SECRET.search(page(right))


def test_confirming_the_password_is_rate_limited_and_needs_csrf(app, user):
    assert user.post("/login/confirm", data={"password": "correct horse"}).status_code == 400
    app.config["LOGIN_RATE_LIMIT"] = "2 per minute"
    for _ in range(2):
        form_post(user, "/login/confirm", {"password": "wrong"})
    assert_limited(form_post(user, "/login/confirm", {"password": "wrong"}))


# --- the audit log --------------------------------------------------------------------------------------

def test_the_audit_log_records_who_did_what_from_where(app, user, make_tenant):
    # Through the pages (as the user)...
    endpoint_id = create_endpoint(user, description="first")
    form_post(user, f"/endpoints/{endpoint_id}/edit", {"url": "http://127.0.0.1:9/moved", "enabled": "y"})
    user.get(f"/endpoints/{endpoint_id}/secret", headers={"HX-Request": "true"})
    form_post(user, f"/endpoints/{endpoint_id}/rotate")
    form_post(user, "/keys", {"name": "ci"})
    key_id = re.search(r"key_[0-9a-z]{26}", page(user.get("/keys"))).group()
    form_post(user, f"/keys/{key_id}/revoke")
    agent_page = form_post(user, "/agents/new", {"name": "Support bot"}, follow_redirects=True)
    agent_id = re.search(r"agt_[0-9a-z]{26}", page(agent_page)).group()
    form_post(user, f"/agents/{agent_id}/delete")
    form_post(user, f"/endpoints/{endpoint_id}/delete")

    audit = page(user.get("/audit"))
    rows = re.findall(r'<tr id="aud_[0-9a-z]+">(.*?)</tr>', audit, re.S)
    actions = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", row)).strip() for row in rows]
    expected = ["deleted endpoint", "deleted agent", "created agent", "revoked API key", "created API key",
                "rotated the signing secret of endpoint", "revealed the signing secret of endpoint",
                "changed endpoint", "created endpoint", "logged in"]
    assert [next(a for a in expected if a in row) for row in actions] == expected  # newest first
    assert all(user.email in row for row in actions)
    assert all(user.environ_base["REMOTE_ADDR"] in row for row in actions)
    assert "http://127.0.0.1:9/hook" in audit and "http://127.0.0.1:9/moved" in audit
    assert "whsec_" not in audit

    # ...and through the API (as the key), for another tenant, whose log is its own.
    other = make_tenant("Other")
    endpoint = other.api.post("/api/v1/endpoints", json={"url": "https://example.com/hook"}).json
    other.api.get(f"/api/v1/endpoints/{endpoint['id']}/secret")
    other.api.patch(f"/api/v1/endpoints/{endpoint['id']}", json={"enabled": False})
    with other.scope():
        events = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [e.action for e in events] == ["api_key.created", "endpoint.created", "endpoint.secret_revealed",
                                          "endpoint.updated"]
    assert events[1].actor_label.startswith("API key “test” (ahk_") and events[1].actor_api_key_id
    assert events[0].actor_label == "operator (command line)"  # the fixture made the key as the CLI does
    assert events[3].details["changed"] == ["enabled"] and events[3].details["enabled"] is False
    assert endpoint["id"] not in page(user.get("/audit"))


def test_the_audit_log_pages_newest_first(app, user):
    for n in range(55):
        form_post(user, "/agents/new", {"name": f"agent {n:02d}"})
    first = page(user.get("/audit"))
    assert "agent 54" in first and "agent 04" not in first
    older = re.search(r'href="(/audit\?cursor=[^"]+)"', first).group(1)
    second = page(user.get(html.unescape(older)))
    assert "agent 04" in second and "agent 54" not in second and "logged in" in second
    assert 'href="/audit">Newest</a>' in second and 'href="/audit">Newest</a>' not in first
    # A cursor we did not hand out lands on the newest changes, saying so, as the other lists do.
    response = user.get("/audit?cursor=not-a-cursor", follow_redirects=True)
    assert response.request.path == "/audit" and "That page of the audit log does not exist" in page(response)
    assert "agent 54" in page(response)


# --- XSS ------------------------------------------------------------------------------------------------

def test_stored_payloads_render_as_text_on_every_page(app, user):
    agent_page = form_post(user, "/agents/new", {"name": XSS, "description": XSS}, follow_redirects=True)
    agent_id = re.search(r"agt_[0-9a-z]{26}", page(agent_page)).group()
    endpoint_id = create_endpoint(user, description=XSS)
    form_post(user, "/keys", {"name": XSS})
    form_post(user, "/event-types", {"name": "order.shipped", "description": XSS})
    test = form_post(user, f"/endpoints/{endpoint_id}/test", follow_redirects=True)
    delivery_id = re.search(r"dlv_[0-9a-z]{26}", page(test)).group()
    with app.app_context():
        from webapp.tenancy import all_tenants

        with all_tenants():
            tenant_id = db.session.scalars(select(User.tenant_id).where(User.email == user.email)).one()
    # An event whose payload is all markup, sent through the API by the agent.
    from webapp.services.api_keys import create_key
    from webapp.tenancy import tenant_scope

    with app.app_context(), tenant_scope(tenant_id):
        _, key = create_key(XSS)
        db.session.commit()
    event = app.test_client().post("/api/v1/events", headers={"Authorization": f"Bearer {key}"}, json={
        "type": "message.received", "agent_id": agent_id, "conversation_id": XSS,
        "user": {"name": XSS, "id": XSS}, "data": {"text": XSS, XSS: [XSS]}}).json
    assert event.get("deliveries") == 1, event
    event_delivery = app.test_client().get(f"/api/v1/events/{event['id']}",
                                           headers={"Authorization": f"Bearer {key}"}).json["deliveries"][0]["id"]

    pages = ["/", "/agents", f"/agents/{agent_id}/edit", "/endpoints", f"/endpoints/{endpoint_id}",
             f"/endpoints/{endpoint_id}/edit", "/deliveries", f"/deliveries/{delivery_id}",
             f"/deliveries/{event_delivery}", "/keys", "/event-types", "/audit"]
    for path in pages:
        body = page(user.get(path))
        assert "<script>alert" not in body and "<img src=x" not in body, path
    detail = page(user.get(f"/deliveries/{event_delivery}"))
    assert "&lt;script&gt;" in detail or "\\u003cscript" in detail


def test_reflected_input_renders_as_text(user, client):
    probes = ["/deliveries?event_type=" + XSS, "/deliveries?status=" + XSS, "/deliveries?agent_id=" + XSS,
              "/audit?cursor=" + XSS, "/endpoints/" + XSS, "/agents/" + XSS + "/edit", "/no-such/" + XSS]
    for path in probes:
        body = page(user.get(path))
        assert "<script>alert" not in body and "<img src=x" not in body, path
    for path in ("/login?next=" + XSS, "/signup?next=" + XSS, "/login?next=javascript:alert(1)"):
        body = page(client.get(path))
        assert "<script>alert" not in body and "javascript:alert" not in body, path
