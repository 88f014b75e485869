"""Bulkhead: at most ``limit`` calls to one upstream in flight per process; no queue.

A slow upstream holds each call for as long as it is slow. Without a limit, every server
thread ends up waiting on it and requests that never call it queue behind them (Little's
law: 40 calls a second at 1.5 s each want 60 threads). With one, the calls over the limit
fail at once, and the threads the limit leaves free keep serving everything else. It
does not queue: a queue would only move the waiting from the upstream to here (Polly's and
resilience4j's bulkheads queue optionally; Envoy's ``max_requests`` does not).
"""

from __future__ import annotations

from collections import deque


class Bulkhead:
    """A non-blocking counting semaphore that can say how full it is. Thread-safe.

    A place is a token in a ``deque``: taking one is ``pop``, giving it back ``append``,
    each one atomic (deques are documented thread-safe for both), so no lock is taken. A
    lock here, taken twice per call, made threads queue on each other: 8 threads ran at a
    third of one thread's rate (docs/benchmarks.md, "What a healthy call costs").
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1; got {limit}")
        self.limit = limit
        self._places: deque[None] = deque([None] * limit)

    def try_enter(self) -> bool:
        """Take a place; ``False``, and nothing taken, when all ``limit`` are taken."""
        try:
            self._places.pop()
        except IndexError:
            return False
        return True

    def leave(self) -> None:
        """Give back the place ``try_enter`` took."""
        self._places.append(None)

    @property
    def in_flight(self) -> int:
        return self.limit - len(self._places)
