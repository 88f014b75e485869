"""Circuit breaker: stop calling an upstream that is failing or slow, probe it, resume when
it heals.

A state machine as resilience4j's ``CircuitBreakerStateMachine``: one small object per
state (``_Closed``, ``_Open``, ``_HalfOpen``), each answering ``allow``, ``record`` and
``release``; a transition is one swap of the current state, under the lock, and a fresh
``_Closed`` brings fresh counts (what failed before the outage is forgotten when it ends).
The lock guards a few counters only and is never held during I/O, so concurrent calls
through a closed breaker run in parallel (pybreaker holds its lock for the whole call,
which serialises every request to the upstream). Transitions are reported to listeners
after the lock is released.

A healthy call through a closed breaker takes no lock at all: its permit goes into a
dict and its success into a ``Tally``, each an atomic step, and the lock is taken when
there is something to judge (a failure, a slow call, a call in flight that may have
become slow) or to fold the tally every ``FOLD_EVERY`` calls. Taken twice per call, the
lock made 8 busy threads run at a third of one thread's rate: a thread switched out while
holding it stalls every other (docs/benchmarks.md, "What a healthy call costs").
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .config import default
from .deadline import Clock
from .window import SlidingCount, Tally


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


class Counts(NamedTuple):
    """The closed breaker's window: calls that succeeded, failed, and were slow."""

    successes: int
    failures: int
    slow: int


@dataclass(frozen=True, slots=True)
class _Rules:
    """When to open, and for how long; the same for every state."""

    failure_ratio: float
    min_calls: int
    consecutive_failures: int
    window: float
    reset: float
    slow_call: float
    slow_call_ratio: float

    def is_slow(self, seconds: float) -> bool:
        return self.slow_call > 0 and seconds >= self.slow_call

    def probe_slow(self) -> str:
        return f"probe took over {self.slow_call:g} s"


#: A state's answer when it ends: the next state, and why.
Move = tuple["_Closed | _Open | _HalfOpen", str]


class _Closed:
    """Calls go through; counted over a sliding window and in a row."""

    state = State.CLOSED

    def __init__(self, rules: _Rules, clock: Clock) -> None:
        self.rules = rules
        self.clock = clock
        self.successes = SlidingCount(rules.window, clock)
        self.failures = SlidingCount(rules.window, clock)
        self.slow = SlidingCount(rules.window, clock)
        self.quick = Tally(self.successes)  # quick successes counted without the lock
        self.in_flight: dict[Permit, None] = {}  # not counted slow (yet)
        self.overdue: dict[Permit, None] = {}  # counted slow while in flight (the lock's)
        #: No call in flight can have become slow before this: until then ``admit``.
        self.next_scan = 0.0 if rules.slow_call > 0 else math.inf
        self.in_a_row = 0  # bad calls in a row: failed, or slow
        self.row_slow = False  # some of them were slow (for the log line)

    def admit(self, now: float) -> Permit:
        """A permit, without the lock: before ``next_scan`` there is nothing to judge."""
        permit = Permit(now)
        self.in_flight[permit] = None  # one atomic step
        return permit

    def allow(self, now: float) -> Permit | Move:
        """A permit; or, if calls still in flight have just made it, the move to open."""
        self.fold()
        move = self._count_overdue(now)
        if move is not None:
            return move
        return self.admit(now)

    def count_quick(self, permit: Permit | None, now: float) -> bool:
        """Count the success of ``permit``'s call without the lock, if it ended in time
        and was never counted slow: it only adds to the successes, folded in (``fold``)
        under the lock. ``False``: not counted, ``record`` must judge it under the lock.

        Taking the permit out of ``in_flight`` is the claim: the scan for slow calls
        takes it out too before it counts it slow, so one of the two counts it, once.
        """
        if permit is None or self.rules.is_slow(permit.waited(now)):
            return False
        if self.in_flight.pop(permit, False) is not None:  # counted slow, or stale news
            return False
        self.quick.add(now)
        return True

    def record(self, permit: Permit | None, success: bool, now: float) -> Move | None:
        self.fold()
        if not self._current(permit):
            return None
        slow = self._slow(permit, now)
        if permit is not None and permit.counted_at is not None:  # counted while in flight
            if not success:  # as a success; it failed: one failed call, not two calls
                self.successes.add_at(permit.counted_at, -1)
                self.failures.add()
            return self._judge()
        (self.successes if success else self.failures).add()
        if slow:
            self.slow.add()
        return self._streak(bad=slow or not success, slow=slow and success)

    def release(self, permit: Permit | None, now: float) -> Move | None:
        """Only a slow call counts, as a slow success, once."""
        self.fold()
        if not self._current(permit) or not self._slow(permit, now):
            return None
        if permit is not None and permit.slow:
            return None
        self.successes.add()
        self.slow.add()
        return self._streak(bad=True, slow=True)

    def counts(self) -> Counts:
        self.fold()
        return Counts(self.successes.total(), self.failures.total(), self.slow.total())

    def fold(self) -> None:
        """Count the quick successes tallied since: each one ended a streak of bad calls
        (they all came before what is judged now)."""
        if self.quick.fold():
            self.in_a_row, self.row_slow = 0, False

    def _current(self, permit: Permit | None) -> bool:
        """Forget ``permit``: was it given by this state (not before a transition)?"""
        return (
            permit is None
            or self.in_flight.pop(permit, False) is None
            or self.overdue.pop(permit, False) is None
        )

    def _slow(self, permit: Permit | None, now: float) -> bool:
        return permit is not None and (permit.slow or self.rules.is_slow(permit.waited(now)))

    def _streak(self, *, bad: bool, slow: bool) -> Move | None:
        if not bad:
            self.in_a_row, self.row_slow = 0, False
            return None
        self.in_a_row += 1
        self.row_slow |= slow
        return self._judge()

    def _count_overdue(self, now: float) -> Move | None:
        """Count each call in flight past ``slow_call`` as a slow call, once, now, and
        note when the next one could be (``next_scan``). At most the bulkhead's limit of
        calls are in flight: a short scan."""
        limit = self.rules.slow_call
        if limit <= 0:
            return None
        counted, soonest = False, limit  # a call admitted from now on: slow_call from now
        for permit in list(self.in_flight):  # a copy: ``admit`` adds without the lock
            waited = permit.waited(now)
            if waited < limit:
                soonest = min(soonest, limit - waited)
            elif self.in_flight.pop(permit, False) is None:  # ours, not ``count_quick``'s
                self.overdue[permit] = None
                permit.counted_at, counted = int(now), True
                self.successes.add()
                self.slow.add()
        self.next_scan = now + soonest
        # Calls side by side went slow together: one more in the streak, not one each (a
        # single stall of the upstream must not look like five slow calls in a row).
        return self._streak(bad=True, slow=True) if counted else None

    def _judge(self) -> Move | None:
        """Open, and why, if the calls so far say so."""
        rules = self.rules
        if self.in_a_row >= rules.consecutive_failures:
            bad = "slow or failed calls" if self.row_slow else "failures"
            return self._open(f"{self.in_a_row} consecutive {bad}")
        successes, failures, slow = self.counts()
        calls = max(0, successes) + failures  # a slow call that then failed moved over
        if calls < rules.min_calls:
            return None
        if failures / calls >= rules.failure_ratio:
            return self._open(f"{failures} of the last {calls} calls failed")
        if rules.slow_call > 0 and slow / calls >= rules.slow_call_ratio:
            return self._open(f"{slow} of the last {calls} calls took over {rules.slow_call:g} s")
        return None

    def _open(self, cause: str) -> Move:
        return _Open(self.rules, self.clock, self.clock()), cause


