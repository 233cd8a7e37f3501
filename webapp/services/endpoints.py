"""Endpoints: where a tenant's events are POSTed, and their signing secrets."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update

from .. import destinations
from ..catalogue import BUILT_IN, TEST_EVENT_TYPE
from ..crypto import decrypt, encrypt, new_signing_secret
from ..extensions import db
from ..models import FAILED, PENDING, RETRYING, Agent, Delivery, Endpoint, EndpointAgent, utcnow
from . import audit, tallies
from .common import ValidationError, get_owned, page, text_field
from .event_types import custom_types

# How long a rotated-out secret keeps signing alongside the new one.
SECRET_OVERLAP = timedelta(hours=24)


def validate_url(url: str) -> None:
    """Raises ValidationError naming ``url`` when we would never deliver there."""
    try:
        destinations.check(url, allow_private=current_app.config["ALLOW_PRIVATE_DESTINATIONS"], at_delivery=False)
    except destinations.DestinationRefused as exc:
        raise ValidationError("url", str(exc)) from None


def _string_list(data: dict, field: str) -> list[str]:
    value = data.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) and "\x00" not in item for item in value):
        raise ValidationError(field, "must be a list of strings")
    return list(dict.fromkeys(value))  # drop repeats, keep order


def _fields(data: dict, partial: bool) -> dict:
    values = {}
    if not partial or "url" in data:
        url = text_field(data, "url", max_length=2048, required=True)
        validate_url(url)
        values["url"] = url
    if not partial or "description" in data:
        values["description"] = text_field(data, "description", max_length=2000, default="")
    if not partial or "event_types" in data:
        types = _string_list(data, "event_types")
        known = set(BUILT_IN) - {TEST_EVENT_TYPE} | {t.name for t in custom_types()}
        unknown = [t for t in types if t not in known]
        if unknown:
            raise ValidationError("event_types", f"unknown event type {unknown[0]!r}")
        values["event_types"] = types
    if not partial or "agent_ids" in data:
        agent_ids = _string_list(data, "agent_ids")
        if agent_ids:
            found = set(db.session.scalars(select(Agent.id).where(Agent.id.in_(agent_ids))))
            missing = [a for a in agent_ids if a not in found]
            if missing:
                raise ValidationError("agent_ids", f"unknown agent {missing[0]!r}")
        values["agent_ids"] = agent_ids
    if "rate_limit" in data:
        limit = data["rate_limit"]
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000):
            raise ValidationError("rate_limit", "must be a whole number of deliveries per second from 1 to 1000, or null")
        values["rate_limit"] = limit
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise ValidationError("enabled", "must be true or false")
        values["enabled"] = data["enabled"]
    return values


def create_endpoint(data: dict) -> Endpoint:
    """Raises ValidationError naming the field."""
    endpoint = Endpoint(**_fields(data, partial=False), secret_encrypted=encrypt(new_signing_secret()))
    if endpoint.enabled is None:
        endpoint.enabled = True
    db.session.add(endpoint)
    db.session.flush()
    audit.record("endpoint.created", "endpoint", endpoint.id, url=endpoint.url)
    return endpoint


def update_endpoint(endpoint_id: str, data: dict) -> Endpoint:
    endpoint = get_owned(Endpoint, endpoint_id)
    values = _fields(data, partial=True)
    enabled = values.pop("enabled", None)
    changed = [name for name, value in values.items() if getattr(endpoint, name) != value]
    details = {"from_url": endpoint.url, "url": values["url"]} if "url" in changed else {"url": endpoint.url}
    for name, value in values.items():
        setattr(endpoint, name, value)
    if enabled is True and not endpoint.enabled:
        enable(endpoint)
        changed.append("enabled")
    elif enabled is False and endpoint.enabled:
        disable(endpoint, "Disabled by a user.")
        changed.append("enabled")
    db.session.flush()
    if changed:
        audit.record("endpoint.updated", "endpoint", endpoint.id, changed=changed, enabled=endpoint.enabled,
                     **details)
    return endpoint


def enable(endpoint: Endpoint) -> None:
    endpoint.enabled = True
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    endpoint.failing_since = None


def disable(endpoint: Endpoint, reason: str) -> None:
    """Stop delivering to the endpoint; its outstanding deliveries end as failed, with the reason."""
    now = utcnow()
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    # Not an attempt in flight (claimed, so leased, and due); a delivery held for its pacing slot keeps its
    # claim too, but is not due yet: it ends here, and its held job finds the claim gone (jobs/delivery.py).
    # A status at a time, so that the chart's tallies know which one each delivery left.
    for status in (PENDING, RETRYING):
        ended = db.session.scalars(
            update(Delivery)
            .where(Delivery.endpoint_id == endpoint.id, Delivery.status == status, Delivery.manual_pending.is_(False),
                   or_(Delivery.lease_until.is_(None), Delivery.next_attempt_at > now))
            .values(status=FAILED, next_attempt_at=None, lease_until=None, last_error="endpoint disabled")
            .returning(Delivery.id))
        tallies.count_changes(endpoint.tenant_id, [tallies.Change(id_, endpoint.id, status, FAILED) for id_ in ended])


def forget_subscription(field: str, value: str, what: str, endpoints: list[Endpoint] | None = None) -> None:
    """Drop a deleted agent or custom type from the filters of ``endpoints`` (default: every endpoint).

    An endpoint whose filter named only that one would otherwise widen to "all" silently;
    it is disabled instead, with the reason shown.
    """
    for endpoint in db.session.scalars(select(Endpoint)) if endpoints is None else endpoints:
        values = getattr(endpoint, field) or []
        if value in values:
            remaining = [v for v in values if v != value]
            setattr(endpoint, field, remaining)
            if not remaining and endpoint.enabled:
                disable(endpoint, f"It subscribed only to {what}, which was deleted. Choose new subscriptions "
                                  "and enable it again.")


def delete_endpoint(endpoint_id: str) -> None:
    endpoint = get_owned(Endpoint, endpoint_id)
    audit.record("endpoint.deleted", "endpoint", endpoint.id, url=endpoint.url)
    db.session.delete(endpoint)
    db.session.flush()
    # After the endpoint's row: on PostgreSQL a worker recording its attempts holds that row until it commits,
    # so its tallies are in by now.
    tallies.forget_endpoint(db.session.connection(), endpoint.tenant_id, endpoint.id)


def get_endpoint(endpoint_id: str) -> Endpoint:
    return get_owned(Endpoint, endpoint_id)


def list_endpoints(cursor: str | None = None, limit: int = 100):
    return page(select(Endpoint), Endpoint, cursor, limit)


def urls_of(endpoint_ids) -> dict[str, str]:
    """The URLs of these of the tenant's endpoints, by id (a deleted endpoint's id is left out)."""
    ids = set(endpoint_ids)
    return dict(db.session.execute(select(Endpoint.id, Endpoint.url).where(Endpoint.id.in_(ids))).all()) if ids else {}


def naming_agent(agent_id: str) -> list[Endpoint]:
    """The endpoints whose agent filter names this agent, by endpoint_agents' key, not by reading them all."""
    naming = select(EndpointAgent.endpoint_id).where(EndpointAgent.agent_id == agent_id)
    return list(db.session.scalars(select(Endpoint).where(Endpoint.id.in_(naming))))


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(Endpoint))


