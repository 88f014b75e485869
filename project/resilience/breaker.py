"""Circuit breaker: stop calling an upstream that is failing or slow, probe it, resume when
it heals.

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


class Permit:
    """One call ``allow()`` let through, in flight until ``record()`` or ``release()``.

    Its time counts from ``allow()``; the call loop pauses it while it sleeps (``pause``,
    ``resume``), so only the time spent waiting on the upstream makes a call slow, not the
    backoff or a ``Retry-After`` the loop chose to wait.
    """

    __slots__ = ("_time", "counted_at")

    def __init__(self, started: float) -> None:
        # (seconds spent before, waiting since or None when paused): one attribute, written
        # by the call's thread and read by others in one step, so never half updated.
        self._time: tuple[float, float | None] = (0.0, started)
        #: The second it was counted as slow while still in flight, or None.
        self.counted_at: int | None = None

    def pause(self, now: float) -> None:
        spent, since = self._time
        if since is not None:
            self._time = (spent + now - since, None)

    def resume(self, now: float) -> None:
        spent, since = self._time
        if since is None:
            self._time = (spent, now)

    def waited(self, now: float) -> float:
        """Seconds spent waiting on the upstream so far."""
        spent, since = self._time
        return spent + (0.0 if since is None else now - since)

    @property
    def slow(self) -> bool:
        """Counted as a slow call already, while still in flight?"""
        return self.counted_at is not None


def _counted(permit: Permit | None) -> bool:
    """Counted as a slow call already, while still in flight?"""
    return permit is not None and permit.slow


class CircuitBreaker:
    """Opens on ``failure_ratio`` of the calls in ``window`` seconds (once there are at least
    ``min_calls``), on ``slow_call_ratio`` of them taking ``slow_call`` seconds or more, or on
    ``consecutive_failures`` calls in a row that failed or were slow. (The ratios are
    diluted by the healthy calls still in the window: 400 of them at 40/s kept a slow
    upstream's breaker closed for 7.5 s; in a row, it opens a second after the slowness
    starts.) after ``reset`` seconds open, one probe goes
    through (half-open): its quick success closes the breaker, its failure or slowness
    reopens it.

    A call still in flight past ``slow_call`` is counted slow at once, not when it ends
    (resilience4j counts a slow call only when it returns, so a hung upstream that holds
    every call stays "healthy" until the timeouts fire). It is counted whoever ends it:
    a caller's own short deadline does not hide a slow upstream.
    """

    def __init__(
        self,
        *,
        failure_ratio: float = 0.5,
        min_calls: int = 10,
        consecutive_failures: int = 5,
        window: float = 10.0,
        reset: float = 5.0,
        slow_call: float = 0.0,
        slow_call_ratio: float = 1.0,
        clock: Clock = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.consecutive_failures = consecutive_failures
        self.reset = reset
        self.slow_call = slow_call
        self.slow_call_ratio = slow_call_ratio
        self._clock = clock
        self._on_transition = on_transition
        self._counts = SlidingCounts(window, clock)  # a: successes, b: failures
        self._slow = SlidingCounts(window, clock)  # a: slow calls
        self._in_flight: dict[Permit, None] = {}  # oldest first: permits in start order
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._consecutive = 0  # bad calls in a row: failed, or slow
        self._streak_slow = False  # some of them were slow (for the log line)
        self._opened_at = 0.0
        self._probe: Permit | None = None  # in half-open: the one call let through
        self._probe_started = 0.0

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def allow(self) -> Permit | None:
        """May a call go out now? Its permit, or ``None``. In half-open, a permit for
        exactly one caller: the probe. A probe that never reports back (its thread died) is
        replaced after ``reset`` seconds.
        """
        transition = None
        permit = None
        with self._lock:
            now = self._clock()
            if self._state is State.CLOSED:
                transition = self._count_overdue(now)  # may open the breaker: then no permit
                if transition is None:
                    return self._permit(now)
            elif self._state is State.OPEN and now - self._opened_at >= self.reset:
                self._state = State.HALF_OPEN
                transition = (State.HALF_OPEN, f"open for {self.reset:g} s, probing")
            if self._state is State.HALF_OPEN and (
                self._probe is None or now - self._probe_started >= self.reset
            ):
                self._probe_started = now
                permit = self._probe = self._permit(now)
        self._notify(transition)
        return permit

    def record(self, permit: Permit | None = None, *, success: bool) -> None:
        """Report how a call that ``allow()`` let through ended. A call from before the
        breaker last opened or closed is stale news, and ignored."""
        transition = None
        with self._lock:
            live, slow = self._end(permit)
            if self._state is State.HALF_OPEN and (permit is None or permit is self._probe):
                self._probe = None
                if not success:
                    transition = self._open("probe failed")
                elif slow:
                    transition = self._open(f"probe took over {self.slow_call:g} s")
                else:
                    transition = self._close()
            elif self._state is State.CLOSED and live:
                if _counted(permit):  # as a (slow) success, while in flight
                    if not success:  # it failed: one failed call, not two calls
                        self._counts.add_at(permit.counted_at, a=-1)  # type: ignore[union-attr]
                        self._counts.add(b=1)
                else:
                    self._counts.add(a=int(success), b=int(not success))
                    self._slow.add(a=int(slow))
                if success and not slow:
                    self._consecutive, self._streak_slow = 0, False
                elif not _counted(permit):  # a call counted slow in flight is in it already
                    self._consecutive += 1
                    self._streak_slow |= success
                if slow or not success:
                    transition = self._maybe_open()
        self._notify(transition)

    def release(self, permit: Permit | None = None) -> None:
        """A call that ``allow()`` let through ended saying nothing about the upstream's
        answers (its caller's own deadline cut it). Only its slowness counts, if it got
        that far; in half-open, the probe's place is freed.
        """
        transition = None
        with self._lock:
            live, slow = self._end(permit)
            if self._state is State.HALF_OPEN and (permit is None or permit is self._probe):
                self._probe = None
                if slow:  # a caller's deadline ended the wait; Users was slow all the same
                    transition = self._open(f"probe took over {self.slow_call:g} s")
            elif self._state is State.CLOSED and live and slow and not _counted(permit):
                self._counts.add(a=1)
                self._slow.add(a=1)
                self._consecutive += 1
                self._streak_slow = True
                transition = self._maybe_open()
        self._notify(transition)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _permit(self, now: float) -> Permit:
        permit = Permit(now)
        self._in_flight[permit] = None
        return permit

    def _end(self, permit: Permit | None) -> tuple[bool, bool]:
        """Forget ``permit``: was it still current (not from before a transition), and
        was its call slow?"""
        if permit is None:
            return True, False  # a caller that keeps no permits (tests): always current
        live = self._in_flight.pop(permit, False) is None
        return live, permit.slow or self._is_slow(permit.waited(self._clock()))

    def _is_slow(self, seconds: float) -> bool:
        return self.slow_call > 0 and seconds >= self.slow_call

    def _count_overdue(self, now: float) -> tuple[State, str] | None:
        """Count each call in flight past ``slow_call`` as a slow call, once, now. At most
        the bulkhead's limit of calls are in flight: a short scan."""
        if self.slow_call <= 0:
            return None
        counted = False
        for permit in self._in_flight:
            if not permit.slow and self._is_slow(permit.waited(now)):
                permit.counted_at, counted = int(now), True
                self._counts.add(a=1)
                self._slow.add(a=1)
        if not counted:
            return None
        # Calls side by side went slow together: one more in the streak, not one each (a
        # single stall of the upstream must not look like five slow calls in a row).
        self._consecutive += 1
        self._streak_slow = True
        return self._maybe_open()

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
            bad = "slow or failed calls" if self._streak_slow else "failures"
            return self._open(f"{self._consecutive} consecutive {bad}")
        successes, failures = self._counts.totals()
        calls = max(0, successes) + failures  # a slow call that then failed moved a to b
        if calls < self.min_calls:
            return None
        if failures / calls >= self.failure_ratio:
            return self._open(f"{failures} of the last {calls} calls failed")
        slow = self._slow.totals()[0]
        if self.slow_call > 0 and slow / calls >= self.slow_call_ratio:
            return self._open(f"{slow} of the last {calls} calls took over {self.slow_call:g} s")
        return None

    def _open(self, cause: str) -> tuple[State, str]:
        self._state = State.OPEN
        self._opened_at = self._clock()
        self._in_flight.clear()  # calls still out are from before: their news will be stale
        return State.OPEN, cause

    def _close(self) -> tuple[State, str]:
        self._state = State.CLOSED
        self._consecutive, self._streak_slow = 0, False
        self._counts.clear()
        self._slow.clear()
        self._in_flight.clear()  # calls still out started before the probe: stale news
        return State.CLOSED, "probe succeeded"

    def _notify(self, transition: tuple[State, str] | None) -> None:
        if transition and self._on_transition:
            self._on_transition(*transition)
