"""Public ids: a prefix and a random, time-ordered string (like a ULID).

Time order lets lists page by id alone (newest first) while the ids stay opaque
and unguessable: 48 bits of milliseconds, then 80 random bits.
"""
import os
import time
from datetime import datetime, timedelta, timezone

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(prefix: str, value: int) -> str:
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def new_id(prefix: str, at: datetime | None = None) -> str:
    """Return a new id such as ``evt_01jd8x…``; ``at`` backdates it (demo data, tests)."""
    millis = int((at.timestamp() if at else time.time()) * 1000)
    return _encode(prefix, (millis << 80) | int.from_bytes(os.urandom(10), "big"))


def min_id_at(prefix: str, moment: datetime) -> str:
    """The smallest id ``new_id`` could have made at ``moment``.

    ``id >= min_id_at(prefix, t)`` selects the rows created since ``t`` through an index on the id.
    """
    return _encode(prefix, int(moment.timestamp() * 1000) << 80)


# Crockford's digits as int(..., 32) spells them: the first ten of an id's 26 are its 48 bits of milliseconds
# (and two zero bits above them).
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TO_INT_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")


def time_of(id_: str) -> datetime:
    """When ``new_id`` made ``id_`` (to the millisecond, UTC): the inverse of its time part."""
    millis = int(id_.rpartition("_")[2][:10].translate(_TO_INT_DIGITS), 32)
    return _EPOCH + timedelta(milliseconds=millis)
