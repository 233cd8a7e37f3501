"""flask-login wiring: the logged-in user sets the tenant for the request."""
from flask import Flask, Response, flash, g, redirect, request
from flask_login import current_user, login_url

from ..extensions import login_manager
from ..services.tenants import load_user
from ..tenancy import reset_tenant, set_tenant


def setup_login(app: Flask) -> None:
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
