"""Error pages and JSON errors. Nothing a user sees ever carries a stack trace."""
from __future__ import annotations

import logging
import time

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from .extensions import db, limiter

from .services.common import NotFound, ValidationError

log = logging.getLogger(__name__)

# The contract's snake_case code for each status.
CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_failed",
    429: "rate_limited", 500: "internal_error", 503: "service_unavailable",
}


class APIError(Exception):
    """An API error with the contract's JSON shape."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code or CODES.get(status, "error"), headers


def wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, message: str, code: str | None = None, headers: dict | None = None):
    response = jsonify({"error": {"code": code or CODES.get(status, "error"), "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _message(exc: HTTPException) -> str:
    if exc.code == 413:
        return "The request body is larger than 256 KiB."
    if exc.code == 429:
        return "Too many requests: slow down and retry after the number of seconds in Retry-After."
    return exc.description or exc.name


def _retry_after() -> str:
    """Seconds until the rate limit that refused this request lets it through again."""
    current = limiter.current_limit
    seconds = int(current.reset_at - time.time()) if current is not None else 1
    return str(max(1, seconds))


def _rollback() -> None:
    try:
        db.session.rollback()
    except SQLAlchemyError:
        log.warning("rollback failed after an error", exc_info=True)


def register(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError):
        return json_error(exc.status, exc.message, exc.code, exc.headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        if wants_json():
            return json_error(422, f"{exc.field}: {exc.message}")
        return render_template("error.html", status=422, message=f"{exc.field}: {exc.message}"), 422

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound):
        if wants_json():
            return json_error(404, str(exc))
        return render_template("error.html", status=404, message="There is nothing here."), 404

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if wants_json():
            headers = {}
            if exc.code == 429:
                retry_after = (exc.get_response().headers.get("Retry-After")
                               or str(getattr(getattr(exc, "limit", None), "reset_at", "") or "") or "1")
                headers["Retry-After"] = retry_after if retry_after.isdigit() else "1"
            if exc.code == 405:
                headers["Allow"] = ", ".join(exc.valid_methods or [])
            return json_error(exc.code or 500, _message(exc), headers=headers)
        if exc.code == 429:
            seconds = _retry_after()
            message = f"Too many attempts. Wait {seconds} second{'s' * (seconds != '1')}, then try again."
            return render_template("error.html", status=429, message=message), 429, {"Retry-After": seconds}
        return render_template("error.html", status=exc.code, message=_message(exc)), exc.code

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):
        log.error("database unavailable on %s %s: %s", request.method, request.path, exc.orig)
        _rollback()
        if wants_json():
            return json_error(503, "The service is briefly unavailable; retry shortly.", headers={"Retry-After": "5"})
        return render_template("error.html", status=503, message="The service is briefly unavailable."), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        _rollback()
        if wants_json():
            return json_error(500, "Something went wrong on our side; it has been logged.")
        return render_template("error.html", status=500, message="Something went wrong on our side."), 500
