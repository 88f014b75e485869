"""Instrumentation as hooks: one named event per decision, feeding logs (and metrics) alike."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

logger = logging.getLogger("project.resilience")

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


@dataclass(frozen=True, slots=True)
class Event:
    """What happened, to which upstream; times in seconds, ``None`` where it does not apply."""

    name: str
    upstream: str
    attempt: int | None = None
    max_attempts: int | None = None
    method: str | None = None
    path: str | None = None
    outcome: str | None = None
    elapsed: float | None = None
    wait: float | None = None
    time_left: float | None = None
    cause: str | None = None
    duration: float | None = None  # the whole call, on call_succeeded and call_failed
    host: str | None = None  # the host of the attempt (only where an upstream has several)

    def fields(self) -> dict[str, object]:
        """The set fields, ``name`` as ``event`` (``name`` is taken on a ``LogRecord``)."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        data["event"] = data.pop("name")
        return data


Listener = Callable[[Event], None]


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"


def describe(event: Event) -> str:
    """One human-readable line; the same facts are in ``event.fields()`` for machines."""
    head = f"{event.upstream} {event.name}"
    on = f" on {event.host}" if event.host else ""
    if event.attempt is not None:
        head = (
            f"{event.upstream} {event.method} {event.path} "
            f"attempt {event.attempt}/{event.max_attempts}{on}: {event.outcome} "
            f"in {_ms(event.elapsed)}"
        )
    elif event.host:
        head = f"{event.upstream} {event.name} {event.host}"
    if event.name == RETRY_SCHEDULED:
        return f"{head}; retry in {event.wait:.2f} s (time left {event.time_left:.2f} s)"
    if event.name == CALL_FAILED:
        return f"{head}; giving up: {event.cause}"
    if event.name == CALL_SUCCEEDED:
        return head
    if event.name == HEDGE_SENT:
        return (
            f"{event.upstream} {event.method} {event.path} attempt {event.attempt}/"
            f"{event.max_attempts}{on}: hedge sent, no answer after {_ms(event.elapsed)}"
        )
    return f"{head}: {event.cause}" if event.cause else head


def log_event(event: Event) -> None:
    """Default listener: a log line per event, its fields under ``extra`` for structured logs."""
    quiet = (CALL_SUCCEEDED, BREAKER_CLOSED, HEDGE_SENT, HOST_RETURNED)  # normal operation
    level = logging.INFO if event.name in quiet else logging.WARNING
    if logger.isEnabledFor(level):  # formatting costs more than the rest of a call
        logger.log(level, describe(event), extra=event.fields())
