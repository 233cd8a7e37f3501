"""Dashboard pages: recent conversations and runs, and the timeline of one."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import login_required

from ..services import agents, api_keys, endpoints, events

bp = Blueprint("conversations", __name__)


@bp.get("/conversations")
@login_required
def index():
    """List the latest conversations and runs, with a box to open any one's timeline."""
    return render_template("conversations/list.html", conversations=events.recent("conversation_id"),
                           runs=events.recent("run_id"))


@bp.get("/conversations/timeline")
@login_required
def timeline():
    """Show every event of one conversation or run in order, each with its deliveries' outcomes."""
    conversation_id = (request.args.get("conversation_id") or "").strip()[:255] or None
    run_id = (request.args.get("run_id") or "").strip()[:255] or None
    if not (conversation_id or run_id):
        return redirect(url_for("conversations.index"))
    rows, truncated = events.timeline(conversation_id=conversation_id, run_id=run_id)
    deliveries = events.deliveries_of([event.id for event in rows])
    keys = api_keys.get_keys(event.api_key_id for event in rows if event.api_key_id)
    return render_template(
        "conversations/timeline.html", events=rows, deliveries=deliveries, truncated=truncated,
        limit=events.TIMELINE_LIMIT, conversation_id=conversation_id, run_id=run_id, keys=keys,
        ids={event.id for event in rows}, agent_names=agents.names_of(event.agent_id for event in rows),
        endpoint_urls=endpoints.urls_of(d.endpoint_id for sent in deliveries.values() for d in sent))
