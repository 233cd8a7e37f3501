"""The OpenAPI 3.1 document of the API, served at /api/v1/openapi.json.

Built from small helpers so every shape is written once (under ``components``) and referenced by ``$ref``.
The shapes follow webapp/api/serializers.py exactly; tests/test_openapi.py checks that every route of the
``api`` blueprint is documented and that nothing documented is missing from the app.
"""
from __future__ import annotations

from .. import __version__

PREFIX = "/api/v1"
API_KEY = "apiKey"

DELIVERY_STATUSES = ["pending", "retrying", "succeeded", "failed"]
ATTEMPT_TRIGGERS = ["scheduled", "manual"]
# The same rule as catalogue.CUSTOM_TYPE_PATTERN (and every built-in name follows it).
EVENT_TYPE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"
# destinations.parse(): http or https; the scheme is matched case-insensitively.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://"


# --- schema helpers -------------------------------------------------------------------------------------

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    """The same schema, also allowing null (OpenAPI 3.1: a type list with "null")."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def _string(description: str | None = None, **keywords) -> dict:
    schema = {"type": "string", **keywords}
    if description:
        schema["description"] = description
    return schema


def _id(prefix: str, what: str) -> dict:
    """A public id such as ``agt_01jd8x…``: a prefix and 26 lower-case Crockford base32 characters."""
    return _string(f"The {what}'s id.", pattern=f"^{prefix}_[0-9a-z]+$", examples=[f"{prefix}_01jd8x3q4m5n6p7r8s9t0v1w2x"])


def _timestamp(description: str) -> dict:
    return _string(description, format="date-time", examples=["2026-11-26T12:00:00Z"])


def _object(properties: dict, required: list[str] | None = None, description: str | None = None) -> dict:
    """An object schema; ``required`` defaults to every property (the serializers always send them all)."""
    schema = {"type": "object", "properties": properties,
              "required": list(properties) if required is None else required}
    if not schema["required"]:
        del schema["required"]
    if description:
        schema["description"] = description
    return schema


def _list_of(ref: str, description: str) -> dict:
    """The contract's list envelope: ``{"data": [...], "next_cursor": "…" | null}``."""
    return _object({
        "data": {"type": "array", "items": _ref(ref)},
        "next_cursor": _nullable(_string("Pass as `cursor` to get the next page; null on the last page.")),
    }, description=description)


