"""/api/v1/deliveries: the log, detail and resend"""
from flask import request

from ..services import deliveries
from . import bp, limit_arg, listing
from .serializers import delivery_json


@bp.get("/deliveries")
def list_deliveries():
    args = request.args
    rows, next_cursor = deliveries.list_deliveries(
        status=args.get("status"), endpoint_id=args.get("endpoint_id"), event_type=args.get("event_type"),
        agent_id=args.get("agent_id"), cursor=args.get("cursor"), limit=limit_arg())
    return listing(rows, next_cursor, delivery_json)


@bp.get("/deliveries/<delivery_id>")
def get_delivery(delivery_id):
    return delivery_json(deliveries.get_delivery(delivery_id), detail=True)


@bp.post("/deliveries/<delivery_id>/resend")
def resend(delivery_id):
    return delivery_json(deliveries.resend(delivery_id)), 202
