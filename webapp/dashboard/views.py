"""The overview: what the tenant has set up, how deliveries are going, and how to send a first event."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from ..services import agents, api_keys, deliveries, endpoints

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@login_required
def overview():
    """Show the tenant's counts and the first-event walkthrough."""
    agent_list = agents.all_agents()
    endpoint_list = endpoints.all_endpoints()
    return render_template(
        "dashboard/overview.html", tenant=current_user.tenant, agents=agent_list, endpoints=endpoint_list,
        enabled_endpoints=sum(1 for e in endpoint_list if e.enabled), deliveries=deliveries.count_by_status(),
        live_keys=sum(1 for k in api_keys.list_keys() if k.revoked_at is None),
        first_agent=agent_list[0] if agent_list else None, events_url=request.host_url + "api/v1/events")
