"""Event types: the built-in catalogue plus each tenant's custom types."""
from __future__ import annotations

from sqlalchemy import select

from ..catalogue import BUILT_IN, CUSTOM_TYPE_PATTERN, SCHEMAS
from ..extensions import db
from ..models import EventType
from . import schemas
from .common import ValidationError, get_owned, text_field


def custom_types() -> list[EventType]:
    return list(db.session.scalars(select(EventType).order_by(EventType.name)))


def all_types() -> list[dict]:
    """Every type this tenant can use, built-in first, each with its schema and whether it rejects or warns."""
    modes = schemas.modes()
    types = [{"name": name, "description": description, "built_in": True, "example": example,
              "schema": SCHEMAS[name], "schema_mode": modes.get(name, schemas.REJECT)}
             for name, (description, example) in BUILT_IN.items()]
    types += [{"name": t.name, "description": t.description, "built_in": False, "example": None,
               "schema": t.schema, "schema_mode": modes.get(t.name, schemas.REJECT)}
              for t in custom_types()]
    return types


def find_custom_type(name: str) -> EventType | None:
    """The tenant's custom type of this name, if it has one."""
    return db.session.scalars(select(EventType).where(EventType.name == name)).first()


def is_custom_type(name: str) -> bool:
    return find_custom_type(name) is not None


def create_custom_type(data: dict) -> EventType:
    """Raises ValidationError for a malformed, built-in or duplicate name."""
    name = text_field(data, "name", max_length=255, required=True)
    if not CUSTOM_TYPE_PATTERN.match(name):
        raise ValidationError("name", "must be dotted lower-case words, like order.shipped")
    if name in BUILT_IN:
        raise ValidationError("name", "is a built-in event type")
    if is_custom_type(name):
        raise ValidationError("name", "already exists")
    event_type = EventType(name=name, description=text_field(data, "description", max_length=2000, default=""),
                           schema=schemas.parse_schema(data.get("schema")))
    db.session.add(event_type)
    db.session.flush()
    return event_type


def set_custom_schema(type_id: str, schema) -> EventType:
    """Give a custom type a new schema (a JSON object or its text; blank or None removes it).

    Raises:
        NotFound: no such custom type of this tenant.
        ValidationError: the schema is not a usable JSON Schema (see ``schemas.parse_schema``).
    """
    event_type = get_owned(EventType, type_id)
    event_type.schema = schemas.parse_schema(schema)
    db.session.flush()
    return event_type


def delete_custom_type(type_id: str) -> None:
    """Delete a custom type; endpoints that filtered on it stop naming it."""
    from .endpoints import forget_subscription  # endpoints validates against custom types: import late

    event_type = get_owned(EventType, type_id)
    forget_subscription("event_types", event_type.name, f"the event type {event_type.name!r}")
    schemas.forget_mode(event_type.name)
    db.session.delete(event_type)
    db.session.flush()
