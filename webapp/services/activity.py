"""What each agent has been sending, for the agent list: its events in the last 24 hours, and when its last
event came. Read from the agents' hourly tallies (models.AgentEventTally), which a trigger on events keeps,
so the list costs the same at a million events as at none."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from ..extensions import db
from ..models import Agent, AgentEventTally, utcnow
from .tallies import hour_of

HOURS = 24


@dataclass(frozen=True)
class Activity:
    events_last_day: int = 0  # received in the current clock hour and the 23 before it
    last_event_at: datetime | None = None  # None: no event kept (retention deletes old ones)


def of_agents(agent_ids: list[str], now: datetime | None = None) -> dict[str, Activity]:
    """Each of these agents' activity (the current tenant's agents; another's have none)."""
    if not agent_ids:
        return {}
    first_hour = hour_of(now or utcnow()) - timedelta(hours=HOURS - 1)
    counts = dict(db.session.execute(
        select(AgentEventTally.agent_id, func.sum(AgentEventTally.events))
        .where(AgentEventTally.agent_id.in_(agent_ids), AgentEventTally.hour >= first_hour)
        .group_by(AgentEventTally.agent_id)).all())
    # The newest tally of each agent: one step down the key (tenant, agent, hour) each, however old.
    last_at = (select(AgentEventTally.last_received_at)
               .where(AgentEventTally.tenant_id == Agent.tenant_id, AgentEventTally.agent_id == Agent.id)
               .order_by(AgentEventTally.hour.desc()).limit(1).scalar_subquery())
    last = dict(db.session.execute(select(Agent.id, last_at).where(Agent.id.in_(agent_ids))).all())
    return {agent_id: Activity(int(counts.get(agent_id, 0)), last.get(agent_id)) for agent_id in agent_ids}


def prune(connection, before: datetime) -> int:
    """Delete every tenant's tallies of the hours that ended by ``before`` (retention's cutoff for events)."""
    table = AgentEventTally.__table__
    return connection.execute(delete(table).where(table.c.hour < hour_of(before))).rowcount