def _schemas() -> dict:
    agent_name = _string("A name for the agent.", minLength=1, maxLength=200)
    agent_description = _string("What the agent does.", maxLength=2000)
    endpoint_url = _string("Where events are POSTed: an http:// or https:// URL.", maxLength=2048, pattern=URL_PATTERN)
    endpoint_description = _string("A note for the tenant.", maxLength=2000)
    event_types = {"type": "array", "items": _string(), "description":
                   "The event types the endpoint subscribes to; empty means all."}
    agent_ids = {"type": "array", "items": _string(), "description":
                 "The agents whose events the endpoint gets; empty means all."}
    enabled = {"type": "boolean", "description": "Whether events are delivered to the endpoint."}
    status = _string("Where the delivery stands.", enum=DELIVERY_STATUSES)
    budget = {"type": "integer", "minimum": 1, "maximum": 1_000_000,
              "description": "Events a minute the agent may send before ingest answers 429 "
                             "(`agent_budget_exceeded`); null for the server's default (`AGENT_EVENT_BUDGET`)."}
    run_id = _string("The agent run the event belongs to (printable ASCII; forwarded to receivers in the "
                     "`agenthooks-run-id` header and the body's `run_id`).", maxLength=255)
    parent_event_id = _string("Another of your events that led to this one (forwarded in the "
                              "`agenthooks-parent-event-id` header and the body's `parent_event_id`).", maxLength=255)
    return {
        "Error": _object({
            "error": _object({
                "code": _string("A stable snake_case code, e.g. `validation_failed`.", pattern="^[a-z][a-z0-9_]*$"),
                "message": _string("A human sentence; for a 422 it names the field."),
                "details": {"type": "array", "items": _ref("SchemaViolation"),
                            "description": "When an event fails its type's schema: every violation."},
            }, required=["code", "message"]),
        }, description="Every API error."),
        "SchemaViolation": _object({
            "path": _string("Where, as a JSON path into the event, e.g. `$.data.text`.", examples=["$.data.text"]),
            "message": _string("What is wrong there.", examples=["5 is not of type 'string'"]),
        }, description="One way an event fails its type's JSON Schema."),
        # Agents
        "Agent": _object({
            "id": _id("agt", "agent"),
            "name": _string("The agent's name."),
            "description": _string("What the agent does (may be empty)."),
            "event_budget_per_minute": _nullable(budget),
            "created_at": _timestamp("When the agent was registered."),
        }, description="An AI agent the tenant registered."),
        "AgentList": _list_of("Agent", "A page of agents, newest first."),
        "AgentCreate": _object({
            "name": agent_name,
            "description": _nullable(agent_description),
            "event_budget_per_minute": _nullable(budget),
        }, required=["name"], description="A new agent."),
        "AgentUpdate": _object({
            "name": agent_name,
            "description": _nullable(agent_description),
            "event_budget_per_minute": _nullable(budget),
        }, required=[], description="The agent fields to change; the others stay as they are."),
        "AgentKeyCreate": _object({
            "name": _nullable(_string("A name for the key; default: the agent's name and \"key\".", maxLength=200)),
            "event_types": _nullable({"type": "array", "items": _string(pattern=EVENT_TYPE_PATTERN),
                                      "description": "The only event types the key may send; empty or null: any."}),
            "expires_at": _nullable(_timestamp("When the key stops working (401 from then on); null: never.")),
        }, required=[], description="A new per-agent API key."),
        "AgentKey": _object({
            "id": _string("The key's id.", pattern="^key_[0-9a-z]+$"),
            "name": _string("The key's name."),
            "prefix": _string("The key's first characters, shown in the dashboard."),
            "agent_id": _id("agt", "agent"),
            "event_types": {"type": "array", "items": _string(),
                            "description": "The only event types the key may send; empty: any."},
            "expires_at": _nullable(_timestamp("When the key stops working; null: never.")),
            "created_at": _timestamp("When the key was created."),
            "key": _string("The key itself, `ahk_…`: shown this once, stored only as a hash.", pattern="^ahk_"),
        }, description="A per-agent API key. It may send events only as its agent (and only of its "
                       "`event_types`, when set), read back that agent's events and read the event types; "
                       "every other route answers it 401 `insufficient_scope`."),
        # Endpoints
        "Endpoint": _object({
            "id": _id("ep", "endpoint"),
            "url": endpoint_url,
            "description": _string("A note for the tenant (may be empty)."),
            "event_types": event_types,
            "agent_ids": agent_ids,
            "enabled": enabled,
            "disabled_reason": _nullable(_string("Why the endpoint was disabled; null while it is enabled.")),
            "rate_limit": _nullable({"type": "integer", "minimum": 1, "maximum": 1000,
                                     "description": "At most this many deliveries a second to this endpoint; "
                                                    "null for no limit."}),
            "created_at": _timestamp("When the endpoint was created."),
        }, description="A URL the tenant wants events POSTed to."),
        "EndpointList": _list_of("Endpoint", "A page of endpoints, newest first."),
        "EndpointCreate": _object({
            "url": {**endpoint_url, "format": "uri", "minLength": 1},
            "description": _nullable(endpoint_description),
            "event_types": _nullable({**event_types, "items": _string(pattern=EVENT_TYPE_PATTERN)}),
            "agent_ids": _nullable(agent_ids),
            "enabled": {**enabled, "default": True},
            "rate_limit": _nullable({"type": "integer", "minimum": 1, "maximum": 1000,
                                     "description": "At most this many deliveries a second to this endpoint; "
                                                    "null for no limit."}),
        }, required=["url"], description="A new endpoint; it gets a new signing secret."),
        "EndpointUpdate": _object({
            "url": {**endpoint_url, "format": "uri", "minLength": 1},
            "description": _nullable(endpoint_description),
            "event_types": _nullable({**event_types, "items": _string(pattern=EVENT_TYPE_PATTERN)}),
            "agent_ids": _nullable(agent_ids),
            "enabled": {**enabled, "description": "false disables the endpoint; true enables it again."},
            "rate_limit": _nullable({"type": "integer", "minimum": 1, "maximum": 1000,
                                     "description": "At most this many deliveries a second to this endpoint; "
                                                    "null for no limit."}),
        }, required=[], description="The endpoint fields to change; the others stay as they are."),
        "Recover": _object({
            "since": _timestamp("Resend the endpoint's failed deliveries created at or after this time."),
        }, required=["since"], description="Which failed deliveries to resend."),
        "Recovering": _object({
            "deliveries": {"type": "integer", "minimum": 0,
                           "description": "How many failed deliveries will be resent (at most 10,000 a call)."},
        }, required=["deliveries"], description="The resends are queued, paced for the receiver."),
        "Secret": _object({
            "secret": _string("The Standard Webhooks signing secret.", pattern="^whsec_[A-Za-z0-9+/]+={0,2}$"),
        }, description="An endpoint's signing secret."),
        # Events
        "EventCreate": _object({
            "type": _string("A built-in event type (except `webhook.test`) or one of the tenant's custom types.",
                            minLength=1, maxLength=255, examples=["message.received"]),
            "agent_id": _string("The id of one of the tenant's agents.", minLength=1, maxLength=40),
            "conversation_id": _nullable(_string("The conversation the event belongs to.", maxLength=255)),
            "user": _nullable({"type": "object", "description": "The end user concerned, e.g. id, email, name."}),
            "data": _nullable({"type": "object", "description": "Anything else about the event."}),
            "occurred_at": _nullable(_timestamp("When it happened (RFC 3339); default: the time of receipt.")),
            "run_id": _nullable(run_id),
            "parent_event_id": _nullable(parent_event_id),
        }, required=["type", "agent_id"], description="An event sent by an agent. Besides the contract's checks, "
           "it must match its type's JSON Schema (see `GET /event-types`); a 422 then lists every violation."),
        "EventAccepted": _object({
            "id": _id("evt", "event"),
            "type": _string("The event type."),
            "deliveries": {"type": "integer", "minimum": 0,
                           "description": "How many deliveries were created for the event."},
            "warnings": {"type": "array", "items": _ref("SchemaViolation"),
                         "description": "Only when the event fails its type's schema and the type is in "
                                        "`warn` mode: what is wrong (the event was accepted anyway)."},
        }, required=["id", "type", "deliveries"], description="An event stored and queued for delivery."),
        "EventValid": _object({
            "valid": {"type": "boolean", "const": True, "description": "Ingest would accept the event."},
            "warnings": {"type": "array", "items": _ref("SchemaViolation"),
                         "description": "As ingest would answer them (a type in `warn` mode)."},
        }, required=["valid"], description="The event passes every check ingest makes."),
        "EventDelivery": _object({
            "id": _id("dlv", "delivery"),
            "endpoint_id": _id("ep", "endpoint"),
            "status": status,
            "attempt_count": {"type": "integer", "minimum": 0},
        }, description="One of an event's deliveries, in brief."),
        "EventSummary": _object({
            "id": _id("evt", "event"),
            "type": _string("The event type."),
            "agent_id": _nullable(_string("The agent that sent the event; null for test events.")),
            "conversation_id": _nullable(_string("The conversation the event belongs to.")),
            "run_id": _nullable(_string("The agent run the event belongs to.")),
            "parent_event_id": _nullable(_string("The event that led to this one.")),
            "traceparent": _nullable(_string("The W3C `traceparent` header of the ingest request, if it had "
                                             "a valid one; forwarded to receivers.")),
            "api_key_id": _nullable(_string("The id of the API key that sent the event; null for test events.")),
            "user": _nullable({"type": "object", "description": "The end user concerned."}),
            "data": {"type": "object", "description": "Anything else about the event."},
            "occurred_at": _timestamp("When it happened."),
            "received_at": _timestamp("When the API received it."),
        }, description="An event."),
        "EventSummaryList": _list_of("EventSummary", "A page of events, newest first."),
        "Event": {
            "allOf": [_ref("EventSummary"), _object({"deliveries": {"type": "array", "items": _ref("EventDelivery")}})],
            "description": "An event, with its deliveries.",
        },
        "EventType": _object({
            "name": _string("The dotted event type name.", pattern=EVENT_TYPE_PATTERN),
            "description": _string("What the event means."),
            "built_in": {"type": "boolean", "description": "true for the catalogue, false for a custom type."},
            "example": _nullable({"type": "object", "description":
                                  "Example optional fields (conversation_id, user, data); null for custom types."}),
            "schema": _nullable({"type": "object", "description":
                                 "The JSON Schema (draft 2020-12) events of this type must match, applied to the "
                                 "ingest body; null for a custom type without one."}),
            "schema_mode": _string("`reject`: an event that fails the schema gets 422 (the default); `warn`: it "
                                   "is accepted and the answer carries `warnings`.", enum=["reject", "warn"]),
        }, description="An event type the tenant can use."),
        "EventTypeList": _list_of("EventType", "Every event type, built-in first (one page: next_cursor is null)."),
        # Deliveries
        "Delivery": _object({
            "id": _id("dlv", "delivery"),
            "event_id": _id("evt", "event"),
            "endpoint_id": _id("ep", "endpoint"),
            "event_type": _string("The event's type."),
            "agent_id": _nullable(_string("The event's agent; null for test events.")),
            "status": status,
            "attempt_count": {"type": "integer", "minimum": 0},
            "next_attempt_at": _nullable(_timestamp("When the next attempt is due; null when none is.")),
            "created_at": _timestamp("When the delivery was created."),
        }, description="One event on its way to one endpoint."),
        "DeliveryList": _list_of("Delivery", "A page of deliveries, newest first."),
        "Attempt": _object({
            "id": _id("att", "attempt"),
            "trigger": _string("`scheduled` by the retry schedule, `manual` by a resend.", enum=ATTEMPT_TRIGGERS),
            "started_at": _timestamp("When the attempt started."),
            "duration_ms": {"type": "integer", "minimum": 0},
            "response_status": _nullable({"type": "integer", "description": "The HTTP status; null when no response."}),
            "error": _nullable(_string("Why it failed, e.g. `timeout`, `connection refused`, "
                                       "`redirect not followed`; null when there is no error.")),
            "response_body": _nullable(_string("The first 4 KiB of the response body.")),
        }, description="One HTTP attempt of a delivery."),
        "DeliveryDetail": {
            "allOf": [_ref("Delivery"), _object({"attempts": {"type": "array", "items": _ref("Attempt")}})],
            "description": "A delivery with its attempts, oldest first.",
        },
    }


