"""What the agents pages show of the runaway-agent guard (services/budget.py): each agent's budget. No
pages of its own: template globals for the agents pages (the agent list reads the throttles itself)."""
from __future__ import annotations

from flask import Blueprint

from ..models import Agent
from ..services import budget

bp = Blueprint("budgets", __name__)


@bp.app_template_global()
def default_event_budget() -> int:
    """Events a minute an agent without its own budget may send (0: no limit)."""
    return budget.default_budget()


@bp.app_template_global()
def event_budget_of(agent: Agent) -> int:
    return budget.budget_of(agent)
