"""Dashboard page: the tenant's audit log, newest first."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import login_required

from ..services import audit
from ..services.common import ValidationError

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50


@bp.get("/audit")
@login_required
def index():
    """List the audit events, newest first, a page at a time."""
    cursor = request.args.get("cursor") or None
    try:
        events, next_cursor = audit.list_events(cursor, PAGE_SIZE)
    except ValidationError:  # a cursor we did not hand out: start from the newest
        events, next_cursor = audit.list_events(None, PAGE_SIZE)
        cursor = None
    return render_template("audit/list.html", events=events, next_cursor=next_cursor, paged=bool(cursor),
                           describe=audit.describe)
