"""API keys: shown once, stored as a hash, revocable; optionally per agent, for some types, until a date."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, update

from ..catalogue import INGESTIBLE
from ..crypto import api_key_matches, hash_api_key, new_api_key
from ..extensions import core, db
from ..models import Agent, ApiKey, expired, utcnow
from . import audit
from .common import ValidationError, get_owned, page, text_field
from .event_types import custom_types

# last_used_at is a hint for the dashboard; writing it on every request would cost a write per event.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def create_key(name: str, *, agent_id: str | None = None, event_types: list | None = None,
               expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key for the current tenant; return it with its plaintext, which is never stored.

    Args:
        agent_id: make a per-agent key: it may only send as this agent, and read only its events.
        event_types: the only types the key may send (empty: any).
        expires_at: from then on the key gets 401.

    Raises:
        ValidationError: naming the field (an unknown agent or type, an expiry in the past).
    """
    name = text_field({"name": name}, "name", max_length=200) or "API key"
    scope = _scope(agent_id, event_types, expires_at)
    plaintext = new_api_key()
    key = ApiKey(name=name, prefix=plaintext[:12], key_hash=hash_api_key(plaintext), **scope)
    db.session.add(key)
    db.session.flush()
    audit.record("api_key.created", "api_key", key.id, name=key.name, prefix=key.prefix)
    return key, plaintext


def _scope(agent_id: str | None, event_types: list | None, expires_at: datetime | None) -> dict:
    if agent_id is not None and (not isinstance(agent_id, str) or db.session.scalars(
            select(Agent.id).where(Agent.id == agent_id)).first() is None):
        raise ValidationError("agent_id", f"{agent_id!r} is not one of your agents")
    event_types = event_types or []
    if not isinstance(event_types, list) or not all(isinstance(t, str) for t in event_types):
        raise ValidationError("event_types", "must be a list of event type names")
    known = set(INGESTIBLE) | {t.name for t in custom_types()}
    unknown = [t for t in event_types if t not in known]
    if unknown:
        raise ValidationError("event_types", f"{unknown[0]!r} is neither a built-in event type nor one of your "
                                             "custom types")
    if event_types and agent_id is None:
        raise ValidationError("event_types", "can only limit a per-agent key: choose its agent too")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationError("expires_at", "must be in the future")
    return {"agent_id": agent_id, "event_types": sorted(set(event_types)), "expires_at": expires_at}


def list_keys(cursor: str | None = None, limit: int = 100) -> tuple[list[ApiKey], str | None]:
    """A page of the keys, newest first, and the next page's cursor (a tenant may have one per agent)."""
    return page(select(ApiKey), ApiKey, cursor, limit)


def count_live(now: datetime | None = None) -> int:
    """How many of the tenant's keys still work: neither revoked nor expired."""
    now = now or utcnow()
    return db.session.scalar(select(func.count()).select_from(ApiKey).where(
        ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)))


def get_keys(key_ids) -> dict[str, ApiKey]:
    """These of the tenant's keys, by id (what a page that names the keys of its rows needs)."""
    ids = set(key_ids)
    return {key.id: key for key in db.session.scalars(select(ApiKey).where(ApiKey.id.in_(ids)))} if ids else {}


def revoke_key(key_id: str) -> ApiKey:
    key = get_owned(ApiKey, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record("api_key.revoked", "api_key", key.id, name=key.name, prefix=key.prefix)
    return key


@dataclass(frozen=True)
class Caller:
    """The live API key a request came with: what the API needs of it, read once per request."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    agent_id: str | None  # a per-agent key: it sends and reads only this agent's events
    event_types: list  # the only types it may send; empty: any


def authenticate_key(plaintext: str) -> Caller | None:
    """Return the live key with this plaintext, or None when unknown, revoked or expired.

    One Core statement (built once, run by core()): this is the first query of every API call."""
    if not plaintext or not plaintext.startswith("ahk_") or len(plaintext) > 200:
        return None
    row = core(_key_lookup(), {"key_hash": hash_api_key(plaintext)}).one_or_none()
    # The lookup is an index equality; the compare is a second, constant-time check of the same fact.
    if row is None or row.revoked_at is not None or not api_key_matches(row.key_hash, plaintext):
        return None
    now = utcnow()
    if expired(row.expires_at, now):
        return None
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        keys = ApiKey.__table__
        db.session.execute(update(keys).where(keys.c.id == row.id).values(last_used_at=now))
        db.session.commit()
    return Caller(row.id, row.tenant_id, row.name, row.prefix, row.agent_id, row.event_types or [])


@functools.cache
def _key_lookup():
    """Built once, with the hash as a bound parameter. No tenant filter: the key is what tells the tenant."""
    keys = ApiKey.__table__
    return select(keys.c.id, keys.c.tenant_id, keys.c.name, keys.c.prefix, keys.c.agent_id, keys.c.event_types,
                  keys.c.key_hash, keys.c.revoked_at, keys.c.expires_at, keys.c.last_used_at).where(
        keys.c.key_hash == bindparam("key_hash"))
