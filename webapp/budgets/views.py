"""What the agents pages show of the runaway-agent guard (services/budget.py): each agent's budget and
how often it was throttled in the last hour. No pages of its own: template globals for the agents pages."""
from __future__ import annotations

from flask import Blueprint

from ..models import Agent
from ..services import budget
from ..tenancy import current_tenant_id

bp = Blueprint("budgets", __name__)


@bp.app_template_global()
def default_event_budget() -> int:
    """Events a minute an agent without its own budget may send (0: no limit)."""
    return budget.default_budget()


@bp.app_template_global()
def event_budget_of(agent: Agent) -> int:
    return budget.budget_of(agent)


@bp.app_template_global()
def agent_throttles() -> dict[str, int]:
    """How many events each of the tenant's agents had refused for its budget in the last hour."""
    tenant_id = current_tenant_id()
    return budget.throttled_last_hour(tenant_id) if tenant_id else {}
