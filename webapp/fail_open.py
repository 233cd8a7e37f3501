"""Guards that count in Redis and let requests through while it fails (the ingest rate limit, the agents'
event budgets): refusing events because Redis is down would lose them."""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# After Redis fails, a guard stands aside this long before trying again (requests should not each wait for a
# connection timeout while Redis is down).
RETRY_REDIS_AFTER = 5.0


class FailOpen:
    """When a guard last failed to reach Redis, and so whether it stands aside now."""

    def __init__(self, what: str):
        self.what, self.down_until = what, 0.0

    def standing_aside(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self, exc: Exception) -> None:
        self.down_until = time.monotonic() + RETRY_REDIS_AFTER
        log.warning("%s: not enforced for %ss, Redis failed (%s)", self.what, RETRY_REDIS_AFTER, exc)
