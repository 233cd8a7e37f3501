"""Agents: the AI agents a tenant registers; events name the agent they come from."""
from __future__ import annotations

from sqlalchemy import func, select, tuple_

from ..extensions import db
from ..models import Agent
from . import audit
from .common import ValidationError, decode_cursor, encode_cursor, get_owned, page, text_field
from .endpoints import forget_subscription, naming_agent


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
    forget_subscription("agent_ids", agent.id, f"the agent {agent.name!r}", naming_agent(agent.id))
    audit.record("agent.deleted", "agent", agent.id, name=agent.name)
    db.session.delete(agent)
    db.session.flush()


def get_agent(agent_id: str) -> Agent:
    return get_owned(Agent, agent_id)


def list_agents(cursor: str | None = None, limit: int = 100):
    return page(select(Agent), Agent, cursor, limit)


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(Agent))


def first_by_name() -> Agent | None:
    """The agent the dashboard's examples name: the first in the agent list."""
    return db.session.scalars(select(Agent).order_by(Agent.name, Agent.id).limit(1)).first()


def agents_by_name(cursor: str | None = None, limit: int = 100) -> tuple[list[Agent], str | None]:
    """A page of the agents in name order (the dashboard's), and the cursor of the next page or None. The
    cursor is the page's last agent; after its deletion the cursor is refused, as one not handed out.

    Raises:
        ValidationError: the cursor is not one this returned, or its agent is gone.
    """
    statement = select(Agent).order_by(Agent.name, Agent.id)
    if cursor:
        last = db.session.execute(select(Agent.name, Agent.id).where(Agent.id == decode_cursor(cursor))).one_or_none()
        if last is None:
            raise ValidationError("cursor", "names an agent that no longer exists")
        statement = statement.where(tuple_(Agent.name, Agent.id) > tuple_(*last))
    rows = list(db.session.scalars(statement.limit(limit + 1)))
    return rows[:limit], encode_cursor(rows[limit - 1].id) if len(rows) > limit else None


def names_of(agent_ids) -> dict[str, str]:
    """The names of these of the tenant's agents, by id (a deleted agent's id is left out): what a page that
    names the agents of its rows needs, without loading every agent."""
    ids = {agent_id for agent_id in agent_ids if agent_id and isinstance(agent_id, str)}
    return dict(db.session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(ids))).all()) if ids else {}


def get_agents(agent_ids) -> list[Agent]:
    """These of the tenant's agents, in name order (a deleted agent's id is left out)."""
    return list(db.session.scalars(select(Agent).where(Agent.id.in_(list(agent_ids))).order_by(Agent.name)))
