"""The overview's chart of deliveries per hour, laid out here and drawn as SVG by the template.

Server-rendered: no chart library, no script, nothing a strict Content-Security-Policy would refuse.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..models import FAILED, PENDING, RETRYING, SUCCEEDED
from ..services.stats import Bucket

# Bottom to top: what went well first, what needs attention on top where the eye lands.
STACK = (SUCCEEDED, PENDING, RETRYING, FAILED)
# The SVG's own coordinate system; it scales to the width of its box.
WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 40, 4, 12, 30
BAR_FILL = 0.72  # of each hour's slot
X_LABEL_EVERY = 3  # hours


@dataclass
class Segment:
    status: str
    count: int
    y: float
    height: float


@dataclass
class Bar:
    bucket: Bucket
    x: float
    width: float
    segments: list[Segment] = field(default_factory=list)
    label: str | None = None  # the hour under the bar, on every few bars

    @property
    def center(self) -> float:
        return self.x + self.width / 2

    @property
    def hour(self) -> str:
        return f"{self.bucket.start:%H:%M}–{self.bucket.end:%H:%M} UTC"


@dataclass
class Chart:
    bars: list[Bar]
    ticks: list[tuple[int, float]]  # (value, y)
    totals: dict[str, int]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: float = WIDTH - RIGHT
    top: int = TOP
    baseline: float = HEIGHT - BOTTOM

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def summary(self) -> str:
        """One sentence for screen readers (the SVG's description)."""
        if not self.total:
            return "No deliveries in the last 24 hours."
        parts = ", ".join(f"{self.totals[s]} {s}" for s in STACK if self.totals[s])
        busiest = max(self.bars, key=lambda b: b.bucket.total)
        return (f"{self.total} deliveries in the last 24 hours: {parts}. "
                f"The busiest hour was {busiest.hour} with {busiest.bucket.total}.")


def tick_step(value: int, ticks: int = 4) -> int:
    """The smallest round whole number (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 25, …) whose ``ticks`` steps reach ``value``."""
    needed = max(value, 1) / ticks
    magnitude = 1
    while True:
        for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            step = factor * magnitude
            if step == int(step) and step >= needed:
                return int(step)
        magnitude *= 10


def stacked_bars(buckets: list[Bucket]) -> Chart:
    """Lay out one stacked bar per bucket, with a y axis of four round steps."""
    step = tick_step(max((b.total for b in buckets), default=0))
    top_value = 4 * step
    plot_height = HEIGHT - BOTTOM - TOP
    baseline = HEIGHT - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    bars = []
    for index, bucket in enumerate(buckets):
        bar = Bar(bucket, x=LEFT + index * slot + slot * (1 - BAR_FILL) / 2, width=slot * BAR_FILL)
        y = baseline
        for status in STACK:
            count = bucket.counts.get(status, 0)
            if count:
                height = count / top_value * plot_height
                y -= height
                bar.segments.append(Segment(status, count, y, height))
        # Label every few hours, counted back from the current one so the newest hour is always labelled.
        if (len(buckets) - 1 - index) % X_LABEL_EVERY == 0:
            bar.label = f"{bucket.start:%H}:00"
        bars.append(bar)
    ticks = [(step * n, baseline - plot_height * n / 4) for n in range(5)]
    totals = {status: sum(b.counts.get(status, 0) for b in buckets) for status in STACK}
    return Chart(bars=bars, ticks=ticks, totals=totals)
