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

from .config import default
from .deadline import Clock
from .window import SlidingCount, Tally


class RetryBudget:
    """Thread-safe; one per upstream per process."""

    def __init__(
        self,
        *,
        ratio: float,
        min_per_second: float,
        window: float = default("budget_window"),
        clock: Clock = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.floor = min_per_second * window
        self.window = window
        self._clock = clock
        self._requests = SlidingCount(window, clock)  # first attempts
        self._tallied = Tally(self._requests)  # of which not yet folded in (no lock)
        self._retries = SlidingCount(window, clock)  # taken, net of refunds
        self._lock = threading.Lock()

    def record_request(self) -> None:
        """A first attempt went out: it earns ``ratio`` of a retry. Every call does this,
        so it takes no lock (``Tally``); what reads the count folds it in first."""
        self._tallied.add(self._clock())
        if self._tallied.full:
            with self._lock:
                self._tallied.fold()

    def try_acquire(self) -> bool:
        """Take one retry from the budget; ``False``, and nothing taken, when it is spent."""
        with self._lock:
            self._tallied.fold()
            if self._retries.total() + 1 > self.floor + self.ratio * self._requests.total():
                return False
            self._retries.add()
            return True

    def refund(self) -> None:
        """Give back a retry taken with ``try_acquire``: it succeeded, or it was never sent
        (the breaker opened during its backoff, or no host had a place for a hedge)."""
        with self._lock:
            self._retries.add(-1)

    def available(self) -> float:
        """Retries that could be taken now (for tests, metrics and logs)."""
        requests, retries = self.counts()
        return self.floor + self.ratio * requests - retries

    def counts(self) -> tuple[int, int]:
        """(first attempts, retries net of refunds) in the window: the budget's own
        bookkeeping, which the resilience page shows as it is."""
        with self._lock:
            self._tallied.fold()
            return self._requests.total(), self._retries.total()
