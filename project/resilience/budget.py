"""Retry budget: failed retries may add only a fraction of recent traffic (Finagle, Envoy).

Per-call retry caps bound one call; a budget bounds the *fleet*: in a hard outage every
caller retrying N times multiplies the load on an upstream that is already down. Here the
retries of the last ``window`` seconds may not exceed ``ratio`` x the requests of that
window, plus a floor of ``min_per_second`` x ``window`` so a lone request still retries.

A retry that succeeds gives its token back (as the AWS SDKs' retry quota does): it did
what retries are for. So a flaky upstream, where most retries work, keeps its retries,
while in an outage, where none work, retries stay capped at ``ratio``.
"""

from __future__ import annotations

import threading
import time

from .deadline import Clock
from .window import SlidingCounts


class RetryBudget:
    """Thread-safe; one per upstream per process."""

    def __init__(
        self,
        *,
        ratio: float,
        min_per_second: float,
        window: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.floor = min_per_second * window
        self._counts = SlidingCounts(window, clock)  # a: requests, b: retries
        self._lock = threading.Lock()

    def record_request(self) -> None:
        """A first attempt went out: it earns ``ratio`` of a retry."""
        with self._lock:
            self._counts.add(a=1)

    def try_acquire(self) -> bool:
        """Take one retry from the budget; ``False``, and nothing taken, when it is spent."""
        with self._lock:
            requests, retries = self._counts.totals()
            if retries + 1 > self.floor + self.ratio * requests:
                return False
            self._counts.add(b=1)
            return True

    def refund(self) -> None:
        """A retry taken with ``try_acquire`` succeeded: it costs the budget nothing."""
        with self._lock:
            self._counts.add(b=-1)

    def available(self) -> float:
        """Retries that could be taken now (for tests, metrics and logs)."""
        with self._lock:
            requests, retries = self._counts.totals()
            return self.floor + self.ratio * requests - retries