def current_secret(endpoint: Endpoint) -> str:
    return decrypt(endpoint.secret_encrypted)


def reveal_secret(endpoint_id: str) -> tuple[Endpoint, str]:
    """The endpoint and its current secret, for a person or client who asked to see it (audited;
    the caller commits)."""
    endpoint = get_owned(Endpoint, endpoint_id)
    secret = current_secret(endpoint)
    audit.record("endpoint.secret_revealed", "endpoint", endpoint.id, url=endpoint.url)
    return endpoint, secret


def signing_secrets(endpoint: Endpoint) -> list[str]:
    """The secrets that sign a delivery now: the current one and, for 24 h after a rotation, the old one.
    ``endpoint``: a model, or a row with its three secret columns."""
    secrets = [current_secret(endpoint)]
    if endpoint.previous_secret_encrypted and endpoint.previous_secret_expires_at and \
            endpoint.previous_secret_expires_at > utcnow():
        secrets.append(decrypt(endpoint.previous_secret_encrypted))
    return secrets


def rotate_secret(endpoint_id: str) -> str:
    """Give the endpoint a new secret; the old one keeps signing for 24 h. Returns the new secret."""
    endpoint = get_owned(Endpoint, endpoint_id)
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = utcnow() + SECRET_OVERLAP
    secret = new_signing_secret()
    endpoint.secret_encrypted = encrypt(secret)
    db.session.flush()
    audit.record("endpoint.secret_rotated", "endpoint", endpoint.id, url=endpoint.url)
    return secret
