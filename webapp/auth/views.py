"""Sign-up, log-in, log-out and password confirmation pages."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.exc import IntegrityError

from ..extensions import db, limiter
from ..models import User
from ..services import audit, team, tenants
from ..team.forms import AcceptForm
from ..services.common import ValidationError
from ..tenancy import tenant_scope
from .forms import ConfirmForm, LoginForm, SignupForm
from .session import mark_authenticated

bp = Blueprint("auth", __name__)

INVALID_LOGIN = "Invalid email or password."
TOO_MANY = "Too many attempts. Wait a little, then try again."


def _start_session(user: User) -> None:
    session.clear()  # a fresh session at log-in, so nothing planted before it survives (session fixation)
    login_user(user)
    mark_authenticated()
    with tenant_scope(user.tenant_id):
        audit.record("user.logged_in", "user", user.id, actor={"actor_user_id": user.id, "actor_label": user.email})
        db.session.commit()


def _next_url() -> str:
    """Where to go after log-in: the page that asked for it, if it is one of ours."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and "\\" not in target \
            and not parts.scheme and not parts.netloc:
        return target
    return url_for("dashboard.overview")


# Rate limits (Flask-Limiter on the queue's Redis), read from the config at each request.
def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_ip_limit() -> str:
    return current_app.config["LOGIN_IP_RATE_LIMIT"]


def _signup_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


def _account_key() -> str:
    """The account a log-in tries: the email typed (or the logged-in user's, confirming a password)."""
    email = current_user.email if current_user.is_authenticated else request.form.get("email", "")
    return "account:" + email.strip().lower()[:320]


def _ip_key() -> str:
    return "ip:" + (get_remote_address() or "")


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_signup_limit, key_func=_ip_key, methods=["POST"], error_message=TOO_MANY)
def signup():
    """Create an organization with its first user, and log that user in."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.overview"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            tenant, user = tenants.create_tenant(form.org.data, form.email.data, form.password.data)
            db.session.commit()
        except ValidationError as exc:
            form.add_error(exc)
        except IntegrityError:  # the same email signed up a moment ago
            db.session.rollback()
            form.add_error(ValidationError("email", "An account with this email already exists"))
        else:
            _start_session(user)
            flash(f"Welcome to AgentHooks, {tenant.name}.", "success")
            return redirect(url_for("dashboard.overview"))
    return render_template("auth/signup.html", form=form), form.status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_ip_limit, key_func=_ip_key, methods=["POST"], error_message=TOO_MANY)
@limiter.limit(_login_limit, key_func=_account_key, methods=["POST"], error_message=TOO_MANY)
def login():
    """Log a user in by email and password."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.overview"))
    form = LoginForm()
    if form.validate_on_submit():
        user = tenants.authenticate(form.email.data, form.password.data)
        if user is not None:
            _start_session(user)
            return redirect(_next_url())
        form.form_errors.append(INVALID_LOGIN)  # never say which of the two was wrong
    return render_template("auth/login.html", form=form), form.status


@bp.route("/login/confirm", methods=["GET", "POST"])
@login_required
@limiter.limit(_login_ip_limit, key_func=_ip_key, methods=["POST"], error_message=TOO_MANY)
@limiter.limit(_login_limit, key_func=_account_key, methods=["POST"], error_message=TOO_MANY)
def confirm():
    """Ask for the password again before showing a secret, then go back to it."""
    form = ConfirmForm()
    if form.validate_on_submit():
        if tenants.authenticate(current_user.email, form.password.data) is not None:
            mark_authenticated()
            return redirect(_next_url())
        form.password.errors = ["Password is not correct"]
    return render_template("auth/confirm.html", form=form), form.status


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@limiter.limit(_signup_limit, key_func=_ip_key, methods=["POST"], error_message=TOO_MANY)
def accept_invitation(token):
    """Join a team from an invitation link: choose a password, and be logged in with the invited role."""
    try:
        invitation = team.find_invitation(token)
    except team.InvitationUnusable as exc:
        return render_template("error.html", status=410, message=str(exc)), 410
    form = AcceptForm()
    if not current_user.is_authenticated and form.validate_on_submit():
        try:
            user = team.accept(token, form.password.data)
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            form.add_error(exc)
        except IntegrityError:  # the same email signed up a moment ago
            db.session.rollback()
            form.add_error(ValidationError("email", f"{invitation.email} already has an AgentHooks account"))
        else:
            _start_session(user)
            flash(f"Welcome to {invitation.tenant.name}. You are {user.role} here.", "success")
            return redirect(url_for("dashboard.overview"))
    response = render_template("auth/accept.html", invitation=invitation, form=form)
    # The token is in the URL: keep it out of caches and of the Referer of links on the page.
    return response, form.status, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@bp.post("/logout")
def logout():
    """Log out and forget the session."""
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
