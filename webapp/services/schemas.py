"""Event schemas: the JSON Schema of each event type, whether it rejects or only warns, and checking events.

Built-in types have the schemas of ``catalogue.SCHEMAS``; a custom type may carry one of the tenant's
(``EventType.schema``). Ingest checks every event against its type's schema and lists every violation
with its JSON path. While a tenant's agents catch up with a schema, the tenant can set the type to
"warn": events that fail it are accepted, and the answer says what is wrong.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012
from sqlalchemy import delete, select

from ..catalogue import INGESTIBLE, SCHEMAS
from ..extensions import db
from ..models import EventType, SchemaMode
from .common import ValidationError

log = logging.getLogger(__name__)

REJECT, WARN = "reject", "warn"
MODES = (REJECT, WARN)
# A schema is configuration, not data: keep it small enough to read (and to validate with quickly).
MAX_SCHEMA_BYTES = 64 * 1024
# Past this many, an answer lists the first ones and says how many there were.
MAX_VIOLATIONS = 100
_MAX_MESSAGE = 300
# No retrieval: a "$ref" never makes the server fetch a URL (only the schema's own "#…" parts resolve).
_NO_RETRIEVAL = Registry()


@dataclass(frozen=True)
class Violation:
    """One way an event fails its type's schema: where (a JSON path such as ``$.data.text``) and why."""

    path: str
    message: str

    def as_json(self) -> dict:
        return {"path": self.path, "message": self.message}


class SchemaViolations(ValidationError):
    """An event fails its type's schema; ``violations`` lists every failure with its JSON path."""

    def __init__(self, event_type: str, violations: list[Violation], total: int):
        first = violations[0]
        more = total - 1
        suffix = f" (and {more} more violation{'s' * (more != 1)}: see details)" if more else ""
        super().__init__(first.path, f"{first.message}{suffix}")
        self.event_type, self.violations, self.total = event_type, violations, total


def _validator(schema: dict):
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema, registry=_NO_RETRIEVAL, format_checker=cls.FORMAT_CHECKER)


_BUILT_IN_VALIDATORS = {name: _validator(schema) for name, schema in SCHEMAS.items()}
# The same schemas compiled by jsonschema-rs, which says whether an event is valid in ~1.4 us where jsonschema
# takes ~55 (an ingest: 3.40 against 3.75 M instructions): it answers for the events that pass. jsonschema
# still lists the violations of one that does not, with the paths and messages of the contract, and has the
# last word on it. Its format check is at least as strict as jsonschema's (an email needs more than an "@"),
# so it never passes what jsonschema would refuse (tests/test_schemas.py checks that on generated events).
# Only for these schemas: a tenant's own may use regular expressions on which the two engines disagree.
_BUILT_IN_QUICK_CHECKS = {name: jsonschema_rs.validator_for(schema, validate_formats=True)
                          for name, schema in SCHEMAS.items()}


def _passes_quickly(event_type: str, instance: dict) -> bool:
    """Whether jsonschema-rs finds the event valid against its built-in type's schema; False also when it
    cannot read the event (a lone surrogate cannot cross into Rust): jsonschema then decides."""
    try:
        return _BUILT_IN_QUICK_CHECKS[event_type].is_valid(instance)
    except Exception:  # noqa: BLE001  only a fast path: never let it turn an event away
        return False


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE - 1] + "…"


def violations_of(schema_or_validator, instance) -> tuple[list[Violation], int]:
    """Every way ``instance`` fails the schema, sorted by path: (the first MAX_VIOLATIONS, how many in all)."""
    validator = schema_or_validator if not isinstance(schema_or_validator, dict) else _validator(schema_or_validator)
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: (e.json_path, e.message))
    except Unresolvable as exc:
        # Saving a schema checks its references; one that still fails is the tenant's to fix, so say so.
        log.warning("an event schema has an unresolvable reference: %s", exc)
        return [Violation("$", f"the event type's schema could not be applied: unresolvable reference {exc.ref!r}")], 1
    found = [Violation(error.json_path, _short(error.message)) for error in errors[:MAX_VIOLATIONS]]
    return found, len(errors)


# --- which schema, which mode ---------------------------------------------------------------------------

def schema_of(event_type: str, custom: EventType | None = None) -> dict | None:
    """The schema events of this type must match, or None when the type has none."""
    if custom is not None:
        return custom.schema
    return SCHEMAS.get(event_type)


