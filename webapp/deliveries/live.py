"""The live delivery log: what a poll of the log's first page needs to send, and nothing more.

The page remembers what it shows in an opaque token that each poll hands back and each answer
replaces: the ``updated_at`` watermark up to which it has seen every change, the newest and (when
older pages exist) the oldest delivery id it shows, and how many rows it shows. A poll reads only
the deliveries changed after the watermark (the (tenant_id, updated_at) index), sends the new ones
to be prepended and the changed ones to replace their rows in place, and answers 204 when nothing
changed.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..models import Delivery
from ..services.common import ValidationError

# A change becomes visible when its transaction commits, a little after its updated_at was stamped
# (and by another machine's clock). Each poll looks this far behind its watermark, so a change
# committed late is not missed; the page skips rows it already shows unchanged.
LAG = timedelta(seconds=5)
# More changes than this between two polls, or more rows than this on the page: show the newest page afresh.
MAX_CHANGES = 200
MAX_ROWS = 250


@dataclass
class LiveState:
    """What the page shows, as far as the next poll needs to know."""

    since: datetime
    top: str | None = None  # the newest delivery id shown
    bottom: str | None = None  # the oldest id shown, when older pages exist (None: the page ends the log)
    shown: int = 0

    def encode(self) -> str:
        raw = json.dumps({"s": int(self.since.timestamp() * 1_000_000), "t": self.top, "b": self.bottom,
                          "n": self.shown}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> LiveState:
        """Raises ValidationError for a token the log did not hand out."""
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            since = datetime.fromtimestamp(int(data["s"]) / 1_000_000, tz=UTC)
            top, bottom, shown = data["t"], data["b"], int(data["n"])
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError, OverflowError, OSError):
            raise ValidationError("since", "is not a token this page handed out") from None
        if not all(value is None or (isinstance(value, str) and len(value) <= 40) for value in (top, bottom)):
            raise ValidationError("since", "is not a token this page handed out")
        return cls(since, top, bottom, max(0, shown))

    @classmethod
    def for_page(cls, rows: list[Delivery], has_older: bool, rendered_at: datetime) -> LiveState:
        """The state of a freshly rendered first page; ``rendered_at`` is taken before its query ran."""
        return cls(since=rendered_at - LAG, top=rows[0].id if rows else None,
                   bottom=rows[-1].id if rows and has_older else None, shown=len(rows))


@dataclass
class Delta:
    """What one poll found: rows to prepend (newest first), rows to update in place, the next state."""

    new: list[Delivery] = field(default_factory=list)
    changed: list[Delivery] = field(default_factory=list)
    state: LiveState | None = None
    reset: bool = False  # too much changed: show the newest page afresh

    @property
    def empty(self) -> bool:
        return not (self.new or self.changed)


def delta(state: LiveState, rows: list[Delivery], status: str | None, polled_at: datetime) -> Delta:
    """Sort the rows changed since ``state.since`` into new and changed ones for the page.

    Args:
        rows: ``changed_since(state.since, …)`` with the page's filters other than status, at most
            MAX_CHANGES + 1 of them.
        status: the page's status filter. New rows must match it; a row already shown is updated
            even when it no longer matches (the page marks it).
        polled_at: the time taken before ``rows`` were read.
    """
    if len(rows) > MAX_CHANGES:
        return Delta(reset=True)
    new = sorted((r for r in rows if (state.top is None or r.id > state.top) and (not status or r.status == status)),
                 key=lambda r: r.id, reverse=True)
    changed = [r for r in rows if state.top is not None and r.id <= state.top
               and (state.bottom is None or r.id >= state.bottom)]
    if state.shown + len(new) > MAX_ROWS:
        return Delta(reset=True)
    # Every change committed by now has an updated_at after polled_at - LAG; those seen so far up to
    # the newest one read are done with.
    newest_change = max((r.updated_at for r in rows), default=state.since)
    since = max(state.since, min(newest_change, polled_at - LAG))
    top = new[0].id if new else state.top
    return Delta(new=new, changed=changed,
                 state=LiveState(since=since, top=top, bottom=state.bottom, shown=state.shown + len(new)))
