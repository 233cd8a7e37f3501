"""Teams: invitations by email link (a real SMTP server on 127.0.0.1, or the log), and the roles owner, admin
and viewer enforced on every dashboard route, generated from the URL map so a new route cannot escape."""
from __future__ import annotations

import logging
import re
import socket
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from webapp.extensions import db
from webapp.models import Agent, ApiKey, Endpoint, EventType, Invitation, User, utcnow
from webapp.tenancy import all_tenants

from .test_pages import (CUSTOM_TYPE, DELIVERY_ID, create_endpoint, one_of_everything, post, send_test_event, text,
                         token)

LINK = re.compile(r"http://localhost/invitations/[A-Za-z0-9_-]{40,}")
USER_ID = re.compile(r"usr_[0-9a-z]{26}")
INVITATION_ID = re.compile(r"inv_[0-9a-z]{26}")


@pytest.fixture
def owner(client, signup):
    assert signup(client).status_code == 200
    return client


def invite(owner, email, role) -> str:
    """Invite through the Team page with no mail server: the page shows the link once."""
    response = post(owner, "/team/invitations", {"email": email, "role": role})
    assert response.status_code == 200, text(response)
    assert f"No email was sent to {email.lower()}" in text(response)
    return LINK.search(text(response)).group()


def accept(app, link, password="battery staple"):
    """A new browser follows the link and chooses a password; returns it, logged in."""
    browser = app.test_client()
    path = link.removeprefix("http://localhost")
    page = browser.get(path)
    assert page.status_code == 200, text(page)
    response = browser.post(path, data={"password": password, "csrf_token": token(browser, path)},
                            follow_redirects=True)
    assert response.request.path == "/", text(response)
    return browser


def join(app, owner, email, role):
    return accept(app, invite(owner, email, role))


# Invitations

