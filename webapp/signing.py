"""Standard Webhooks signatures, made with the reference library so receivers verify them unchanged."""
from __future__ import annotations

from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook


def signature_header(msg_id: str, timestamp: int, body: str, secrets: list[str]) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return " ".join(Webhook(secret).sign(msg_id, moment, body) for secret in secrets)
