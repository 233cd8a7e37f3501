"""API keys: shown once, stored as a hash, revocable."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from ..crypto import hash_api_key, new_api_key
from ..extensions import db
from ..models import ApiKey, utcnow
from ..tenancy import all_tenants
from .common import get_owned, text_field

# last_used_at is a hint for the dashboard; writing it on every request would cost a write per event.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def create_key(name: str) -> tuple[ApiKey, str]:
    """Create a key for the current tenant; return it with its plaintext, which is never stored."""
    name = text_field({"name": name}, "name", max_length=200) or "API key"
    plaintext = new_api_key()
    key = ApiKey(name=name, prefix=plaintext[:12], key_hash=hash_api_key(plaintext))
    db.session.add(key)
    db.session.flush()
    return key, plaintext


def list_keys() -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))


def revoke_key(key_id: str) -> ApiKey:
    key = get_owned(ApiKey, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def authenticate_key(plaintext: str) -> ApiKey | None:
    """Return the live key with this plaintext, or None when unknown or revoked."""
    if not plaintext or not plaintext.startswith("ahk_") or len(plaintext) > 200:
        return None
    with all_tenants():  # the key is what tells us the tenant
        key = db.session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_api_key(plaintext))).one_or_none()
        if key is None or key.revoked_at is not None:
            return None
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
            db.session.commit()
    return key
