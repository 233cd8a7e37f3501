"""/api/v1/event-types and the OpenAPI document"""
from ..services.event_types import all_types
from . import bp
from .openapi import document


@bp.get("/event-types")
def event_types():
    return {"data": all_types(), "next_cursor": None}


@bp.get("/openapi.json")
def openapi():
    return document()
