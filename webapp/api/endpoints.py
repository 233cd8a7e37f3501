"""/api/v1/endpoints, their secrets and test events"""
from flask import request

from ..extensions import db
from ..services import deliveries, endpoints
from ..services.common import ValidationError
from ..services.events import parse_time, send_test_event
from . import bp, json_body, limit_arg, listing
from .serializers import endpoint_json


@bp.get("/endpoints")
def list_endpoints():
    rows, next_cursor = endpoints.list_endpoints(request.args.get("cursor"), limit_arg())
    return listing(rows, next_cursor, endpoint_json)


@bp.post("/endpoints")
def create_endpoint():
    endpoint = endpoints.create_endpoint(json_body())
    db.session.commit()
    return endpoint_json(endpoint), 201


@bp.get("/endpoints/<endpoint_id>")
def get_endpoint(endpoint_id):
    return endpoint_json(endpoints.get_endpoint(endpoint_id))


@bp.patch("/endpoints/<endpoint_id>")
def update_endpoint(endpoint_id):
    endpoint = endpoints.update_endpoint(endpoint_id, json_body())
    db.session.commit()
    return endpoint_json(endpoint)


@bp.delete("/endpoints/<endpoint_id>")
def delete_endpoint(endpoint_id):
    endpoints.delete_endpoint(endpoint_id)
    db.session.commit()
    return "", 204


@bp.get("/endpoints/<endpoint_id>/secret")
def get_secret(endpoint_id):
    _, secret = endpoints.reveal_secret(endpoint_id)
    db.session.commit()  # the audit event of the reveal
    return {"secret": secret}


@bp.post("/endpoints/<endpoint_id>/secret/rotate")
def rotate_secret(endpoint_id):
    secret = endpoints.rotate_secret(endpoint_id)
    db.session.commit()
    return {"secret": secret}


@bp.post("/endpoints/<endpoint_id>/recover")
def recover(endpoint_id):
    data = json_body()
    endpoints.get_endpoint(endpoint_id)  # an unknown id is a 404 before the body is judged
    since = parse_time(data, "since")
    if since is None:
        raise ValidationError("since", "is required")
    return {"deliveries": deliveries.recover(endpoint_id, since)}, 202


@bp.post("/endpoints/<endpoint_id>/test")
def test_endpoint(endpoint_id):
    accepted = send_test_event(endpoint_id)
    return {"id": accepted.id, "type": accepted.type, "deliveries": accepted.deliveries}, 202
