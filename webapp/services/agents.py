"""Agents: the AI agents a tenant registers; events name the agent they come from."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Agent
from . import audit
from .common import ValidationError, get_owned, page, text_field
from .endpoints import forget_subscription


def _fields(data: dict, partial: bool) -> dict:
    values = {}
    if not partial or "name" in data:
        values["name"] = text_field(data, "name", max_length=200, required=True)
    if not partial or "description" in data:
        values["description"] = text_field(data, "description", max_length=2000, default="")
    if not partial or "event_budget_per_minute" in data:
        values["event_budget_per_minute"] = _budget(data.get("event_budget_per_minute"))
    return values


MAX_EVENT_BUDGET = 1_000_000


def _budget(value) -> int | None:
    """An agent's own events-a-minute budget; None means the default (AGENT_EVENT_BUDGET)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EVENT_BUDGET:
        raise ValidationError("event_budget_per_minute",
                              f"must be a whole number from 1 to {MAX_EVENT_BUDGET:,}, or null for the default")
    return value


def create_agent(data: dict) -> Agent:
    """Raises ValidationError naming the field."""
    agent = Agent(**_fields(data, partial=False))
    db.session.add(agent)
    db.session.flush()
    audit.record("agent.created", "agent", agent.id, name=agent.name)
    return agent


def update_agent(agent_id: str, data: dict) -> Agent:
    agent = get_owned(Agent, agent_id)
    changed = []
    for name, value in _fields(data, partial=True).items():
        if getattr(agent, name) != value:
            changed.append(name)
        setattr(agent, name, value)
    db.session.flush()
    if changed:
        audit.record("agent.updated", "agent", agent.id, name=agent.name, changed=changed)
    return agent


def delete_agent(agent_id: str) -> None:
    """Delete the agent; endpoints that filtered on it stop naming it. Its past events stay."""
    agent = get_owned(Agent, agent_id)
    forget_subscription("agent_ids", agent.id, f"the agent {agent.name!r}")
    audit.record("agent.deleted", "agent", agent.id, name=agent.name)
    db.session.delete(agent)
    db.session.flush()


def get_agent(agent_id: str) -> Agent:
    return get_owned(Agent, agent_id)


def list_agents(cursor: str | None = None, limit: int = 100):
    return page(select(Agent), Agent, cursor, limit)


def all_agents() -> list[Agent]:
    return list(db.session.scalars(select(Agent).order_by(Agent.name)))