class _Open:
    """Nothing goes through until ``reset`` has passed; then the first caller probes."""

    state = State.OPEN

    def __init__(self, rules: _Rules, clock: Clock, opened_at: float) -> None:
        self.rules = rules
        self.clock = clock
        self.opened_at = opened_at

    def allow(self, now: float) -> Permit | Move | None:
        if now - self.opened_at < self.rules.reset:
            return None
        return _HalfOpen(self.rules, self.clock), f"open for {self.rules.reset:g} s, probing"

    def record(self, permit: Permit | None, success: bool, now: float) -> Move | None:
        return None  # from before it opened: stale news

    def release(self, permit: Permit | None, now: float) -> Move | None:
        return None

    def retry_after(self, now: float) -> float:
        return max(0.0, self.opened_at + self.rules.reset - now)

    def counts(self) -> Counts:
        return Counts(0, 0, 0)


class _HalfOpen:
    """One probe at a time; its quick success closes, its failure or slowness reopens."""

    state = State.HALF_OPEN

    def __init__(self, rules: _Rules, clock: Clock) -> None:
        self.rules = rules
        self.clock = clock
        self.probe: Permit | None = None
        self.probe_started = 0.0

    def allow(self, now: float) -> Permit | None:
        """The probe's permit, for one caller; another after ``reset`` if the probe never
        reported back (its thread died)."""
        if self.probe is not None and now - self.probe_started < self.rules.reset:
            return None
        self.probe, self.probe_started = Permit(now), now
        return self.probe

    def record(self, permit: Permit | None, success: bool, now: float) -> Move | None:
        if not self._is_probe(permit):
            return None
        if not success:
            return self._reopen("probe failed", now)
        if self._slow(permit, now):
            return self._reopen(self.rules.probe_slow(), now)
        return _Closed(self.rules, self.clock), "probe succeeded"

    def release(self, permit: Permit | None, now: float) -> Move | None:
        """The probe's caller cut it: only its slowness says something."""
        if self._is_probe(permit) and self._slow(permit, now):
            return self._reopen(self.rules.probe_slow(), now)
        return None

    def counts(self) -> Counts:
        return Counts(0, 0, 0)

    def _is_probe(self, permit: Permit | None) -> bool:
        if permit is not None and permit is not self.probe:
            return False
        self.probe = None
        return True

    def _slow(self, permit: Permit | None, now: float) -> bool:
        return permit is not None and self.rules.is_slow(permit.waited(now))

    def _reopen(self, cause: str, now: float) -> Move:
        return _Open(self.rules, self.clock, now), cause


