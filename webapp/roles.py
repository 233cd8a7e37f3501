"""Team roles, and the one place that enforces them on every dashboard route.

- owner: everything, including the team (inviting, changing roles, removing members);
- admin: everything but the team;
- viewer: reads every page, changes nothing, and sees no secret.

Every request for a page passes ``_enforce`` below. A view states the role it needs with ``@requires(…)``;
one that says nothing needs ``viewer`` to read (GET) and ``admin`` to change anything (any other method).
So a new route is safe by default: it cannot be changed by a viewer unless it says so.
The API is not covered here: it acts with API keys, which belong to the tenant, not to a teammate.
"""
from __future__ import annotations

from flask import Flask, abort, current_app, request
from flask_login import current_user

ROLES = ("owner", "admin", "viewer")
_RANK = {"viewer": 0, "admin": 1, "owner": 2}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DESCRIPTIONS = {
    "owner": "everything, including inviting and removing teammates",
    "admin": "everything but the team: agents, endpoints, secrets, keys, resends",
    "viewer": "reads every page; changes nothing and sees no secret",
}


def requires(role: str):
    """Mark a view as needing at least ``role`` (for every method it answers)."""
    assert role in _RANK, role

    def mark(view):
        view.required_role = role
        return view

    return mark


def required_role(view, method: str) -> str:
    return getattr(view, "required_role", None) or ("viewer" if method in READ_METHODS else "admin")


def has_role(user, role: str) -> bool:
    return _RANK.get(getattr(user, "role", None), -1) >= _RANK[role]


def can(role: str) -> bool:
    """For templates: may the logged-in user act as ``role``? (Hides what the role check would refuse.)"""
    return current_user.is_authenticated and has_role(current_user, role)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["can"] = can

    @app.before_request
    def _enforce():
        # The API acts with keys; log-in, sign-up, log-out and invitations concern one's own session.
        if request.blueprint in ("api", "auth") or request.endpoint in (None, "static"):
            return
        if not current_user.is_authenticated:
            return  # login_required sends the visitor to log in
        needed = required_role(current_app.view_functions.get(request.endpoint), request.method)
        if not has_role(current_user, needed):
            abort(403, f"Your role ({current_user.role}) cannot do this: it needs {needed}. "
                       f"Ask an owner of {current_user.tenant.name} to change your role.")
