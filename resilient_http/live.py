"""A live, in-process record of upstream calls, for the resilience page.

Fed by the same resilience events as the logs and the metrics (``CallRecorder`` is a
listener), plus a wrapper around each call (``CallRecorder.call``) for what no event says:
when a call started, its deadline, and so how many calls are in flight. Memory is bounded:
the last ``size`` calls per upstream and the last ``transitions`` breaker changes, in
ring buffers.

Events come from the thread that makes the call (the manager emits them synchronously), so
attempts are grouped into calls by thread, and a call's row is written by its own thread
only. So no lock: rows go into a ``deque`` and a dict keyed by thread, each step atomic, and
the page's ``snapshot`` copies what it reads (a row caught mid-update shows the moment
before or after). A lock taken three times per call made busy threads queue on each other
(docs/benchmarks.md, "What a healthy call costs"). A call made without the wrapper (the
benchmarks' own manager, say) still shows: it starts at its first attempt's event.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from .events import Event
from .loop import CallInfo

#: Calls refused before any attempt, and the reason the page shows.
REJECTIONS = {ev.BREAKER_REJECTED: "circuit open", ev.BULKHEAD_REJECTED: "bulkhead full"}

HOST_EVENTS = {ev.HOST_EJECTED: "ejected", ev.HOST_RETURNED: "back in rotation"}
BREAKER_EVENTS = {
    ev.BREAKER_OPENED: "open",
    ev.BREAKER_HALF_OPEN: "half_open",
    ev.BREAKER_CLOSED: "closed",
}


@dataclass(slots=True)
class AttemptRecord:
    """One attempt; ``start`` in seconds from the call's start, ``wait`` the backoff after it."""

    number: int
    outcome: str
    start: float
    elapsed: float
    wait: float | None = None
    host: str | None = None  # where there are several


@dataclass(slots=True)
class CallRecord:
    """One call: its attempts, how it ended (``None`` while in flight) and why."""

    id: int
    upstream: str
    method: str
    path: str
    started: float  # recorder clock (monotonic)
    wall: float  # time.time() at the start, for the page's clock column
    deadline: float | None = None  # seconds the call was given
    trace_id: str | None = None  # its OpenTelemetry trace, if one is recording
    ended: float | None = None
    result: str | None = None  # "succeeded", "failed", "rejected"
    cause: str | None = None
    attempts: dict[int, AttemptRecord] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # breaker transitions, hedges
    hedged: bool = False
    wrapped: bool = False  # opened by ``CallRecorder.call``, which also closes it

    def as_dict(self, now: float) -> dict[str, Any]:
        end = self.ended if self.ended is not None else now
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "at": self.wall,
            "age": round(now - self.started, 4),
            "duration": round(end - self.started, 4),
            "deadline": self.deadline,
            "trace_id": self.trace_id,
            "in_flight": self.ended is None,
            "result": self.result,
            "cause": self.cause,
            "notes": list(self.notes),
            "attempts": [  # a copy first: its own thread may add one meanwhile
                {
                    "number": a.number,
                    "outcome": a.outcome,
                    "start": round(a.start, 4),
                    "elapsed": round(a.elapsed, 4),
                    "wait": None if a.wait is None else round(a.wait, 4),
                    "host": a.host,
                }
                for a in list(self.attempts.values())
            ],
        }


@dataclass(slots=True)
class _Upstream:
    calls: deque[CallRecord]
    transitions: deque[dict[str, Any]]