# --- responses ------------------------------------------------------------------------------------------

# status -> (component name, description, headers)
_ERRORS = {
    400: ("BadRequest", "The body is not valid JSON, or not a JSON object.", ()),
    401: ("Unauthorized", ("The API key is missing, unknown, revoked or expired, or is a per-agent key and this "
                           "route is outside its scope (code `insufficient_scope`)."), ()),
    404: ("NotFound", "No such id for this tenant.", ()),
    413: ("PayloadTooLarge", "The body is larger than 256 KiB.", ()),
    415: ("UnsupportedMediaType", "The body is not sent as `application/json`.", ()),
    422: ("ValidationFailed", "A field or parameter fails validation; the message names it.", ()),
    429: ("RateLimited", ("Too many requests (`rate_limited`), or the agent is over its event budget "
                          "(`agent_budget_exceeded`); retry after `Retry-After` seconds."), ("Retry-After",)),
    500: ("InternalError", "Something went wrong on our side (it is logged; no details are shown).", ()),
    503: ("ServiceUnavailable", "The service is briefly unavailable; retry after `Retry-After` seconds.",
          ("Retry-After",)),
}

_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "X-RateLimit-Limit": {"description": "Requests allowed in the current window.",
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the current window.",
                              "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "X-RateLimit-Reset": {"description": "When the window resets, in Unix seconds.",
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}},
}
_RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# Every operation that needs the API key touches the database (the key is looked up), so it can answer
# 401, 500 and 503; the ones that read a JSON body add 400, 413, 415 and 422.
_AUTHENTICATED = (401, 500, 503)
_BODY = (400, 413, 415, 422)


