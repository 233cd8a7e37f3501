"""What every service shares: its errors and the tenant-scoped lookup."""
from __future__ import annotations

import base64
import binascii

from sqlalchemy import select

from ..extensions import db, plan_for_values


class ServiceError(Exception):
    """Base for errors a user can act on."""


class ValidationError(ServiceError):
    """A field failed validation; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(ServiceError):
    """No such id for this tenant (another tenant's id is not found either)."""


def get_owned(model, id_: str):
    """Return the current tenant's row with this id.

    Raises:
        NotFound: when there is none (whether or not another tenant has one).
    """
    # A SELECT, never Session.get(): the identity map would skip the tenant filter.
    row = db.session.scalars(select(model).where(model.id == id_)).one_or_none() if isinstance(id_, str) else None
    if row is None:
        raise NotFound(f"no {model.__name__.lower()} with id {id_}")
    return row


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises ValidationError for a cursor this service did not hand out."""
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError("cursor", "is not a cursor this API returned") from None
    if not value.isascii() or "_" not in value or len(value) > 40:
        raise ValidationError("cursor", "is not a cursor this API returned")
    return value


def page(statement, model, cursor: str | None, limit: int):
    """Keyset pagination, newest first, on time-ordered ids. Returns (rows, next_cursor)."""
    if cursor:
        statement = statement.where(model.id < decode_cursor(cursor))
        plan_for_values()  # on PostgreSQL, a plan for any cursor can read a page's rows from the whole table
    rows = list(db.session.scalars(statement.order_by(model.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


_MISSING = object()


def text_field(data: dict, field: str, *, max_length: int, required: bool = False, default=_MISSING,
               allow_blank: bool = False) -> str | None:
    """Read one string field of an input mapping, stripped, or raise ValidationError naming it."""
    value = data.get(field, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise ValidationError(field, "is required")
        return None if default is _MISSING else default
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if "\x00" in value:
        raise ValidationError(field, "may not contain NUL characters")
    value = value.strip()
    if required and not value and not allow_blank:
        raise ValidationError(field, "may not be blank")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    return value
