"""Secrets: API keys (hashed), endpoint signing secrets (encrypted at rest)."""
from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

API_KEY_PREFIX = "ahk_"
SECRET_PREFIX = "whsec_"


def new_api_key() -> str:
    """Return a new API key: ``ahk_`` and 43 URL-safe random characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force,
    # and the lookup by hash is an equality on a unique index, not a timing-sensitive compare.
    return hashlib.sha256(key.encode()).hexdigest()


def new_signing_secret() -> str:
    """Return a Standard Webhooks secret: ``whsec_`` and base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _fernet() -> Fernet:
    cached = current_app.extensions.get("agenthooks_fernet")
    if cached is None:
        # A separate key for encryption, derived from SECRET_KEY, so the raw session key is never the cipher key.
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"agenthooks endpoint secrets v1").derive(current_app.config["SECRET_KEY"].encode())
        cached = current_app.extensions["agenthooks_fernet"] = Fernet(base64.urlsafe_b64encode(key))
    return cached


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("a stored secret cannot be decrypted: was SECRET_KEY changed?") from exc
