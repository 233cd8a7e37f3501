"""The JSON shapes of the contract's objects."""
from __future__ import annotations

import json

from ..models import Agent, ApiKey, Attempt, Delivery, Endpoint, Event
from ..services.events import isoformat


def agent_json(agent: Agent) -> dict:
    return {"id": agent.id, "name": agent.name, "description": agent.description,
            "event_budget_per_minute": agent.event_budget_per_minute, "created_at": isoformat(agent.created_at)}


def api_key_json(key: ApiKey, plaintext: str | None = None) -> dict:
    data = {"id": key.id, "name": key.name, "prefix": key.prefix, "agent_id": key.agent_id,
            "event_types": list(key.event_types or []), "expires_at": isoformat(key.expires_at),
            "created_at": isoformat(key.created_at)}
    if plaintext is not None:
        data["key"] = plaintext
    return data


def endpoint_json(endpoint: Endpoint) -> dict:
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
            "event_types": list(endpoint.event_types or []), "agent_ids": list(endpoint.agent_ids or []),
            "enabled": endpoint.enabled, "disabled_reason": endpoint.disabled_reason,
            "rate_limit": int(endpoint.rate_limit) if endpoint.rate_limit else None,
            "created_at": isoformat(endpoint.created_at)}


def attempt_json(attempt: Attempt) -> dict:
    return {"id": attempt.id, "trigger": attempt.trigger, "started_at": isoformat(attempt.started_at),
            "duration_ms": attempt.duration_ms, "response_status": attempt.response_status,
            "error": attempt.error, "response_body": attempt.response_body}


def delivery_json(delivery: Delivery, detail: bool = False) -> dict:
    data = {"id": delivery.id, "event_id": delivery.event_id, "endpoint_id": delivery.endpoint_id,
            "event_type": delivery.event_type, "agent_id": delivery.agent_id, "status": delivery.status,
            "attempt_count": delivery.attempt_count, "next_attempt_at": isoformat(delivery.next_attempt_at),
            "created_at": isoformat(delivery.created_at)}
    if detail:
        data["attempts"] = [attempt_json(a) for a in delivery.attempts]
    return data


def event_json(event: Event, deliveries: list[Delivery]) -> dict:
    body = json.loads(event.body)
    data = event_summary_json(event, body)
    data["deliveries"] = [{"id": d.id, "endpoint_id": d.endpoint_id, "status": d.status,
                           "attempt_count": d.attempt_count} for d in deliveries]
    return data


def event_summary_json(event: Event, body: dict | None = None) -> dict:
    """An event without its deliveries, as GET /events lists them."""
    body = json.loads(event.body) if body is None else body
    return {"id": event.id, "type": event.type, "agent_id": event.agent_id,
            "conversation_id": event.conversation_id, "run_id": event.run_id,
            "parent_event_id": event.parent_event_id, "traceparent": event.traceparent,
            "api_key_id": event.api_key_id, "user": body.get("user"), "data": body.get("data"),
            "occurred_at": isoformat(event.occurred_at), "received_at": isoformat(event.received_at)}