def mode_of(event_type: str) -> str:
    row = db.session.scalars(select(SchemaMode.mode).where(SchemaMode.event_type == event_type)).first()
    return row or REJECT


def modes() -> dict[str, str]:
    """The tenant's types in "warn" mode (every other type rejects)."""
    return dict(db.session.execute(select(SchemaMode.event_type, SchemaMode.mode)).all())


def set_mode(event_type: str, mode: str) -> None:
    """Make a type's schema reject events that fail it (the default) or only warn about them.

    Raises:
        ValidationError: an unknown mode, or a type that is neither built in nor one of the tenant's.
    """
    if mode not in MODES:
        raise ValidationError("mode", f"must be one of {', '.join(MODES)}")
    from .event_types import is_custom_type  # here: event_types imports this module

    if event_type not in INGESTIBLE and not is_custom_type(event_type):
        raise ValidationError("type", f"{event_type!r} is neither a built-in event type nor one of your custom types")
    db.session.execute(delete(SchemaMode).where(SchemaMode.event_type == event_type)
                       .execution_options(synchronize_session=False))
    if mode == WARN:
        db.session.add(SchemaMode(event_type=event_type, mode=WARN))
    db.session.flush()


def forget_mode(event_type: str) -> None:
    """Drop a deleted custom type's mode, so a new type of the same name starts as "reject"."""
    db.session.execute(delete(SchemaMode).where(SchemaMode.event_type == event_type)
                       .execution_options(synchronize_session=False))


@dataclass
class Checked:
    """The outcome of checking one event: what failed, and whether the type only warns about it."""

    violations: list[Violation]
    total: int
    mode: str

    @property
    def warnings(self) -> list[dict]:
        return [v.as_json() for v in self.violations] if self.mode == WARN else []


def check(event_type: str, event: dict, custom: EventType | None = None) -> Checked:
    """Check an event (the ingest body) against its type's schema.

    Fields sent as null count as absent, as ingest treats them.

    Raises:
        SchemaViolations: the event fails a schema that rejects.
    """
    schema = schema_of(event_type, custom)
    if schema is None:
        return Checked([], 0, REJECT)
    instance = {key: value for key, value in event.items() if value is not None}
    if custom is None and _passes_quickly(event_type, instance):
        return Checked([], 0, REJECT)
    validator = _BUILT_IN_VALIDATORS[event_type] if custom is None else _validator(schema)
    found, total = violations_of(validator, instance)
    if not found:
        return Checked([], 0, REJECT)
    mode = mode_of(event_type)
    if mode != WARN:
        raise SchemaViolations(event_type, found, total)
    return Checked(found, total, mode)


# --- a tenant's own schemas -----------------------------------------------------------------------------

def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def parse_schema(raw, field: str = "schema") -> dict | None:
    """Read a custom type's schema (a JSON object, or its text); None or blank means no schema.

    Raises:
        ValidationError: not JSON, not an object, too large, not a valid JSON Schema, or one with a
            reference that is not to a part of itself.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        if len(raw.encode()) > MAX_SCHEMA_BYTES:
            raise ValidationError(field, f"must be at most {MAX_SCHEMA_BYTES // 1024} KiB")
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(field, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ValidationError(field, "must be a JSON object (a JSON Schema)")
    if len(json.dumps(raw)) > MAX_SCHEMA_BYTES:
        raise ValidationError(field, f"must be at most {MAX_SCHEMA_BYTES // 1024} KiB")
    if "$schema" in raw and (not isinstance(raw["$schema"], str) or validator_for(raw, default=None) is None):
        raise ValidationError(field, "names an unknown JSON Schema dialect in $schema; "
                                     "use https://json-schema.org/draft/2020-12/schema")
    cls = validator_for(raw, default=Draft202012Validator)
    try:
        cls.check_schema(raw)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        raise ValidationError(field, f"is not a valid JSON Schema: {_short(exc.message)} (at {where})") from None
    resolver = Registry().with_resource("urn:agenthooks:schema", DRAFT202012.create_resource(raw)).resolver(
        "urn:agenthooks:schema")
    for ref in _refs(raw):
        if not ref.startswith("#"):
            raise ValidationError(field, f"may only refer to parts of itself (\"#/$defs/…\"), not {ref!r}")
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ValidationError(field, f"refers to {ref!r}, which it does not contain") from None
    return raw
