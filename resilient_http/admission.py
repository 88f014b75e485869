"""Admission: what a call must pass before its first attempt, and leaves when it ends.

The breaker first (an open one refuses at once, and takes no place in the bulkhead), then
the bulkhead. One object, entered and left, so the loop holds a single permit and never
asks "is there a breaker?" (``breaker.NoBreaker`` when it is off).
"""

from __future__ import annotations

from .breaker import CircuitBreaker, NoBreaker, Permit
from .bulkhead import Bulkhead
from .errors import DEFAULT_RETRY_AFTER, CircuitOpen, UpstreamOverloaded


class Admission:
    """The breaker and the bulkhead of one upstream. Thread-safe (each part is)."""

    def __init__(self, name: str, breaker: CircuitBreaker | NoBreaker, bulkhead: Bulkhead) -> None:
        self.name = name
        self.breaker = breaker
        self.bulkhead = bulkhead

    def enter(self) -> Permit:
        """The breaker's permit and a place in the bulkhead; ``CircuitOpen`` or
        ``UpstreamOverloaded`` when either says no (and then nothing is held)."""
        permit = self.breaker.allow()
        if permit is None:
            raise CircuitOpen(
                self.name, "circuit open", retry_after=self.breaker.retry_after_header()
            )
        if not self.bulkhead.try_enter():
            self.breaker.release(permit)
            cause = f"bulkhead full: {self.bulkhead.limit} calls in flight"
            raise UpstreamOverloaded(self.name, cause, retry_after=DEFAULT_RETRY_AFTER)
        return permit

    def leave(self, permit: Permit, healthy: bool | None) -> None:
        """The call ended: ``healthy`` is what it says of the upstream (``None``: nothing,
        only its slowness counts)."""
        self.bulkhead.leave()
        if healthy is None:
            self.breaker.release(permit)
        else:
            self.breaker.record(permit, success=healthy)
