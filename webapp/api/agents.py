"""/api/v1/agents, and their per-agent API keys"""
from flask import request

from ..extensions import db
from ..services import agents, api_keys
from ..services.events import parse_time
from . import bp, json_body, limit_arg, listing
from .serializers import agent_json, api_key_json


@bp.get("/agents")
def list_agents():
    rows, next_cursor = agents.list_agents(request.args.get("cursor"), limit_arg())
    return listing(rows, next_cursor, agent_json)


@bp.post("/agents")
def create_agent():
    agent = agents.create_agent(json_body())
    db.session.commit()
    return agent_json(agent), 201


@bp.get("/agents/<agent_id>")
def get_agent(agent_id):
    return agent_json(agents.get_agent(agent_id))


@bp.patch("/agents/<agent_id>")
def update_agent(agent_id):
    agent = agents.update_agent(agent_id, json_body())
    db.session.commit()
    return agent_json(agent)


@bp.delete("/agents/<agent_id>")
def delete_agent(agent_id):
    agents.delete_agent(agent_id)
    db.session.commit()
    return "", 204


@bp.post("/agents/<agent_id>/keys")
def create_agent_key(agent_id):
    agent = agents.get_agent(agent_id)
    data = json_body()
    key, plaintext = api_keys.create_key(data.get("name") or f"{agent.name} key", agent_id=agent.id,
                                         event_types=data.get("event_types"),
                                         expires_at=parse_time(data, "expires_at"))
    db.session.commit()
    return api_key_json(key, plaintext), 201, {"Cache-Control": "no-store"}
