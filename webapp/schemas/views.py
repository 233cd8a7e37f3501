"""Dashboard page: one event type's schema, its example and mode, and a custom type's schema to edit."""
from __future__ import annotations

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from ..catalogue import BUILT_IN, INGESTIBLE, SCHEMAS
from ..extensions import db
from ..models import EventType
from ..services import event_types, schemas
from ..services.common import ValidationError
from .forms import SCHEMA_HINT, ModeForm, SchemaForm

bp = Blueprint("schemas", __name__)


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.app_template_global()
def schema_modes() -> dict[str, str]:
    """The tenant's event types in "warn" mode."""
    return schemas.modes()


def _type(name: str | None) -> tuple[str, EventType | None]:
    """The built-in or custom type of this name (404 when the tenant has no such type)."""
    if name in BUILT_IN:
        return name, None
    custom = event_types.find_custom_type(name) if name else None
    if custom is None:
        abort(404)
    return name, custom


def _page(name: str, custom: EventType | None, form: SchemaForm | None = None, status: int = 200):
    if custom is not None and form is None:
        form = SchemaForm(schema=pretty_json(custom.schema) if custom.schema else "")
    schema = SCHEMAS[name] if custom is None else custom.schema
    example = BUILT_IN[name][1] if custom is None else None
    return render_template("schemas/detail.html", name=name, custom=custom, schema=schema, example=example,
                           description=BUILT_IN[name][0] if custom is None else custom.description,
                           mode=schemas.mode_of(name), sendable=name in INGESTIBLE or custom is not None,
                           form=form, hint=SCHEMA_HINT, mode_form=ModeForm()), status


@bp.get("/event-types/schema")
@login_required
def detail():
    """Show an event type's schema, example and mode (and a custom type's schema to edit)."""
    name, custom = _type(request.args.get("type"))
    return _page(name, custom)


@bp.post("/event-types/schema")
@login_required
def save():
    """Save a custom type's schema (empty removes it)."""
    name, custom = _type(request.args.get("type"))
    if custom is None:
        abort(404)  # the built-in schemas are the catalogue's
    form = SchemaForm()
    if form.validate_on_submit():
        try:
            event_types.set_custom_schema(custom.id, form.schema.data)
        except ValidationError as exc:
            form.add_error(exc)
        else:
            db.session.commit()
            flash(f"Schema of {name} saved: events of this type are checked against it from now on."
                  if custom.schema else f"Schema of {name} removed: any event of this type is accepted.", "success")
            return redirect(url_for("schemas.detail", type=name))
    return _page(name, custom, form, form.status)


@bp.post("/event-types/schema/mode")
@login_required
def set_mode():
    """Make a type's schema reject events that fail it, or only warn about them while agents catch up."""
    form = ModeForm()
    if not form.validate_on_submit():
        abort(400)
    name, _ = _type(form.type.data)
    try:
        schemas.set_mode(name, form.mode.data)
    except ValidationError:
        abort(400)
    db.session.commit()
    if form.mode.data == schemas.WARN:
        flash(f"{name}: events that fail the schema are accepted now, with warnings.", "success")
    else:
        flash(f"{name}: events that fail the schema are refused with 422 now.", "success")
    return redirect(url_for("schemas.detail", type=name))
