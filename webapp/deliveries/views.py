"""Dashboard pages: the delivery log, one delivery with its attempts, and resends."""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from ..models import DELIVERY_STATUSES
from ..services import agents, deliveries, endpoints, event_types
from ..services.common import ValidationError

bp = Blueprint("deliveries", __name__)

FILTERS = ("status", "endpoint_id", "event_type", "agent_id")
PAGE_SIZE = 50
ROWS_TARGET = "delivery-rows"  # the id of the tbody that polls for itself


@bp.get("/deliveries")
@login_required
def index():
    """Show the delivery log, newest first, filtered by the query string; htmx polls get the rows only."""
    filters = {name: request.args.get(name) or None for name in FILTERS}
    cursor = request.args.get("cursor") or None
    error = None
    try:
        rows, next_cursor = deliveries.list_deliveries(**filters, cursor=cursor, limit=PAGE_SIZE)
    except ValidationError as exc:
        rows, next_cursor, error = [], None, f"{exc.field.replace('_', ' ').capitalize()} {exc.message}."
    # Only the newest page polls: older pages do not gain rows.
    poll_url = request.full_path if cursor is None and error is None else None
    if request.htmx and request.htmx.target == ROWS_TARGET:
        return render_template("deliveries/_rows.html", rows=rows, poll_url=poll_url)
    older_url = url_for("deliveries.index", **{k: v for k, v in filters.items() if v}, cursor=next_cursor) \
        if next_cursor else None
    return render_template(
        "deliveries/list.html", rows=rows, filters=filters, error=error, poll_url=poll_url, older_url=older_url,
        newest_url=url_for("deliveries.index", **{k: v for k, v in filters.items() if v}) if cursor else None,
        statuses=DELIVERY_STATUSES, endpoints=endpoints.all_endpoints(), agents=agents.all_agents(),
        types=[t["name"] for t in event_types.all_types()]), 422 if error else 200


@bp.get("/deliveries/<delivery_id>")
@login_required
def detail(delivery_id):
    """Show a delivery's payload and every attempt."""
    delivery = deliveries.get_delivery(delivery_id)
    payload = json.dumps(delivery.event.payload, indent=2, ensure_ascii=False)
    return render_template("deliveries/detail.html", delivery=delivery, payload=payload)


@bp.post("/deliveries/<delivery_id>/resend")
@login_required
def resend(delivery_id):
    """Resend a delivery now, as a new manual attempt."""
    delivery = deliveries.resend(delivery_id)
    if request.htmx:
        return render_template("deliveries/_row.html", row=delivery)
    flash("Resend queued: a new attempt starts at once.", "success")
    return redirect(url_for("deliveries.detail", delivery_id=delivery.id))
