"""The JSON API of the contract, under /api/v1, authenticated by a tenant's API key."""
from __future__ import annotations

import functools
import json

from flask import Blueprint, current_app, g, request

from ..errors import APIError
from ..extensions import csrf
from ..services.api_keys import authenticate_key
from ..tenancy import reset_tenant, set_tenant
from . import ratelimit

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # API clients authenticate with a bearer key, not a session cookie


PUBLIC_ENDPOINTS = {"api.openapi"}
# All a per-agent key may do: send (or check) its agent's events, read them back, and read the event types.
AGENT_KEY_ENDPOINTS = {"api.ingest", "api.validate_event", "api.get_event", "api.list_events", "api.event_types"}


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    # No id or filter of ours contains NUL, and PostgreSQL refuses it in a query: answer before it gets there.
    if "\x00" in request.path:
        raise APIError(404, "There is nothing at this address.")
    if any("\x00" in value for value in request.args.values()):
        raise APIError(422, "Query parameters may not contain NUL characters.")
    token = bearer_token()
    if token is None:
        raise APIError(401, "Send your API key as 'Authorization: Bearer ahk_…'.")
    key = authenticate_key(token)
    if key is None:
        raise APIError(401, "The API key is unknown, revoked or expired.")
    if key.agent_id is not None and request.endpoint not in AGENT_KEY_ENDPOINTS:
        # 401, not 403: the contract has no 403. The code and header say it is the key's scope (RFC 6750).
        raise APIError(401, f"This key belongs to agent {key.agent_id}: it may only send and read that agent's "
                            "events and read the event types. Use a tenant key for everything else.",
                       "insufficient_scope", headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
    g.api_key = key
    g.api_tenant_token = set_tenant(key.tenant_id)


@bp.after_request
def _rate_limit_headers(response):
    window = g.get("rate_limit")
    if window is not None:
        response.headers.update(window.headers())
    return response


@bp.teardown_request
def _forget_tenant(exc):
    token = g.pop("api_tenant_token", None)
    if token is not None:
        reset_tenant(token)


def json_body() -> dict:
    """The request's JSON object, or the contract's 415/400."""
    if request.mimetype != "application/json":
        raise APIError(415, "Send the body as JSON with 'Content-Type: application/json'.")
    try:
        data = json.loads(request.get_data(cache=True) or b"")
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "The body is not valid JSON.", "invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "The body must be a JSON object.", "invalid_json")
    return data


def limit_arg(default: int = 50, maximum: int = 100) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise APIError(422, f"limit: must be a whole number from 1 to {maximum}")
    return int(raw)


def listing(rows, next_cursor, serialize) -> dict:
    return {"data": [serialize(row) for row in rows], "next_cursor": next_cursor}


def ingest_rate_limited(view):
    """Count the request against its API key's INGEST_RATE_LIMIT (each route apart): 429 once it is over."""
    @functools.wraps(view)
    def limited(*args, **kwargs):
        window = ratelimit.hit(f"{request.endpoint}:{g.api_key.id}", current_app.config["INGEST_RATE_LIMIT"])
        g.rate_limit = window
        if window is not None and not window.allowed:
            raise APIError(429, "Too many requests: slow down and retry after the number of seconds in "
                                "Retry-After.", headers={"Retry-After": str(window.retry_after())})
        return view(*args, **kwargs)
    return limited


from . import agents, deliveries, endpoints, events, meta  # noqa: E402,F401  (routes register on bp)
