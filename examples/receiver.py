"""A webhook receiver for AgentHooks: verifies each request's signature and ignores repeats.

Run it with the endpoint's signing secret (GET /api/v1/endpoints/<id>/secret):

    AGENTHOOKS_SECRET=whsec_… python examples/receiver.py      # listens on http://127.0.0.1:8000

It needs only `pip install flask standardwebhooks` (both come with AgentHooks' own .venv).
"""
import os

from flask import Flask, request
from standardwebhooks import Webhook, WebhookVerificationError

app = Flask(__name__)
webhook = Webhook(os.environ["AGENTHOOKS_SECRET"])
# The ids of the events already handled. AgentHooks delivers at least once: a retry carries the same
# webhook-id. Keep these in your database in a real receiver.
handled: set[str] = set()


@app.post("/webhooks/agenthooks")
def receive():
    body = request.get_data()  # the raw bytes: the signature covers them exactly, so don't re-serialize
    try:
        event = webhook.verify(body, request.headers)  # checks the signature and the timestamp's age
    except WebhookVerificationError as exc:
        print(f"rejected: {exc}", flush=True)
        return {"error": "invalid signature"}, 400
    webhook_id = request.headers["webhook-id"]  # the event's id, the same on every retry (and signed)
    if webhook_id in handled:
        return "", 204  # a retry of something already handled: acknowledge it, do nothing
    handled.add(webhook_id)
    agent = (event.get("agent") or {}).get("name")  # null for webhook.test events
    print(f"verified {event['type']} {event['id']} from agent {agent!r}: {event.get('data')}", flush=True)
    # Runs and parents are in the signed body when the agent sent them (and, unsigned, in the headers
    # agenthooks-run-id and agenthooks-parent-event-id); the agent's W3C traceparent comes as a header.
    if event.get("run_id") or request.headers.get("traceparent"):
        print(f"  run {event.get('run_id')}, after {event.get('parent_event_id')}, "
              f"trace {request.headers.get('traceparent')}", flush=True)
    return "", 204


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8000)
