"""How the dashboard writes numbers and times: template filters every page can use."""
from __future__ import annotations

from datetime import datetime

from ..models import utcnow


def percent(value: float) -> str:
    """0.98765 → "98.8%"; whole numbers lose their decimal, and 99.95 % never rounds up to 100 %."""
    scaled = value * 100
    text = f"{scaled:.1f}"
    if text == "100.0" and value < 1:
        text = "99.9"
    return text.removesuffix(".0") + "%"


def duration(ms: float) -> str:
    """412 → "412 ms", 1530 → "1.53 s", 15000 → "15.0 s"."""
    if ms < 1000:
        return f"{int(ms)} ms"
    return f"{ms / 1000:.3g} s" if ms < 10_000 else f"{ms / 1000:.1f} s"


def ago(moment: datetime, now: datetime | None = None) -> str:
    """How long ago, in the largest unit that fits: "just now", "3 min ago", "2 h ago", "5 days ago"."""
    seconds = ((now or utcnow()) - moment).total_seconds()
    if seconds < 0:
        seconds = -seconds
        prefix, suffix = "in ", ""
    else:
        prefix, suffix = "", " ago"
    if seconds < 45:
        return "just now" if not prefix else "in a few seconds"
    for size, unit in ((86400 * 2, "days"), (3600, "h"), (60, "min")):
        if seconds >= size:
            count = int(seconds // (86400 if unit == "days" else size))
            return f"{prefix}{count} {unit}{suffix}"
    return f"{prefix}1 min{suffix}"


FILTERS = {"percent": percent, "duration": duration, "ago": ago}
