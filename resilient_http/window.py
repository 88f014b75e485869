"""A count over the last few seconds, in one-second buckets: O(window) memory at any rate."""

from __future__ import annotations

import math

from .deadline import Clock


class SlidingCount:
    """One counter summed over the last ``window`` seconds of ``clock``.

    Not thread-safe by itself: the budget and the breaker call it under their own lock.
    """

    __slots__ = ("_clock", "_counts", "_seconds", "_size")

    def __init__(self, window: float, clock: Clock) -> None:
        self._clock = clock
        self._size = max(1, math.ceil(window))
        self._seconds = [-1] * self._size
        self._counts = [0] * self._size

    def add(self, n: int = 1) -> None:
        second = int(self._clock())
        i = second % self._size
        if self._seconds[i] != second:
            self._seconds[i], self._counts[i] = second, 0
        self._counts[i] += n

    def add_at(self, second: int, n: int) -> None:
        """Correct what was added in ``second``, if that second is still in the window
        (its bucket not reused since); else it has been forgotten already."""
        i = second % self._size
        if self._seconds[i] == second:
            self._counts[i] += n

    def total(self) -> int:
        oldest = int(self._clock()) - self._size + 1
        return sum(c for s, c in zip(self._seconds, self._counts, strict=True) if s >= oldest)
