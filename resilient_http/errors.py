"""What a failed call tells its caller: one class per honest answer, each with the history."""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds to tell a caller to wait when nothing better is known: a call the bulkhead
#: refused (the slow calls ahead of it take about this), or an outage with no Retry-After.
DEFAULT_RETRY_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request that went out (or was refused before going out)."""

    number: int
    outcome: str  # "200", "502", "read_timeout", "connect_refused", ...
    elapsed: float
    wait: float | None = None  # the sleep before the next attempt, None if none followed


class UpstreamError(Exception):
    """A call to an upstream failed; ``history`` holds every attempt, oldest first.
    ``code`` is the stable name of how it failed (``users_timeout``): the problem's code,
    the trace's ``error.type``."""

    kind = "bad_response"  # an UpstreamError nobody classed: still a bad answer

    def __init__(
        self,
        upstream: str,
        reason: str,
        *,
        history: tuple[Attempt, ...] = (),
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        self.upstream = upstream
        self.reason = reason
        #: What to tell our own caller, when the generic sentence is not the right one.
        self.detail = detail
        self.history = history
        self.retry_after = retry_after
        #: The caller's own deadline, tighter than the configured one, ended the call: it
        #: says nothing about the upstream's health (the breaker does not count it).
        self.callers_deadline = False
        outcomes = ", ".join(a.outcome for a in history) or "no attempt"
        super().__init__(f"{upstream}: {reason} (attempts: {outcomes})")

    @property
    def code(self) -> str:
        return f"{self.upstream}_{self.kind}"


class UpstreamTimeout(UpstreamError):
    """The last attempt timed out (connect or read), or the deadline ran out."""

    kind = "timeout"


class UpstreamUnavailable(UpstreamError):
    """Refused, reset or 5xx after the retries we could afford; ``retry_after`` if known."""

    kind = "unavailable"


class CircuitOpen(UpstreamUnavailable):
    """Not called at all: the breaker is open; ``retry_after`` is the time to the next probe."""

    kind = "circuit_open"


class UpstreamOverloaded(UpstreamUnavailable):
    """Not called at all: the bulkhead is full (``max_concurrency`` calls in flight)."""

    kind = "overloaded"


class UpstreamBadResponse(UpstreamError):
    """It answered, but not in a way we can use (body too large, broken framing)."""

    kind = "bad_response"
