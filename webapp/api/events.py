"""/api/v1/events: ingest, check without storing, list and read back"""
from flask import g, jsonify, request

from ..errors import json_error
from ..services import events
from ..services.budget import BudgetExceeded
from ..services.schemas import SchemaViolations
from . import bp, ingest_rate_limited, json_body, limit_arg, listing
from .serializers import event_json, event_summary_json


def _agent_scope() -> str | None:
    """A per-agent key sees only its agent's events."""
    return g.api_key.agent_id


@bp.post("/events")
@ingest_rate_limited
def ingest():
    trace = events.Trace.from_headers(request.headers.get("traceparent"), request.headers.get("tracestate"))
    accepted = events.ingest(json_body(), request.headers.get("Idempotency-Key"), api_key=g.api_key, trace=trace)
    answer = {"id": accepted.id, "type": accepted.type, "deliveries": accepted.deliveries}
    if accepted.warnings:
        answer["warnings"] = accepted.warnings
    return answer, 200 if accepted.replayed else 202


@bp.post("/events/validate")
@ingest_rate_limited
def validate_event():
    answer = {"valid": True}
    warnings = events.check(json_body(), g.api_key)
    if warnings:
        answer["warnings"] = warnings
    return answer


@bp.get("/events")
def list_events():
    requested, scope = request.args.get("agent_id") or None, _agent_scope()
    if scope and requested and requested != scope:
        return listing([], None, event_summary_json)  # another agent's events: a per-agent key sees none
    rows, next_cursor = events.list_events(
        conversation_id=request.args.get("conversation_id"), run_id=request.args.get("run_id"),
        agent_id=scope or requested, event_type=request.args.get("type"), cursor=request.args.get("cursor"),
        limit=limit_arg())
    return listing(rows, next_cursor, event_summary_json)


@bp.get("/events/<event_id>")
def get_event(event_id):
    event = events.get_event(event_id, _agent_scope())
    return event_json(event, events.event_deliveries(event.id))


@bp.errorhandler(SchemaViolations)
def _schema_violations(exc: SchemaViolations):
    """A 422 in the contract's shape, with every violation's JSON path in ``details``."""
    return jsonify({"error": {"code": "validation_failed", "message": f"{exc.field}: {exc.message}",
                              "details": [v.as_json() for v in exc.violations]}}), 422


@bp.errorhandler(BudgetExceeded)
def _budget_exceeded(exc: BudgetExceeded):
    return json_error(429, str(exc), "agent_budget_exceeded", headers={"Retry-After": str(exc.retry_after)})