def test_without_a_mail_server_the_link_is_logged_and_shown_once(app, owner, caplog):
    caplog.set_level(logging.INFO, logger="webapp.mail")
    link = invite(owner, "Bob@Example.com", "admin")
    assert link in caplog.text and "bob@example.com" in caplog.text
    assert link not in text(owner.get("/team"))  # shown once; only its hash is stored
    with app.app_context(), all_tenants():
        stored = db.session.scalars(select(Invitation)).one()
        assert link.rsplit("/", 1)[1] not in (stored.token_hash, stored.email) and stored.role == "admin"

    page = text(app.test_client().get(link.removeprefix("http://localhost")))
    assert "Join Acme" in page and "bob@example.com" in page and "<strong>admin</strong>" in page

    bob = accept(app, link)
    body = text(bob.get("/"))
    assert "bob@example.com · Acme · admin" in body and "<h1>Acme</h1>" in body
    team = text(owner.get("/team"))
    assert re.search(r"bob@example.com</td>\s*<td><span class=\"role role-admin\">admin", team)
    assert "Invitations" not in team  # accepted: no longer open
    # The link worked once.
    used = app.test_client().get(link.removeprefix("http://localhost"))
    assert used.status_code == 410 and "already used" in text(used)
    # Bob logs in with his own password from now on.
    fresh = app.test_client()
    response = fresh.post("/login", data={"email": "bob@example.com", "password": "battery staple",
                                          "csrf_token": token(fresh, "/login")}, follow_redirects=True)
    assert "bob@example.com · Acme · admin" in text(response)


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(app):
    """A real SMTP server on 127.0.0.1; the app sends through it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    yield inbox
    controller.stop()


def test_with_a_mail_server_the_invitation_is_emailed(app, owner, smtp_server):
    response = post(owner, "/team/invitations", {"email": "carol@example.com", "role": "viewer"})
    assert "Invitation emailed to carol@example.com." in text(response)
    assert not LINK.search(text(response))  # the link went by email only
    [envelope] = smtp_server.messages
    assert envelope.rcpt_tos == ["carol@example.com"]
    message = envelope.content.decode()
    assert "Subject: ada@example.com invited you to Acme on AgentHooks" in message
    assert "as viewer" in message
    carol = accept(app, LINK.search(message).group())
    assert "carol@example.com · Acme · viewer" in text(carol.get("/"))


def test_a_mail_server_that_is_down_falls_back_to_showing_the_link(app, owner, caplog):
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        app.config["SMTP_URL"] = f"smtp://127.0.0.1:{probe.getsockname()[1]}"
    caplog.set_level(logging.INFO, logger="webapp.mail")
    link = invite(owner, "dan@example.com", "viewer")
    assert "Could not send the email to dan@example.com" in caplog.text and link in caplog.text


def test_unusable_invitations_say_why(app, owner, signup):
    expired, withdrawn = invite(owner, "eve@example.com", "viewer"), invite(owner, "fay@example.com", "viewer")
    with app.app_context(), all_tenants():
        db.session.execute(update(Invitation).where(Invitation.email == "eve@example.com")
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    # The expired one shows as expired to the owner.
    assert re.search(r"eve@example.com.*?\(expired\)", text(owner.get("/team")), re.S)
    with app.app_context(), all_tenants():
        fay_id = db.session.scalars(select(Invitation.id).where(Invitation.email == "fay@example.com")).one()
    post(owner, f"/team/invitations/{fay_id}/revoke")

    visitor = app.test_client()
    for link, reason in ((expired, "expired"), (withdrawn, "withdrawn"),
                         ("http://localhost/invitations/" + "x" * 43, "not valid")):
        response = visitor.get(link.removeprefix("http://localhost"))
        assert response.status_code == 410 and reason in text(response), link
        response = visitor.post(link.removeprefix("http://localhost"),
                                data={"password": "battery staple", "csrf_token": token(visitor, "/login")})
        assert response.status_code == 410
    with app.app_context(), all_tenants():
        assert db.session.scalars(select(User.email)).all() == ["ada@example.com"]

    # A second invitation to the same address replaces the first: the old link stops working.
    first = invite(owner, "gus@example.com", "viewer")
    second = invite(owner, "gus@example.com", "admin")
    assert "withdrawn" in text(visitor.get(first.removeprefix("http://localhost")))
    assert "<strong>admin</strong>" in text(visitor.get(second.removeprefix("http://localhost")))


def test_invitation_form_and_accept_form_validate(app, owner, signup):
    for data, message in (({"email": "not-an-email", "role": "viewer"}, "Email is not a valid email address"),
                          ({"email": "", "role": "viewer"}, "Email is required"),
                          ({"email": "x@example.com", "role": "superuser"}, "Role must be one of owner, admin, viewer"),
                          ({"email": "ADA@example.com", "role": "viewer"}, "Email is already a member of this team")):
        response = post(owner, "/team/invitations", data)
        assert response.status_code == 422 and message in text(response), data

    # Someone who has an account in another organization cannot join with it: a clear message, no change.
    other = app.test_client()
    signup(other, org="Elsewhere", email="hal@example.com")
    link = invite(owner, "hal@example.com", "viewer")
    visitor = app.test_client()
    path = link.removeprefix("http://localhost")
    response = visitor.post(path, data={"password": "short", "csrf_token": token(visitor, path)})
    assert response.status_code == 422 and "Password must be at least 8 characters" in text(response)
    response = visitor.post(path, data={"password": "battery staple", "csrf_token": token(visitor, path)})
    assert response.status_code == 422 and "hal@example.com already has an AgentHooks account" in text(response)
    # Without the CSRF token, nothing happens.
    assert visitor.post(path, data={"password": "battery staple"}).status_code == 400
    # A logged-in user is asked to log out first.
    assert "Log out first" in text(owner.get(path))
    assert "Elsewhere" in text(other.get("/"))


# Roles

def _snapshot(app) -> dict:
    """What a refused request must not change."""
    with app.app_context(), all_tenants():
        db.session.expire_all()
        return {
            "users": sorted((u.email, u.role) for u in db.session.scalars(select(User))),
            "invitations": sorted((i.email, i.revoked_at) for i in db.session.scalars(select(Invitation))),
            "agents": sorted((a.id, a.name) for a in db.session.scalars(select(Agent))),
            "endpoints": sorted((e.id, e.url, e.enabled, e.secret_encrypted) for e in db.session.scalars(select(Endpoint))),
            "keys": sorted((k.id, k.revoked_at) for k in db.session.scalars(select(ApiKey))),
            "types": sorted(t.name for t in db.session.scalars(select(EventType))),
        }


def _routes(app, ids):
    """Every dashboard route (not the API, static files or one's own session under auth.*) with real ids."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith(("api.", "auth.")):
            continue
        path = rule.rule
        for name in rule.arguments:  # a KeyError here means a new kind of id: add it to _world
            path = re.sub(rf"<(\w+:)?{name}>", ids[name], path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


# What only an owner or admin may read: the signing secret, and the step before rotating it.
SECRET_PAGES = {"endpoints.secret", "endpoints.confirm_rotate"}


def test_a_viewer_reads_every_page_and_changes_nothing(app, owner):
    ids = one_of_everything(owner)
    viewer = join(app, owner, "vic@example.com", "viewer")
    before = _snapshot(app)
    csrf = token(viewer)
    reads = refused = 0
    for endpoint, method, path in _routes(app, ids):
        for headers in ({}, {"HX-Request": "true"}):
            response = viewer.open(path, method=method, data={"csrf_token": csrf, "name": "pwned",
                                                             "url": "https://evil.example/x", "role": "owner"},
                                   headers=headers, query_string={"type": CUSTOM_TYPE})
            if method == "GET" and endpoint not in SECRET_PAGES:
                assert response.status_code in (200, 302), (method, path, response.status_code)
                reads += 1
            else:
                assert response.status_code == 403, (method, path, response.status_code)
                assert "Your role (viewer) cannot do this" in text(response)
                refused += 1
    assert reads >= 30 and refused >= 40
    assert _snapshot(app) == before

    # The pages show a viewer no button that would be refused, and say why.
    for path in ("/keys", "/agents", f"/endpoints/{ids['endpoint_id']}", f"/deliveries/{ids['delivery_id']}", "/team"):
        body = text(viewer.get(path))
        assert "You have view-only access (viewer)" in body, path
        assert 'class="action"' not in body and ">Revoke<" not in body and ">Resend<" not in body, path
    body = text(viewer.get(f"/endpoints/{ids['endpoint_id']}"))
    assert "Only owners and admins can see the secret." in body and ">Reveal<" not in body
    assert "Invite a teammate" not in text(viewer.get("/team"))


def test_an_admin_does_everything_but_the_team(app, owner):
    ids = one_of_everything(owner)
    admin = join(app, owner, "ann@example.com", "admin")
    team_before = _snapshot(app)["users"], _snapshot(app)["invitations"]
    csrf = token(admin)
    team_routes = allowed = 0
    for endpoint, method, path in _routes(app, ids):
        response = admin.open(path, method=method, data={"csrf_token": csrf, "role": "owner"},
                              query_string={"type": CUSTOM_TYPE})
        if endpoint.startswith("team.") and method != "GET":
            assert response.status_code == 403, (method, path)
            assert "Your role (admin) cannot do this: it needs owner" in text(response)
            team_routes += 1
        else:  # allowed (an earlier action may have deleted the object: then 404, never 403)
            assert response.status_code in (200, 302, 404, 422), (method, path, response.status_code)
            allowed += 1
    assert team_routes == 4 and allowed >= 30
    assert (_snapshot(app)["users"], _snapshot(app)["invitations"]) == team_before
    # An admin sees secrets and sends events' resends; the team page shows no owner controls.
    endpoint_id = create_endpoint(admin)
    assert re.search(r"whsec_", text(admin.get(f"/endpoints/{endpoint_id}/secret", headers={"HX-Request": "true"})))
    assert "Invite a teammate" not in text(admin.get("/team")) and "Change role" not in text(admin.get("/team"))


def test_the_last_owner_is_counted_in_this_team_not_in_every_team(app, owner, make_tenant):
    """Another organization's owner does not let this team's only owner step down or leave."""
    make_tenant("Another organization")  # with its own owner
    with app.app_context(), all_tenants():
        ada_id = db.session.scalars(select(User.id).where(User.email == "ada@example.com")).one()
    assert "The team needs an owner" in text(post(owner, f"/team/members/{ada_id}/role", {"role": "admin"}))
    assert "The team needs an owner" in text(post(owner, f"/team/members/{ada_id}/remove"))
    assert "ada@example.com · Acme · owner" in text(owner.get("/"))


def test_role_changes_and_removal_take_effect_at_the_next_request(app, owner):
    bob = join(app, owner, "bob@example.com", "admin")
    with app.app_context(), all_tenants():
        ada_id, bob_id = (db.session.scalars(select(User.id).where(User.email == e)).one()
                          for e in ("ada@example.com", "bob@example.com"))

    # The last owner can be neither demoted nor removed.
    response = post(owner, f"/team/members/{ada_id}/role", {"role": "admin"})
    assert "The team needs an owner: make someone else owner first" in text(response)
    response = post(owner, f"/team/members/{ada_id}/remove")
    assert "The team needs an owner" in text(response)
    assert "ada@example.com · Acme · owner" in text(owner.get("/"))

    # Bob becomes owner, then makes Ada a viewer: her very next request is refused.
    assert "bob@example.com is now owner." in text(post(owner, f"/team/members/{bob_id}/role", {"role": "owner"}))
    assert "ada@example.com is now viewer." in text(post(bob, f"/team/members/{ada_id}/role", {"role": "viewer"}))
    response = post(owner, "/agents/new", {"name": "sneaky"})
    assert response.status_code == 403
    assert "ada@example.com · Acme · viewer" in text(owner.get("/"))

    # Bob removes Ada: her session ends.
    response = post(bob, f"/team/members/{ada_id}/remove")
    assert "ada@example.com was removed from the team." in text(response)
    response = owner.get("/agents")
    assert response.status_code == 302 and response.location.startswith("/login")

    audit = text(bob.get("/audit"))
    for words in ("invited", "joined the team as", "changed the role of", "removed from the team"):
        assert words in audit, words
    assert "bob@example.com admin → owner" in audit and "ada@example.com owner → viewer" in audit
    with app.app_context(), all_tenants():
        assert db.session.scalars(select(User.email)).all() == ["bob@example.com"]
        assert not db.session.scalars(select(Agent)).all()


def test_the_delivery_log_and_ids_in_pages_are_for_viewers_too(app, owner):
    """A viewer's read of the live log and a delivery works (htmx polls are GETs)."""
    endpoint_id = create_endpoint(owner)
    delivery_id = send_test_event(owner, endpoint_id)
    viewer = join(app, owner, "val@example.com", "viewer")
    assert DELIVERY_ID.search(text(viewer.get("/deliveries")))
    assert delivery_id in text(viewer.get(f"/deliveries/{delivery_id}"))
    assert viewer.post(f"/deliveries/{delivery_id}/resend", data={"csrf_token": token(viewer)}).status_code == 403