def _header_refs(names) -> dict:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _error_component(description: str, headers) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}
    if headers:
        response["headers"] = _header_refs(headers)
    return response


def _error_responses(*codes: int) -> dict:
    return {str(code): {"$ref": f"#/components/responses/{_ERRORS[code][0]}"} for code in sorted(set(codes))}


def _json(description: str, ref: str, headers=()) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": _ref(ref)}}}
    if headers:
        response["headers"] = _header_refs(headers)
    return response


def _no_content(description: str) -> dict:
    return {"description": description}


# --- parameters -----------------------------------------------------------------------------------------

def _path_param(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": {"type": "string"}}


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_PAGINATION = [
    {"$ref": "#/components/parameters/cursor"},
    {"$ref": "#/components/parameters/limit"},
]

_PARAMETERS = {
    "cursor": _query("cursor", "The `next_cursor` of the previous page; omit for the first page."),
    "limit": _query("limit", "How many items per page.",
                    {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
    "traceparent": {
        "name": "traceparent", "in": "header", "required": False,
        "description": "W3C Trace Context: stored with the event and forwarded to receivers unchanged (with "
                       "`tracestate`). A malformed one is ignored, as the specification says.",
        "schema": {"type": "string", "examples": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]},
    },
    "tracestate": {
        "name": "tracestate", "in": "header", "required": False,
        "description": "W3C Trace Context vendor data, forwarded with a valid `traceparent` (at most 512 characters).",
        "schema": {"type": "string", "maxLength": 512},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "Makes a retry within 24 h return the first event's answer (status 200) "
                       "and create nothing new.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
}


# --- operations -----------------------------------------------------------------------------------------

def _operation(operation_id: str, tag: str, summary: str, responses: dict, *, errors=(), parameters=(),
               body: str | None = None, public: bool = False) -> dict:
    codes = set(errors) | ({500} if public else set(_AUTHENTICATED)) | (set(_BODY) if body else set())
    operation = {"operationId": operation_id, "tags": [tag], "summary": summary,
                 "responses": {**responses, **_error_responses(*codes)}}
    if parameters:
        operation["parameters"] = list(parameters)
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if public:
        operation["security"] = []
    return operation


def _paths() -> dict:
    agent_id = _path_param("agent_id", "agent")
    endpoint_id = _path_param("endpoint_id", "endpoint")
    event_id = _path_param("event_id", "event")
    delivery_id = _path_param("delivery_id", "delivery")
    accepted = "EventAccepted"
    paths = {
        "/events": {
            "post": _operation(
                "ingest", "Events", "Send an event from one of your agents, to be delivered to every subscribed "
                "endpoint.",
                {"202": _json("The event is stored and its deliveries queued.", accepted, _RATE_LIMIT_HEADERS),
                 "200": _json("A repeat of an earlier request with the same Idempotency-Key: its answer, "
                              "and nothing new created.", accepted, _RATE_LIMIT_HEADERS)},
                errors=(429,), body="EventCreate", parameters=[{"$ref": "#/components/parameters/IdempotencyKey"},
                                                               {"$ref": "#/components/parameters/traceparent"},
                                                               {"$ref": "#/components/parameters/tracestate"}]),
            "get": _operation(
                "list_events", "Events", "List events, newest first, optionally of one conversation, run, agent "
                "or type (a per-agent key sees only its agent's).",
                {"200": _json("A page of events.", "EventSummaryList")}, errors=(422,), parameters=[
                    _query("conversation_id", "Only events of this conversation."),
                    _query("run_id", "Only events of this run."),
                    _query("agent_id", "Only events from this agent."),
                    _query("type", "Only events of this type."),
                    *_PAGINATION,
                ]),
        },
        "/events/validate": {
            "post": _operation(
                "validate_event", "Events", "Check an event as ingest would (the contract, the key's scope and "
                "the type's schema), without storing or delivering it.",
                {"200": _json("Ingest would accept the event.", "EventValid", _RATE_LIMIT_HEADERS)},
                errors=(429,), body="EventCreate"),
        },
        "/events/{event_id}": {
            "parameters": [event_id],
            "get": _operation("get_event", "Events", "Get an event with its deliveries.",
                              {"200": _json("The event.", "Event")}, errors=(404,)),
        },
        "/agents": {
            "get": _operation("list_agents", "Agents", "List your agents, newest first.",
                              {"200": _json("A page of agents.", "AgentList")}, errors=(422,),
                              parameters=_PAGINATION),
            "post": _operation("create_agent", "Agents", "Register an agent.",
                               {"201": _json("The new agent.", "Agent")}, body="AgentCreate"),
        },
        "/agents/{agent_id}": {
            "parameters": [agent_id],
            "get": _operation("get_agent", "Agents", "Get an agent.",
                              {"200": _json("The agent.", "Agent")}, errors=(404,)),
            "patch": _operation("update_agent", "Agents", "Change an agent's name or description.",
                                {"200": _json("The changed agent.", "Agent")}, errors=(404,), body="AgentUpdate"),
            "delete": _operation("delete_agent", "Agents", "Delete an agent.",
                                 {"204": _no_content("The agent is deleted.")}, errors=(404,)),
        },
        "/agents/{agent_id}/keys": {
            "parameters": [agent_id],
            "post": _operation("create_agent_key", "Agents",
                               "Create a per-agent API key: it may only send as this agent (optionally only some "
                               "event types, until a date) and read that agent's events.",
                               {"201": _json("The new key, with its plaintext shown this once.", "AgentKey")},
                               errors=(404,), body="AgentKeyCreate"),
        },
        "/endpoints": {
            "get": _operation("list_endpoints", "Endpoints", "List your endpoints, newest first.",
                              {"200": _json("A page of endpoints.", "EndpointList")}, errors=(422,),
                              parameters=_PAGINATION),
            "post": _operation("create_endpoint", "Endpoints",
                               "Create an endpoint that events are POSTed to, with a new signing secret.",
                               {"201": _json("The new endpoint.", "Endpoint")}, body="EndpointCreate"),
        },
        "/endpoints/{endpoint_id}": {
            "parameters": [endpoint_id],
            "get": _operation("get_endpoint", "Endpoints", "Get an endpoint.",
                              {"200": _json("The endpoint.", "Endpoint")}, errors=(404,)),
            "patch": _operation("update_endpoint", "Endpoints",
                                "Change an endpoint's URL, description or subscriptions, or enable or disable it.",
                                {"200": _json("The changed endpoint.", "Endpoint")}, errors=(404,),
                                body="EndpointUpdate"),
            "delete": _operation("delete_endpoint", "Endpoints", "Delete an endpoint and its deliveries.",
                                 {"204": _no_content("The endpoint is deleted.")}, errors=(404,)),
        },
        "/endpoints/{endpoint_id}/secret": {
            "parameters": [endpoint_id],
            "get": _operation("get_secret", "Endpoints", "Get the secret that signs an endpoint's deliveries.",
                              {"200": _json("The current signing secret.", "Secret")}, errors=(404,)),
        },
        "/endpoints/{endpoint_id}/secret/rotate": {
            "parameters": [endpoint_id],
            "post": _operation("rotate_secret", "Endpoints",
                               "Give an endpoint a new signing secret; the old one keeps signing alongside it "
                               "for 24 hours.",
                               {"200": _json("The new signing secret.", "Secret")}, errors=(404,)),
        },
        "/endpoints/{endpoint_id}/recover": {
            "parameters": [endpoint_id],
            "post": _operation("recover", "Endpoints",
                               "Resend every failed delivery of an endpoint since a time, paced at the endpoint's "
                               "rate limit (or 10 a second).",
                               {"202": _json("The resends are queued.", "Recovering")}, errors=(404,),
                               body="Recover"),
        },
        "/endpoints/{endpoint_id}/test": {
            "parameters": [endpoint_id],
            "post": _operation("test_endpoint", "Endpoints", "Send a `webhook.test` event to this endpoint alone.",
                               {"202": _json("The test event is stored and its delivery queued.", accepted)},
                               errors=(404,)),
        },
        "/deliveries": {
            "get": _operation(
                "list_deliveries", "Deliveries", "List deliveries, newest first, optionally filtered.",
                {"200": _json("A page of deliveries.", "DeliveryList")}, errors=(422,), parameters=[
                    _query("status", "Only deliveries with this status.",
                           {"type": "string", "enum": DELIVERY_STATUSES}),
                    _query("endpoint_id", "Only deliveries to this endpoint."),
                    _query("event_type", "Only deliveries of events of this type."),
                    _query("agent_id", "Only deliveries of events from this agent."),
                    *_PAGINATION,
                ]),
        },
        "/deliveries/{delivery_id}": {
            "parameters": [delivery_id],
            "get": _operation("get_delivery", "Deliveries", "Get a delivery with its attempts.",
                              {"200": _json("The delivery.", "DeliveryDetail")}, errors=(404,)),
        },
        "/deliveries/{delivery_id}/resend": {
            "parameters": [delivery_id],
            "post": _operation("resend", "Deliveries", "Resend a delivery now, as a new manual attempt.",
                               {"202": _json("The attempt is queued.", "Delivery")}, errors=(404,)),
        },
        "/event-types": {
            "get": _operation("event_types", "Event types",
                              "List the event types you can use: the built-in catalogue, then your custom types.",
                              {"200": _json("Every event type.", "EventTypeList")}),
        },
        "/openapi.json": {
            "get": _operation("openapi", "Meta", "Get this OpenAPI document (no API key needed).",
                              {"200": {"description": "The OpenAPI 3.1 document.",
                                       "content": {"application/json": {"schema": {"type": "object"}}}}},
                              public=True),
        },
    }
    return {PREFIX + path: item for path, item in paths.items()}


def document() -> dict:
    """The whole OpenAPI 3.1 document (a new dict on each call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AgentHooks API",
            "version": "1",
            "summary": "Webhooks for AI agents: signed, retried, logged deliveries of agent events.",
            "description": "Send your agents' events to AgentHooks and it delivers them, signed per "
                           "Standard Webhooks and retried on failure, to the endpoints you subscribe. "
                           "Authenticate with `Authorization: Bearer ahk_…` (an API key from the dashboard). "
                           "Every error is JSON: `{\"error\": {\"code\": …, \"message\": …}}`. "
                           f"Server version {__version__}.",
        },
        "servers": [{"url": "/"}],
        "security": [{API_KEY: []}],
        "tags": [
            {"name": "Events", "description": "Ingest events from your agents and read them back."},
            {"name": "Agents", "description": "The AI agents that send events."},
            {"name": "Endpoints", "description": "Where events are delivered, and their signing secrets."},
            {"name": "Deliveries", "description": "The delivery log, attempts and resends."},
            {"name": "Event types", "description": "The event types you can send and subscribe to."},
            {"name": "Meta", "description": "This document."},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                API_KEY: {"type": "http", "scheme": "bearer", "bearerFormat": "ahk_…",
                          "description": "An API key from the dashboard: `Authorization: Bearer ahk_…`."},
            },
            "schemas": _schemas(),
            "responses": {name: _error_component(description, headers)
                          for name, description, headers in _ERRORS.values()},
            "headers": _HEADERS,
            "parameters": _PARAMETERS,
        },
    }
