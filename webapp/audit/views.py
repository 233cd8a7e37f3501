"""Dashboard page: the tenant's audit log, newest first."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from ..dashboard.paging import keyset_page
from ..services import audit

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50


@bp.get("/audit")
@login_required
def index():
    """List the audit events, newest first, a page at a time."""
    page = keyset_page(audit.list_events, "audit.index", PAGE_SIZE,
                       "That page of the audit log does not exist: here are the newest changes.")
    return render_template("audit/list.html", events=page.rows, newest_url=page.first_url, older_url=page.next_url,
                           describe=audit.describe)
