"""Messages for actions done with htmx, where a flash (shown on the next page) would come too late."""
from __future__ import annotations

import json


def toast(message: str) -> dict:
    """Response headers that make static/app.js show ``message`` and announce it to screen readers."""
    # ensure_ascii keeps the header latin-1 safe; the browser decodes the JSON escapes.
    return {"HX-Trigger": json.dumps({"toast": message})}
