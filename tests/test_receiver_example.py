"""examples/receiver.py does what the README says: verifies with standardwebhooks, refuses a bad signature,
and acknowledges a repeated webhook-id without handling it twice."""
from __future__ import annotations

import base64
import importlib.util
import json
import os
from datetime import datetime, timezone

from standardwebhooks import Webhook

from webapp import ROOT

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def load_example(monkeypatch):
    monkeypatch.setenv("AGENTHOOKS_SECRET", SECRET)
    spec = importlib.util.spec_from_file_location("receiver_example", os.path.join(ROOT, "examples", "receiver.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signed(event: dict, webhook_id: str, **extra) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    signature = Webhook(SECRET).sign(webhook_id, now, body.decode())
    return body, {"webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature,
                  "content-type": "application/json", **extra}


def test_the_receiver_example_verifies_and_dedupes(monkeypatch, capsys):
    example = load_example(monkeypatch)
    client = example.app.test_client()
    event = {"id": "evt_1", "type": "tool.executed", "timestamp": "2026-11-26T12:00:00Z",
             "agent": {"id": "agt_1", "name": "bot"}, "conversation_id": "c", "user": None,
             "data": {"tool": "search"}, "run_id": "run-7", "parent_event_id": "evt_0"}
    body, headers = signed(event, "evt_1", traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert client.post("/webhooks/agenthooks", data=body, headers=headers).status_code == 204
    assert client.post("/webhooks/agenthooks", data=body, headers=headers).status_code == 204  # a retry
    out = capsys.readouterr().out
    assert out.count("verified tool.executed evt_1") == 1 and "run run-7, after evt_0, trace 00-4bf9" in out

    tampered = body.replace(b"search", b"delete")
    assert client.post("/webhooks/agenthooks", data=tampered, headers=headers).status_code == 400
    assert example.handled == {"evt_1"}
