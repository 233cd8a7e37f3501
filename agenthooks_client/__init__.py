"""The agent side of AgentHooks: send an event in one call, safely retried, never blocking for long.

    from agenthooks_client import AgentHooks

    hooks = AgentHooks("ahk_…", "https://agenthooks.example.com", timeout=5)
    hooks.send("tool.executed", agent_id="agt_…", conversation_id="conv-42",
               data={"tool": "search_orders", "duration_ms": 412})

See ``AgentHooks.send`` for what it retries and what it raises.
"""
from .client import VERSION as __version__
from .client import AgentHooks, AgentHooksError, EventRejected, SendTimeout, SentEvent

__all__ = ["AgentHooks", "AgentHooksError", "EventRejected", "SendTimeout", "SentEvent", "__version__"]
