"""Sign-up, log-in and log-out pages."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import User
from ..services import tenants
from ..services.common import ValidationError
from .forms import LoginForm, SignupForm

bp = Blueprint("auth", __name__)

INVALID_LOGIN = "Invalid email or password."


def _start_session(user: User) -> None:
    session.clear()  # a fresh session at log-in, so nothing planted before it survives (session fixation)
    login_user(user)


def _next_url() -> str:
    """Where to go after log-in: the page that asked for it, if it is one of ours."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and "\\" not in target \
            and not parts.scheme and not parts.netloc:
        return target
    return url_for("dashboard.overview")


@bp.route("/signup", methods=["GET", "POST"])
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


@bp.post("/logout")
def logout():
    """Log out and forget the session."""
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
