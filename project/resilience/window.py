"""Counts over the last few seconds, in one-second buckets: O(window) memory at any rate."""

from __future__ import annotations

import math

from .deadline import Clock


class SlidingCounts:
    """Two counters (``a``, ``b``) summed over the last ``window`` seconds of ``clock``.

    Not thread-safe by itself: the budget and the breaker call it under their own lock.
    """

    def __init__(self, window: float, clock: Clock) -> None:
        self._clock = clock
        self._size = max(1, math.ceil(window))
        self._seconds = [-1] * self._size
        self._a = [0] * self._size
        self._b = [0] * self._size

    def add(self, a: int = 0, b: int = 0) -> None:
        second = int(self._clock())
        i = second % self._size
        if self._seconds[i] != second:
            self._seconds[i], self._a[i], self._b[i] = second, 0, 0
        self._a[i] += a
        self._b[i] += b

    def add_at(self, second: int, a: int = 0, b: int = 0) -> None:
        """Correct what was added in ``second``, if that second is still in the window
        (its bucket not reused since); else it has been forgotten already."""
        i = second % self._size
        if self._seconds[i] == second:
            self._a[i] += a
            self._b[i] += b

    def totals(self) -> tuple[int, int]:
        oldest = int(self._clock()) - self._size + 1
        live = [i for i, s in enumerate(self._seconds) if s >= oldest]
        return sum(self._a[i] for i in live), sum(self._b[i] for i in live)

    def clear(self) -> None:
        self._seconds = [-1] * self._size
