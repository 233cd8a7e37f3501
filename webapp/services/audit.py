"""The audit log: who created or revoked keys, revealed or rotated secrets, and changed endpoints and agents,
when and from where.

The services record (not the views), so the dashboard and the API leave the same trail. A row joins the
caller's transaction: it is written with the change it describes, or not at all.
"""
from __future__ import annotations

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import AuditEvent
from .common import page

# What each action reads as in the dashboard.
ACTIONS = {
    "api_key.created": "created API key",
    "api_key.revoked": "revoked API key",
    "endpoint.created": "created endpoint",
    "endpoint.updated": "changed endpoint",
    "endpoint.deleted": "deleted endpoint",
    "endpoint.secret_revealed": "revealed the signing secret of endpoint",
    "endpoint.secret_rotated": "rotated the signing secret of endpoint",
    "agent.created": "created agent",
    "agent.updated": "changed agent",
    "agent.deleted": "deleted agent",
    "user.logged_in": "logged in",
    "member.invited": "invited",
    "member.joined": "joined the team as",
    "member.role_changed": "changed the role of",
    "member.removed": "removed from the team",
    "invitation.revoked": "revoked the invitation of",
}


def _actor() -> dict:
    """Who is acting: the API key of an API request, the logged-in user of a page, else the operator."""
    if has_request_context():
        key = g.get("api_key")
        if key is not None:
            return {"actor_api_key_id": key.id, "actor_label": f"API key “{key.name}” ({key.prefix}…)"}
        if current_user and current_user.is_authenticated:
            return {"actor_user_id": current_user.id, "actor_label": current_user.email}
        return {"actor_label": "anonymous"}
    return {"actor_label": "operator (command line)"}


def record(action: str, target_type: str | None = None, target_id: str | None = None, *,
           actor: dict | None = None, **details) -> AuditEvent:
    """Add an audit event for the current tenant to the session (the caller commits).

    Args:
        action: one of ACTIONS.
        target_type, target_id: what it was done to (``endpoint``, ``ep_…``).
        actor: who did it, when not the one ``_actor`` finds (log-in, before the session knows the user).
        details: what changed, shown beside the event (never a secret).
    """
    assert action in ACTIONS, action
    event = AuditEvent(action=action, target_type=target_type, target_id=target_id, details=details,
                       ip=request.remote_addr if has_request_context() else None, **(actor or _actor()))
    db.session.add(event)
    db.session.flush()  # now, as the tenant in scope (the caller may commit outside that scope)
    return event


def list_events(cursor: str | None = None, limit: int = 50):
    """The tenant's audit events, newest first (ids are time-ordered). Returns (rows, next_cursor)."""
    return page(select(AuditEvent), AuditEvent, cursor, limit)


def describe(event: AuditEvent) -> str:
    return ACTIONS.get(event.action, event.action)
