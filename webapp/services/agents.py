"""Agents: the AI agents a tenant registers; events name the agent they come from."""
from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..models import Agent, Event
from .common import get_owned, page, text_field
from .endpoints import forget_subscription


def _fields(data: dict, partial: bool) -> dict:
    values = {}
    if not partial or "name" in data:
        values["name"] = text_field(data, "name", max_length=200, required=True)
    if not partial or "description" in data:
        values["description"] = text_field(data, "description", max_length=2000, default="")
    return values


def create_agent(data: dict) -> Agent:
    """Raises ValidationError naming the field."""
    agent = Agent(**_fields(data, partial=False))
    db.session.add(agent)
    db.session.flush()
    return agent


def update_agent(agent_id: str, data: dict) -> Agent:
    agent = get_owned(Agent, agent_id)
    for name, value in _fields(data, partial=True).items():
        setattr(agent, name, value)
    db.session.flush()
    return agent


def delete_agent(agent_id: str) -> None:
    """Delete the agent; endpoints that filtered on it stop naming it. Its past events stay."""
    agent = get_owned(Agent, agent_id)
    forget_subscription("agent_ids", agent.id, f"the agent {agent.name!r}")
    db.session.delete(agent)
    db.session.flush()


def get_agent(agent_id: str) -> Agent:
    return get_owned(Agent, agent_id)


def list_agents(cursor: str | None = None, limit: int = 100):
    return page(select(Agent), Agent, cursor, limit)


def all_agents() -> list[Agent]:
    return list(db.session.scalars(select(Agent).order_by(Agent.name)))


def event_counts() -> dict[str, int]:
    """Events received per agent id."""
    rows = db.session.execute(select(Event.agent_id, func.count()).group_by(Event.agent_id))
    return {agent_id: count for agent_id, count in rows if agent_id}
