"""flask-login wiring: the logged-in user sets the tenant for the request, and recent log-ins."""
import functools
import time

from flask import Flask, Response, current_app, flash, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_url

from ..extensions import login_manager
from ..services.tenants import load_user
from ..tenancy import reset_tenant, set_tenant


class PageSessions(SecureCookieSessionInterface):
    """Cookie sessions for the dashboard only. The API authenticates every request by its key and keeps no
    session: it gets Flask's null session (which refuses writes), without reading or signing a cookie."""

    def open_session(self, app, request):
        if request.path.startswith("/api/"):
            return None  # Flask makes it the null session
        return super().open_session(app, request)


def setup_login(app: Flask) -> None:
    app.session_interface = PageSessions()
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    login_manager.user_loader(load_user)

    @login_manager.unauthorized_handler
    def _unauthorized():
        target = login_url(login_manager.login_view, next_url=request.url)
        if request.headers.get("HX-Request"):
            # A poll or button of an expired session: send the whole page to log-in, not into a table cell.
            return Response(status=401, headers={"HX-Redirect": target})
        flash(login_manager.login_message, login_manager.login_message_category)
        return redirect(target)

    @app.before_request
    def _tenant_from_user():
        if request.blueprint == "api" or request.endpoint == "static":
            return  # the API's tenant comes from its key
        if current_user.is_authenticated:
            g.session_tenant_token = set_tenant(current_user.tenant_id)

    @app.teardown_request
    def _forget_tenant(exc):
        token = g.pop("session_tenant_token", None)
        if token is not None:
            reset_tenant(token)


# When the user last proved who they are (log-in or password confirmation), in the session.
AUTHENTICATED_AT = "authenticated_at"


def mark_authenticated() -> None:
    session[AUTHENTICATED_AT] = int(time.time())


def logged_in_recently() -> bool:
    at = session.get(AUTHENTICATED_AT)
    return isinstance(at, int) and time.time() - at <= current_app.config["RECENT_LOGIN_SECONDS"]


def recent_login_required(view):
    """Ask for the password again before ``view`` when the last log-in is older than RECENT_LOGIN_SECONDS
    (a session left open on a shared screen does not reveal secrets). Put it under ``login_required``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if logged_in_recently():
            return view(*args, **kwargs)
        # Back to this page afterwards (a POST comes back as the GET of the same URL, which asks first).
        target = url_for("auth.confirm", next=request.path)
        if request.headers.get("HX-Request"):
            return Response(status=200, headers={"HX-Redirect": target})
        return redirect(target)

    return wrapper
