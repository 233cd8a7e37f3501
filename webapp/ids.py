"""Public ids: a prefix and a random, time-ordered string (like a ULID).

Time order lets lists page by id alone (newest first) while the ids stay opaque
and unguessable: 48 bits of milliseconds, then 80 random bits.
"""
import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """Return a new id such as ``evt_01jd8x…``."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
