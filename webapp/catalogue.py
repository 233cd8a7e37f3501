"""The built-in event catalogue of the contract, and the rule for custom type names."""
import re

CUSTOM_TYPE_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
TEST_EVENT_TYPE = "webhook.test"

# name -> (description, example of the event's optional fields)
BUILT_IN = {
    "conversation.started": ("A user or system opened a new conversation with the agent.",
                             {"conversation_id": "conv-42", "user": {"id": "u-7", "email": "ada@example.com", "name": "Ada"},
                              "data": {"channel": "web"}}),
    "message.received": ("The agent received a message from a user.",
                         {"conversation_id": "conv-42", "user": {"id": "u-7"}, "data": {"text": "hello"}}),
    "message.sent": ("The agent sent a message to a user.",
                     {"conversation_id": "conv-42", "user": {"id": "u-7"}, "data": {"text": "Hi! How can I help?"}}),
    "tool.executed": ("The agent called a tool and got a result.",
                      {"conversation_id": "conv-42", "data": {"tool": "search_orders", "input": {"order": "A-1"},
                                                              "output": {"status": "shipped"}, "duration_ms": 412}}),
    "user.signed_up": ("A new user signed up through the agent.",
                       {"user": {"id": "u-8", "email": "grace@example.com", "name": "Grace"}, "data": {"plan": "free"}}),
    "credits.purchased": ("A user bought credits.",
                          {"user": {"id": "u-7"}, "data": {"credits": 500, "amount": 19.0, "currency": "USD"}}),
    "conversation.ended": ("A conversation was closed.",
                           {"conversation_id": "conv-42", "data": {"reason": "resolved", "messages": 12}}),
    "error.occurred": ("The agent hit an error.",
                       {"conversation_id": "conv-42", "data": {"code": "tool_timeout", "message": "search_orders timed out"}}),
    TEST_EVENT_TYPE: ("A test event, sent only by the 'send test event' action to one endpoint.",
                      {"data": {"message": "This is a test event from AgentHooks."}}),
}

# Agents may send these; webhook.test is reserved for the test action.
INGESTIBLE = tuple(name for name in BUILT_IN if name != TEST_EVENT_TYPE)


# --- schemas -------------------------------------------------------------------------------------------
# A JSON Schema (draft 2020-12) per built-in type: what its events carry. Ingest checks every event
# against its type's schema. They are strict about the types of the fields they name and permissive about
# everything else: no field is required (an event with only `type` and `agent_id` was always valid and
# stays so) and agents may add fields of their own anywhere.

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_TEXT = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_USER = {
    "type": "object",
    "description": "The end user concerned.",
    "properties": {
        "id": {"type": ["string", "integer"], "description": "Your id for the user."},
        "email": {"type": "string", "format": "email"},
        "name": _TEXT,
    },
}


def _schema(name: str, data: dict, *, user: dict | None = None) -> dict:
    """The schema of one built-in type: the common envelope with the type's own ``data`` properties."""
    return {
        "$schema": SCHEMA_DIALECT,
        "title": name,
        "description": BUILT_IN[name][0],
        "type": "object",
        "properties": {
            "conversation_id": {"type": "string", "maxLength": 255,
                                "description": "The conversation the event belongs to."},
            "run_id": {"type": "string", "maxLength": 255, "description": "The agent run the event belongs to."},
            "parent_event_id": {"type": "string", "maxLength": 255,
                                "description": "The event (of yours) that led to this one."},
            "user": user or _USER,
            "data": {"type": "object", "properties": data},
        },
    }


SCHEMAS = {
    "conversation.started": _schema("conversation.started", {
        "channel": {**_TEXT, "description": "Where the conversation happens, e.g. web, email, slack."},
        "locale": _TEXT,
    }),
    "message.received": _schema("message.received", {
        "text": {**_TEXT, "description": "What the user wrote."},
        "message_id": _TEXT,
        "attachments": {"type": "array", "items": {"type": "object"}},
    }),
    "message.sent": _schema("message.sent", {
        "text": {**_TEXT, "description": "What the agent answered."},
        "message_id": _TEXT,
        "model": {**_TEXT, "description": "The model that wrote it."},
        "usage": {"type": "object", "properties": {"input_tokens": _COUNT, "output_tokens": _COUNT}},
    }),
    "tool.executed": _schema("tool.executed", {
        "tool": {"type": "string", "minLength": 1, "description": "The tool's name."},
        "input": {"description": "What the agent passed to the tool (any JSON)."},
        "output": {"description": "What the tool returned (any JSON)."},
        "duration_ms": {"type": "number", "minimum": 0},
        "error": {"type": ["string", "null"], "description": "Why the call failed; null or absent when it did not."},
    }),
    "user.signed_up": _schema("user.signed_up", {
        "plan": _TEXT,
    }),
    "credits.purchased": _schema("credits.purchased", {
        "credits": {**_COUNT, "description": "How many credits were bought."},
        "amount": {"type": "number", "minimum": 0, "description": "The price paid."},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "An ISO 4217 code, e.g. USD."},
    }),
    "conversation.ended": _schema("conversation.ended", {
        "reason": {**_TEXT, "description": "Why it ended, e.g. resolved, abandoned, handed_off."},
        "messages": {**_COUNT, "description": "How many messages it had."},
    }),
    "error.occurred": _schema("error.occurred", {
        "code": {**_TEXT, "description": "A short machine-readable code."},
        "message": _TEXT,
        "retryable": {"type": "boolean"},
    }),
    TEST_EVENT_TYPE: _schema(TEST_EVENT_TYPE, {
        "message": _TEXT,
        "endpoint_id": _TEXT,
    }),
}
