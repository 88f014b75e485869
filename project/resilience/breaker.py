"""Circuit breaker: stop calling an upstream that is failing, probe it, resume when it heals.

The lock guards a few counters only and is never held during I/O, so concurrent calls
through a closed breaker run in parallel (pybreaker holds its lock for the whole call,
which serialises every request to the upstream). Transitions are reported to listeners
after the lock is released.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable

from .deadline import Clock
from .window import SlidingCounts


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


Transition = Callable[[State, str], None]


class CircuitBreaker:
    """Opens on ``failure_ratio`` of the calls in ``window`` seconds (once there are at least
    ``min_calls``) or on ``consecutive_failures`` in a row; after ``reset`` seconds open, one
    probe goes through (half-open): its success closes the breaker, its failure reopens it.
    """

    def __init__(
        self,
        *,
        failure_ratio: float = 0.5,
        min_calls: int = 10,
        consecutive_failures: int = 5,
        window: float = 10.0,
        reset: float = 5.0,
        clock: Clock = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.consecutive_failures = consecutive_failures
        self.reset = reset
        self._clock = clock
        self._on_transition = on_transition
        self._counts = SlidingCounts(window, clock)  # a: successes, b: failures
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May a request go out now? In half-open, ``True`` for exactly one caller: the probe.

        A probe that never reports back (its thread died) is replaced after ``reset`` seconds.
        """
        transition = None
        with self._lock:
            now = self._clock()
            if self._state is State.CLOSED:
                return True
            if self._state is State.OPEN:
                if now - self._opened_at < self.reset:
                    return False
                self._state = State.HALF_OPEN
                transition = (State.HALF_OPEN, f"open for {self.reset:g} s, probing")
            elif self._probe_started is not None and now - self._probe_started < self.reset:
                return False
            self._probe_started = now
        self._notify(transition)
        return True

    def record(self, *, success: bool) -> None:
        """Report the outcome of a call that ``allow()`` let through."""
        transition = None
        with self._lock:
            if self._state is State.HALF_OPEN:
                self._probe_started = None
                transition = self._close() if success else self._open("probe failed")
            elif self._state is State.CLOSED:
                self._counts.add(a=int(success), b=int(not success))
                self._consecutive = 0 if success else self._consecutive + 1
                if not success:
                    transition = self._maybe_open()
            # OPEN: a straggler that started before the breaker opened; its news is stale.
        self._notify(transition)

    def release(self) -> None:
        """A call that ``allow()`` let through ended saying nothing about the upstream (its
        caller's own deadline cut it): count nothing; in half-open, free the probe's place.
        """
        with self._lock:
            if self._state is State.HALF_OPEN:
                self._probe_started = None

    def retry_after(self) -> float:
        """Seconds until the next probe may go out; 0 when not open."""
        with self._lock:
            if self._state is not State.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.reset - self._clock())

    def retry_after_header(self) -> int:
        """``retry_after()`` rounded up to whole seconds, at least 1, for a ``Retry-After``."""
        return max(1, math.ceil(self.retry_after()))

    def _maybe_open(self) -> tuple[State, str] | None:
        if self._consecutive >= self.consecutive_failures:
            return self._open(f"{self._consecutive} consecutive failures")
        successes, failures = self._counts.totals()
        calls = successes + failures
        if calls >= self.min_calls and failures / calls >= self.failure_ratio:
            return self._open(f"{failures} of the last {calls} calls failed")
        return None

    def _open(self, cause: str) -> tuple[State, str]:
        self._state = State.OPEN
        self._opened_at = self._clock()
        return State.OPEN, cause

    def _close(self) -> tuple[State, str]:
        self._state = State.CLOSED
        self._consecutive = 0
        self._counts.clear()
        return State.CLOSED, "probe succeeded"

    def _notify(self, transition: tuple[State, str] | None) -> None:
        if transition and self._on_transition:
            self._on_transition(*transition)
