"""Dashboard pages: the live delivery log, one delivery with its attempts, and resends."""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from ..dashboard.pickers import picker
from ..dashboard.toast import toast
from ..models import DELIVERY_STATUSES, Delivery, utcnow
from ..services import agents, choices, deliveries, endpoints, event_types
from ..services.common import ValidationError
from . import live

bp = Blueprint("deliveries", __name__)

FILTERS = ("status", "endpoint_id", "event_type", "agent_id")
PAGE_SIZE = 50
LOG_TARGET = "delivery-log"  # the block that holds the live indicator, the table and the pager
DETAIL_TARGET = "delivery-state"  # the block of the detail page that refreshes while the delivery is under way


def _names(rows) -> dict:
    """What the rows show beside each delivery: its endpoint's URL and its agent's name (two small queries, of
    these rows' endpoints and agents only: the live log asks again on every poll that finds a change)."""
    return {"endpoint_urls": endpoints.urls_of(row.endpoint_id for row in rows),
            "agent_names": agents.names_of(row.agent_id for row in rows)}


def _filters() -> dict:
    return {name: request.args.get(name) or None for name in FILTERS}


def _resolve(filters: dict) -> str | None:
    """Turn a name or URL typed in the endpoint or agent filter into its id, in ``filters``; the error if one
    names no endpoint or agent, or several."""
    try:
        for name, kind in (("endpoint_id", choices.ENDPOINTS), ("agent_id", choices.AGENTS)):
            filters[name] = choices.resolve(kind, filters[name], name)
    except ValidationError as exc:
        return exc.message
    return None


def _url(**params) -> str:
    return url_for("deliveries.index", **{k: v for k, v in params.items() if v})


def _log(filters: dict, cursor: str | None, error: str | None = None):
    """The log's block: one page of rows, the pager and, on the newest page, the live poller. With ``error``
    (a filter that names nothing), no rows but the error."""
    rendered_at = utcnow()
    rows, next_cursor = [], None
    try:
        if error is None:
            rows, next_cursor = deliveries.list_deliveries(**filters, cursor=cursor, limit=PAGE_SIZE)
    except ValidationError as exc:
        error = f"{exc.field.replace('_', ' ').capitalize()} {exc.message}."
    poll_url = None
    if cursor is None and error is None:  # only the newest page gains rows
        state = live.LiveState.for_page(rows, next_cursor is not None, rendered_at)
        poll_url = _url(**filters, since=state.encode())
    context = dict(rows=rows, filters=filters, error=error, poll_url=poll_url,
                   older_url=_url(**filters, cursor=next_cursor) if next_cursor else None,
                   newest_url=_url(**filters) if cursor else None, **_names(rows))
    return context, 422 if error else 200


@bp.get("/deliveries")
@login_required
def index():
    """Show the delivery log, newest first, filtered by the query string; the live poll gets what changed."""
    filters = _filters()
    since = request.args.get("since")
    if since and request.htmx:
        return _poll(filters, since)
    typed = dict(filters)
    error = _resolve(filters)
    if error is None and filters != typed:
        return redirect(_url(**filters))  # a name was typed: the address names the id, as the log's links do
    context, status = _log(filters, request.args.get("cursor") or None, error)
    return render_template(
        "deliveries/list.html", statuses=DELIVERY_STATUSES, types=[t["name"] for t in event_types.all_types()],
        endpoint_picker=picker("endpoints", "endpoint_id", filters["endpoint_id"]),
        agent_picker=picker("agents", "agent_id", filters["agent_id"]), **context), status


def _poll(filters: dict, token: str):
    """Answer the live log's poll: 204 when nothing changed, else only the rows that did, out of band."""
    try:
        state = live.LiveState.decode(token)
    except ValidationError:
        state = None
    if state is not None and filters["status"] not in (None, *DELIVERY_STATUSES):
        state = None
    delta = None
    if state is not None:
        polled_at = utcnow()
        rows = deliveries.changed_since(state.since, endpoint_id=filters["endpoint_id"],
                                        event_type=filters["event_type"], agent_id=filters["agent_id"],
                                        limit=live.MAX_CHANGES + 1)
        if not rows:
            return "", 204
        delta = live.delta(state, rows, filters["status"], polled_at)
    if delta is None or delta.reset:
        # Too much changed (or a token we cannot read): show the newest page afresh.
        context, status = _log(filters, None)
        return render_template("deliveries/_log.html", **context), status, {
            "HX-Retarget": f"#{LOG_TARGET}", "HX-Reswap": "outerHTML"}
    return render_template("deliveries/_delta.html", delta=delta, status_filter=filters["status"],
                           poll_url=_url(**filters, since=delta.state.encode()),
                           **(_names(delta.new + delta.changed) if not delta.empty else {}))


def _version(delivery: Delivery) -> str:
    return str(int(delivery.updated_at.timestamp() * 1_000_000)) if delivery.updated_at else ""


@bp.get("/deliveries/<delivery_id>")
@login_required
def detail(delivery_id):
    """Show a delivery's payload, the headers sent and every attempt; the state block refreshes itself."""
    delivery = deliveries.get_delivery(delivery_id)
    if request.htmx and request.htmx.target == DETAIL_TARGET:
        if request.args.get("v") == _version(delivery):
            return "", 204  # unchanged since the page's last look
        return render_template("deliveries/_state.html", delivery=delivery, version=_version(delivery))
    payload = json.dumps(delivery.event.payload, indent=2, ensure_ascii=False)
    return render_template("deliveries/detail.html", delivery=delivery, payload=payload, version=_version(delivery),
                           agent_names=agents.names_of([delivery.agent_id]))


@bp.post("/deliveries/<delivery_id>/resend")
@login_required
def resend(delivery_id):
    """Resend a delivery now, as a new manual attempt."""
    delivery = deliveries.resend(delivery_id)
    if request.htmx:
        headers = toast("Resend queued: a new attempt starts at once.")
        if request.htmx.target == DETAIL_TARGET:
            return render_template("deliveries/_state.html", delivery=delivery, version=_version(delivery)), 200, headers
        return render_template("deliveries/_row.html", row=delivery, **_names([delivery])), 200, headers
    flash("Resend queued: a new attempt starts at once.", "success")
    return redirect(url_for("deliveries.detail", delivery_id=delivery.id))


@bp.app_template_filter("delivery_version")
def delivery_version(delivery: Delivery) -> str:
    """The row's version: the live log skips a row it already shows in this version."""
    return _version(delivery)
