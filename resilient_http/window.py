"""A count over the last few seconds, in one-second buckets: O(window) memory at any rate;
and a tally that feeds one from many threads without a lock."""

from __future__ import annotations

import math
from collections import deque

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

    def add(self, n: int = 1, *, second: int | None = None) -> None:
        """Count ``n`` in ``second`` (now by default); one already out of the window is
        forgotten."""
        if second is None:
            second = int(self._clock())
        i = second % self._size
        if self._seconds[i] > second:
            return
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


#: Tallied adds a ``Tally`` holds at most before it asks to be folded.
FOLD_EVERY = 64


class Tally:
    """Adds to a ``SlidingCount`` from any thread without taking a lock: ``add`` appends
    the second to a ``deque`` (an atomic step; deques are documented thread-safe), and
    the count's owner ``fold``s them in under its own lock before it reads the count.

    Why: a healthy call counted under the owner's lock made threads queue on it (a thread
    the interpreter switches out while holding it stalls every other); see the breaker.
    """

    __slots__ = ("_seconds", "count")

    def __init__(self, count: SlidingCount) -> None:
        self.count = count
        self._seconds: deque[int] = deque()

    def add(self, now: float) -> None:
        """Tally one at ``now``."""
        self._seconds.append(int(now))

    @property
    def full(self) -> bool:
        """``FOLD_EVERY`` are waiting: time to fold."""
        return len(self._seconds) >= FOLD_EVERY

    def fold(self) -> int:
        """Move what was tallied into the count; how many. Under the owner's lock (one
        folder at a time; adds may go on meanwhile)."""
        folded = 0
        while self._seconds:
            self.count.add(second=self._seconds.popleft())
            folded += 1
        return folded
