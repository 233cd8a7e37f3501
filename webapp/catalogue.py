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