class CallRecorder:
    """Thread-safe without a lock (the module's docstring); one per process
    (``RECORDER``). ``clock`` is injectable for tests."""

    def __init__(
        self,
        *,
        size: int = 40,
        transitions: int = 20,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        trace_id: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.size = size
        self._transitions = transitions
        self._clock = clock
        self._wall = wall
        #: The current trace's ID (``resilient_http.request_id.current_trace_id``).
        self.trace_id = trace_id
        self._ids = itertools.count(1)
        self._upstreams: dict[str, _Upstream] = {}
        self._open: dict[tuple[int, str], CallRecord] = {}  # (thread, upstream) -> its call

    # -- feeding ---------------------------------------------------------------------------

    @contextmanager
    def call(
        self, upstream: str, *, method: str, path: str, deadline: float | None = None
    ) -> Iterator[None]:
        """Around one call: counts it in flight, and opens its row before any event."""
        key = (threading.get_ident(), upstream)
        record = self._row(upstream, method, path, self._clock())
        record.deadline, record.wrapped = deadline, True
        record.trace_id = self.trace_id()
        self._open[key] = record
        try:
            yield
        except BaseException as exc:
            if record.result is None:  # no event said how it ended: a bug, not an outage
                record.result, record.cause = "failed", type(exc).__name__
            raise
        finally:
            if self._open.get(key) is record:
                del self._open[key]
            if record.ended is None:
                record.ended = self._clock()
                record.result = record.result or "succeeded"

    def scope(self, info: CallInfo) -> AbstractContextManager[None]:
        """The scope: ``RetryManager(scopes=(RECORDER.scope,))``."""
        return self.call(info.upstream, method=info.method, path=info.path, deadline=info.deadline)

    def __call__(self, event: Event) -> None:
        """The listener: ``RetryManager(listeners=(..., RECORDER))``."""
        now = self._clock()
        key = (threading.get_ident(), event.upstream)
        record = self._open.get(key)
        match event:
            case ev.BreakerOpened() | ev.BreakerHalfOpen() | ev.BreakerClosed():
                self._transition(event, record)
            case ev.BreakerRejected() | ev.BulkheadRejected():
                record = record or self._start(event, now)  # a call without the wrapper
                self._finish(record, key, now, "rejected", REJECTIONS[event.name])
            case ev.HostEjected() | ev.HostReturned():  # the host panel reads the balancer
                if record is not None:
                    record.notes.append(f"host {event.host} {HOST_EVENTS[event.name]}")
            case ev.HedgeSent():
                if record is not None:
                    record.hedged = True
                    record.notes.append(f"hedge sent after {(event.elapsed or 0) * 1000:.0f} ms")
            case ev.CallEvent():
                self._call_event(event, key, record, now)

    def _transition(self, event: Event, record: CallRecord | None) -> None:
        to = BREAKER_EVENTS[event.name]
        self._upstream(event.upstream).transitions.append(
            {"to": to, "at": self._wall(), "cause": event.cause}
        )
        if record is not None:
            record.notes.append(f"breaker {to.replace('_', '-')}: {event.cause}")

    def _call_event(
        self, event: ev.CallEvent, key: tuple[int, str], record: CallRecord | None, now: float
    ) -> None:
        """An attempt that decided (its mark on the row), and how the call ended."""
        if event.attempt is not None:
            record = self._attempt(event, key, record, now)
        if isinstance(event, ev.CallSucceeded) and record is not None:
            self._finish(record, key, now, "succeeded", None)
        elif isinstance(event, ev.CallFailed):
            record = record or self._start(event, now)  # failed before its first attempt
            self._finish(record, key, now, "failed", event.cause)

    def _attempt(
        self, event: ev.CallEvent, key: tuple[int, str], record: CallRecord | None, now: float
    ) -> CallRecord:
        elapsed = event.elapsed or 0.0
        if record is None or record.ended is not None:
            record = self._open[key] = self._start(event, now - elapsed)
        number = event.attempt or 0
        if number not in record.attempts:  # a later event may repeat it
            start = now - elapsed - record.started
            outcome = event.outcome or "?"
            record.attempts[number] = AttemptRecord(
                number, outcome, start, elapsed, host=event.host
            )
        if isinstance(event, ev.RetryScheduled):
            record.attempts[number].wait = event.wait
        return record

    # -- reading ---------------------------------------------------------------------------

    def snapshot(self, upstream: str) -> dict[str, Any]:
        """The upstream's calls (newest first), in-flight count, breaker changes, budget use."""
        now = self._clock()
        state = self._upstream(upstream)
        wrapped = list(self._open.values())  # copies (one step each): calls go on meanwhile
        return {
            "in_flight": sum(1 for r in wrapped if r.wrapped and r.upstream == upstream),
            "calls": [c.as_dict(now) for c in reversed(list(state.calls))],
            "transitions": list(reversed(list(state.transitions))),
        }

    def clear(self) -> None:
        """Forget everything (tests)."""
        self._upstreams.clear()
        self._open.clear()

    # -- internals -------------------------------------------------------------------------

    def _upstream(self, name: str) -> _Upstream:
        state = self._upstreams.get(name)
        if state is None:  # two threads may race here: ``setdefault`` keeps the first
            fresh = _Upstream(
                calls=deque(maxlen=self.size), transitions=deque(maxlen=self._transitions)
            )
            state = self._upstreams.setdefault(name, fresh)
        return state

    def _start(self, event: ev.CallEvent, started: float) -> CallRecord:
        """A row for a call the wrapper did not open (made without ``call``)."""
        return self._row(event.upstream, event.method or "", event.path or "", started)

    def _row(self, upstream: str, method: str, path: str, started: float) -> CallRecord:
        wall = self._wall() - (self._clock() - started)
        record = CallRecord(next(self._ids), upstream, method, path, started, wall)
        self._upstream(upstream).calls.append(record)  # the deque drops the oldest
        return record

    def _finish(
        self, record: CallRecord, key: tuple[int, str], now: float, result: str, cause: str | None
    ) -> None:
        record.ended, record.result, record.cause = now, result, cause
        if self._open.get(key) is record and not record.wrapped:
            del self._open[key]  # no wrapper will close it: forget it now


#: The process-wide recorder (one per process, like the breaker and the budget).
RECORDER = CallRecorder()
