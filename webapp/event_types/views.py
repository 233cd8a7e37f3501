"""Dashboard pages: the event catalogue and the tenant's custom types."""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from ..dashboard.toast import toast
from ..extensions import db
from ..services import event_types
from ..models import EventType
from ..services.common import ValidationError, get_owned
from .forms import EventTypeForm

bp = Blueprint("event_types", __name__)


def _page(form: EventTypeForm):
    built_in = [dict(t, example_json=json.dumps(t["example"], indent=2, ensure_ascii=False))
                for t in event_types.all_types() if t["built_in"]]
    return render_template("event_types/list.html", built_in=built_in, custom=event_types.custom_types(),
                           form=form), form.status


@bp.get("/event-types")
@login_required
def index():
    """List the built-in and custom event types, with a form for a new custom one."""
    return _page(EventTypeForm())


@bp.post("/event-types")
@login_required
def create():
    """Add a custom event type."""
    form = EventTypeForm()
    if form.validate_on_submit():
        try:
            event_type = event_types.create_custom_type(form.payload())
        except ValidationError as exc:
            form.add_error(exc)
        else:
            db.session.commit()
            flash(f"Event type {event_type.name} added: your agents can send it now.", "success")
            return redirect(url_for("event_types.index"))
    return _page(form)


@bp.post("/event-types/<type_id>/delete")
@login_required
def delete(type_id):
    """Delete a custom event type."""
    name = get_owned(EventType, type_id).name
    event_types.delete_custom_type(type_id)
    db.session.commit()
    if request.htmx:
        return "", 200, toast(f"Event type {name} deleted.")  # the row's hx-swap removes it
    flash("Event type deleted.", "success")
    return redirect(url_for("event_types.index"))
