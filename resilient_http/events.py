"""Instrumentation as hooks: one typed event per decision, feeding logs, metrics and the
resilience page alike (resilience4j's and Polly's typed events).

Each kind is its own class with the fields it has, its stable ``name`` (dashboards and
alerts key on it), its log level and its one line (``describe``); a listener matches on
the class. ``fields()`` is the same facts for machines: the JSON log and ``extra``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

logger = logging.getLogger("resilient_http")

#: Event names, stable: dashboards and alerts key on them.
CALL_SUCCEEDED = "call_succeeded"
RETRY_SCHEDULED = "retry_scheduled"
CALL_FAILED = "call_failed"
BUDGET_EXHAUSTED = "budget_exhausted"
BREAKER_OPENED = "breaker_opened"
BREAKER_HALF_OPEN = "breaker_half_open"
BREAKER_CLOSED = "breaker_closed"
BREAKER_REJECTED = "breaker_rejected"
BULKHEAD_REJECTED = "bulkhead_rejected"
HEDGE_SENT = "hedge_sent"
HOST_EJECTED = "host_ejected"
HOST_RETURNED = "host_returned"


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What happened, to which upstream; times in seconds."""

    name: ClassVar[str]
    level: ClassVar[int] = logging.WARNING
    upstream: str
    cause: str | None = None

    def log_level(self) -> int:
        """The level of this event's log line (its kind's, ``level``)."""
        return self.level

    def fields(self) -> dict[str, object]:
        """The set fields, and ``name`` as ``event`` (``name`` is taken on a ``LogRecord``)."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        data["event"] = self.name
        return data

    def describe(self) -> str:
        """One human-readable line; the same facts are in ``fields()`` for machines."""
        head = self.head()
        return f"{head}: {self.cause}" if self.cause else head

    def head(self) -> str:
        return f"{self.upstream} {self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent(Event):
    """About one call (``method path``), and the attempt that decided, if one went out;
    ``host`` only where the upstream has several."""

    method: str | None = None
    path: str | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    outcome: str | None = None
    elapsed: float | None = None
    host: str | None = None

    def head(self) -> str:
        """The attempt that decided, or the call's name if none went out."""
        if self.attempt is None:
            return Event.head(self)
        on = f" on {self.host}" if self.host else ""
        return (
            f"{self.upstream} {self.method} {self.path} attempt {self.attempt}/"
            f"{self.max_attempts}{on}: {self.outcome} in {_ms(self.elapsed)}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSucceeded(CallEvent):
    name = CALL_SUCCEEDED
    level = logging.INFO
    duration: float | None = None  # the whole call
    waited: float = 0.0  # of which backoff sleeps

    def log_level(self) -> int:
        """INFO once it took more than one attempt (what the layer is for); a first
        attempt's answer is DEBUG. At INFO, a line for every healthy call cost more than
        the rest of the call (docs/benchmarks.md, "What a healthy call costs"), and said
        only what the access log of the request says already."""
        return self.level if self.attempt != 1 else logging.DEBUG

    def describe(self) -> str:
        return self.head()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(CallEvent):
    name = RETRY_SCHEDULED
    wait: float = 0.0
    time_left: float = 0.0
    retry_after: float | None = None  # what the upstream asked (``wait`` if it was honoured)

    def describe(self) -> str:
        return f"{self.head()}; retry in {self.wait:.2f} s (time left {self.time_left:.2f} s)"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailed(CallEvent):
    name = CALL_FAILED
    duration: float | None = None
    waited: float = 0.0

    def describe(self) -> str:
        return f"{self.head()}; giving up: {self.cause}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetExhausted(CallEvent):
    name = BUDGET_EXHAUSTED


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerRejected(CallEvent):
    """Not sent: the breaker is open."""

    name = BREAKER_REJECTED


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadRejected(CallEvent):
    """Not sent: the bulkhead is full."""

    name = BULKHEAD_REJECTED


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeSent(CallEvent):
    name = HEDGE_SENT
    level = logging.INFO

    def describe(self) -> str:
        on = f" on {self.host}" if self.host else ""
        return (
            f"{self.upstream} {self.method} {self.path} attempt {self.attempt}/"
            f"{self.max_attempts}{on}: hedge sent, no answer after {_ms(self.elapsed)}"
        )

    def head(self) -> str:
        return self.describe()


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerOpened(Event):
    name = BREAKER_OPENED


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerHalfOpen(Event):
    name = BREAKER_HALF_OPEN


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerClosed(Event):
    name = BREAKER_CLOSED
    level = logging.INFO


@dataclass(frozen=True, slots=True, kw_only=True)
class HostEvent(Event):
    """About one host of an upstream with several."""

    host: str

    def head(self) -> str:
        return f"{self.upstream} {self.name} {self.host}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostEjected(HostEvent):
    name = HOST_EJECTED


@dataclass(frozen=True, slots=True, kw_only=True)
class HostReturned(HostEvent):
    name = HOST_RETURNED
    level = logging.INFO


#: Every kind, by its stable name.
KINDS: dict[str, type[Event]] = {
    kind.name: kind
    for kind in (
        CallSucceeded,
        RetryScheduled,
        CallFailed,
        BudgetExhausted,
        BreakerRejected,
        BulkheadRejected,
        HedgeSent,
        BreakerOpened,
        BreakerHalfOpen,
        BreakerClosed,
        HostEjected,
        HostReturned,
    )
}


def make(name: str, upstream: str, **fields: Any) -> Event:
    """The event of kind ``name`` (for code that has the name, such as tests)."""
    return KINDS[name](upstream=upstream, **fields)


Listener = Callable[[Event], None]


def describe(event: Event) -> str:
    """``event.describe()``, as a function for listeners."""
    return event.describe()


class QuietRefusals:
    """Calls refused without being sent (open breaker, full bulkhead) are logged once per
    ``window`` seconds per upstream and kind, the line saying how many more there were; the
    rest are counted, and a breaker that half-opens or closes says how many it refused
    since. An outage at 1,000 requests a second writes a line every 10 s, not 1,000 (the
    metrics still count each refusal)."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        #: (upstream, event name) -> (when its last line was written, refusals since).
        self._since: dict[tuple[str, str], tuple[float, int]] = {}

    def line(self, event: Event) -> str | None:
        """The line to log for this refusal now, or ``None``: counted for a later line."""
        key, now = (event.upstream, event.name), self._clock()
        with self._lock:
            last, count = self._since.get(key, (None, 0))
            if last is not None and now - last < self.window:
                self._since[key] = (last, count + 1)
                return None
            self._since[key] = (now, 0)
        if not count:
            return event.describe()
        return f"{event.describe()} ({count} more refused in the {now - last:.0f} s before)"

    def clear(self) -> None:
        """Forget every count (``set_testing``: one test's refusals are not the next's)."""
        with self._lock:
            self._since.clear()

    def flush(self, upstream: str) -> list[str]:
        """Lines for the refusals not yet told of, when ``upstream``'s breaker moves on."""
        with self._lock:
            keys = [key for key in self._since if key[0] == upstream]
            counts = [(key[1], self._since.pop(key)[1]) for key in keys]
        return [f"{upstream} {name}: {n} more refused" for name, n in counts if n]


#: The default listener's (``log_event``).
REFUSALS = QuietRefusals()


def log_event(event: Event) -> None:
    """Default listener: a log line per event, its fields under ``extra`` for structured
    logs; refusals summed (``QuietRefusals``)."""
    level = event.log_level()
    if not logger.isEnabledFor(level):  # formatting costs more than the rest of a call
        return
    line: str | None
    if isinstance(event, BreakerRejected | BulkheadRejected):
        line = REFUSALS.line(event)
    else:
        line = event.describe()
        if isinstance(event, BreakerHalfOpen | BreakerClosed):
            for told in REFUSALS.flush(event.upstream):
                logger.warning(told, extra={"event": "refusals", "upstream": event.upstream})
    if line is not None:
        logger.log(level, line, extra=event.fields())