class CircuitBreaker:
    """Opens on ``failure_ratio`` of the calls in ``window`` seconds (once there are at least
    ``min_calls``), on ``slow_call_ratio`` of them taking ``slow_call`` seconds or more, or on
    ``consecutive_failures`` calls in a row that failed or were slow. (The ratios are
    diluted by the healthy calls still in the window: 400 of them at 40/s kept a slow
    upstream's breaker closed for 7.5 s; in a row, it opens a second after the slowness
    starts.) After ``reset`` seconds open, one probe goes through (half-open): its quick
    success closes the breaker, its failure or slowness reopens it.

    A call still in flight past ``slow_call`` is counted slow at once, not when it ends
    (resilience4j counts a slow call only when it returns, so a hung upstream that holds
    every call stays "healthy" until the timeouts fire). It is counted whoever ends it:
    a caller's own short deadline does not hide a slow upstream. A report about a call
    from before the breaker last opened or closed is stale news, and ignored.
    """

    def __init__(
        self,
        *,
        failure_ratio: float = default("breaker_failure_ratio"),
        min_calls: int = default("breaker_min_calls"),
        consecutive_failures: int = default("breaker_consecutive_failures"),
        window: float = default("breaker_window"),
        reset: float = default("breaker_reset"),
        slow_call: float = default("slow_call"),
        slow_call_ratio: float = default("breaker_slow_call_ratio"),
        clock: Clock = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.rules = _Rules(
            failure_ratio=failure_ratio,
            min_calls=min_calls,
            consecutive_failures=consecutive_failures,
            window=window,
            reset=reset,
            slow_call=slow_call,
            slow_call_ratio=slow_call_ratio,
        )
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._state: _Closed | _Open | _HalfOpen = _Closed(self.rules, clock)

    # The rules, by the names callers know.
    failure_ratio = property(lambda self: self.rules.failure_ratio)
    consecutive_failures = property(lambda self: self.rules.consecutive_failures)
    reset = property(lambda self: self.rules.reset)

    @property
    def state(self) -> State:
        return self._state.state  # one read of one attribute: no lock needed

    def allow(self) -> Permit | None:
        """May a call go out now? Its permit, or ``None``. In half-open, a permit for
        exactly one caller: the probe."""
        now, state = self._clock(), self._state
        if type(state) is _Closed and now < state.next_scan:
            return state.admit(now)  # nothing to judge: no lock (the module's docstring)
        moves: list[tuple[State, str]] = []
        with self._lock:
            answer = self._state.allow(now)
            while isinstance(answer, tuple):  # closed -> open, or open -> half-open
                moves.append(self._swap(answer))
                answer = self._state.allow(now) if answer[0].state is State.HALF_OPEN else None
        for move in moves:
            self._notify(move)
        return answer

    def record(self, permit: Permit | None = None, *, success: bool) -> None:
        """Report how a call that ``allow()`` let through ended."""
        now, state = self._clock(), self._state
        if success and type(state) is _Closed and state.count_quick(permit, now):
            if state.quick.full:
                with self._lock:
                    state.fold()
            return
        with self._lock:
            move = self._state.record(permit, success, now)
            done = self._swap(move) if move else None
        self._notify(done)

    def release(self, permit: Permit | None = None) -> None:
        """A call that ``allow()`` let through ended saying nothing about the upstream's
        answers (its caller's own deadline cut it). Only its slowness counts, if it got
        that far; in half-open, the probe's place is freed."""
        with self._lock:
            move = self._state.release(permit, self._clock())
            done = self._swap(move) if move else None
        self._notify(done)

    def counts(self) -> Counts:
        """The closed state's window (zeros in the other states)."""
        with self._lock:
            return self._state.counts()

    def retry_after(self) -> float:
        """Seconds until the next probe may go out; 0 when not open."""
        state = self._state
        return state.retry_after(self._clock()) if isinstance(state, _Open) else 0.0

    def retry_after_header(self) -> int:
        """``retry_after()`` rounded up to whole seconds, at least 1, for a ``Retry-After``."""
        return max(1, math.ceil(self.retry_after()))

    def _swap(self, move: Move) -> tuple[State, str]:
        self._state, cause = move
        return self._state.state, cause

    def _notify(self, transition: tuple[State, str] | None) -> None:
        if transition and self._on_transition:
            self._on_transition(*transition)


class NoBreaker:
    """A breaker that lets everything through and counts nothing: ``breaker=False``, with
    no ``None`` checks in the loop."""

    state = State.CLOSED
    reset = 0.0

    def allow(self) -> Permit:
        return Permit(0.0)

    def record(self, permit: Permit | None = None, *, success: bool) -> None:
        pass

    def release(self, permit: Permit | None = None) -> None:
        pass

    def retry_after(self) -> float:
        return 0.0

    def retry_after_header(self) -> int:
        return 1
