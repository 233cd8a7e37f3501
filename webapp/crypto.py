"""Secrets: API keys (hashed), endpoint signing secrets (encrypted at rest).

Signing secrets are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``). The Fernet
key is derived with HKDF from ``ENCRYPTION_KEY``, or from ``SECRET_KEY`` when that is unset, so the raw
session key is never the cipher key. ``ENCRYPTION_KEYS_OLD`` (comma-separated) lists earlier values:
they still decrypt, the current one encrypts (MultiFernet), and ``flask --app webapp secrets reencrypt``
rewrites every stored secret with the current key, after which the old ones can be dropped.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

API_KEY_PREFIX = "ahk_"
SECRET_PREFIX = "whsec_"
_HKDF_INFO = b"agenthooks endpoint secrets v1"


def new_api_key() -> str:
    """Return a new API key: ``ahk_`` and 43 URL-safe random characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force,
    # and the lookup by hash is an equality on a unique index.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key_hash: str, plaintext: str) -> bool:
    """Whether ``plaintext`` is the key stored as ``key_hash``, compared in constant time."""
    return hmac.compare_digest(key_hash.encode(), hash_api_key(plaintext).encode())


def new_signing_secret() -> str:
    """Return a Standard Webhooks secret: ``whsec_`` and base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _derive(material: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def key_materials(config) -> list[str]:
    """The configured keys, current first: ENCRYPTION_KEY (or SECRET_KEY), then ENCRYPTION_KEYS_OLD."""
    current = config.get("ENCRYPTION_KEY") or config["SECRET_KEY"]
    old = [k for k in config.get("ENCRYPTION_KEYS_OLD") or [] if k and k != current]
    return [current, *dict.fromkeys(old)]


def _fernet() -> MultiFernet:
    cached = current_app.extensions.get("agenthooks_fernet")
    if cached is None:
        cached = MultiFernet([_derive(material) for material in key_materials(current_app.config)])
        current_app.extensions["agenthooks_fernet"] = cached
    return cached


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("a stored secret cannot be decrypted: was ENCRYPTION_KEY or SECRET_KEY changed "
                           "without listing the old value in ENCRYPTION_KEYS_OLD?") from exc


def reencrypt(token: str) -> str:
    """The same secret encrypted with the current key (decrypting with any configured one).

    Raises:
        RuntimeError: no configured key decrypts it.
    """
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("a stored secret cannot be decrypted with any configured key") from exc
