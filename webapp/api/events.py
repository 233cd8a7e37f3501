"""/api/v1/events: ingest and read back"""
from flask import request

from ..extensions import limiter
from ..services import events
from . import bp, ingest_limit, json_body, rate_limit_key
from .serializers import event_json


@bp.post("/events")
@limiter.limit(ingest_limit, key_func=rate_limit_key)
def ingest():
    accepted = events.ingest(json_body(), request.headers.get("Idempotency-Key"))
    answer = {"id": accepted.event.id, "type": accepted.event.type, "deliveries": accepted.deliveries}
    return answer, 200 if accepted.replayed else 202


@bp.get("/events/<event_id>")
def get_event(event_id):
    event = events.get_event(event_id)
    return event_json(event, events.event_deliveries(event.id))
