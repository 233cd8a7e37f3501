"""The overview: how deliveries went over the last day, what is failing, and how to send a first event."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from ..models import utcnow
from ..services import agents, api_keys, endpoints, stats
from .chart import stacked_bars
from .formatting import FILTERS

bp = Blueprint("dashboard", __name__)
for _name, _filter in FILTERS.items():
    bp.add_app_template_filter(_filter, _name)


def api_base_url() -> str:
    """Where this dashboard's API lives, as the tenant's agents should call it."""
    return request.url_root.rstrip("/") + "/api/v1"


@bp.get("/")
@login_required
def overview():
    """Show the last 24 hours of deliveries, each endpoint's health, and the first-event walkthrough."""
    now = utcnow()
    # Every endpoint's counts, to rank them and sum them; the p95 of the busiest, which the page shows.
    health = stats.endpoint_health(now, p95=False)
    busiest = stats.busiest(health)
    stats.add_p95(health, [endpoint.id for endpoint in busiest], now)
    chart = stacked_bars(stats.hourly_deliveries(now))
    attempts = sum(h.attempts for h in health.values())
    successes = sum(h.successes for h in health.values())
    return render_template(
        "dashboard/overview.html", tenant=current_user.tenant, agent_count=agents.count(),
        endpoint_count=endpoints.count(), health=health, busiest=busiest, chart=chart,
        failing=stats.failing_endpoints(health),
        attempts=attempts, success_rate=successes / attempts if attempts else None,
        live_keys=api_keys.count_live(now),
        has_events=stats.has_events(), first_agent=agents.first_by_name(),
        api_url=api_base_url())
