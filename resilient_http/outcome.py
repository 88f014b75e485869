"""What one attempt produced: a response read in full, or the kind of failure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: The request never reached the upstream: safe to send again whatever the method.
CONNECT_ERRORS = frozenset({"connect_timeout", "connect_error"})
#: The request may have been processed: send again only what is safe to repeat.
READ_ERRORS = frozenset({"read_timeout", "connection_reset", "deadline_exceeded"})
#: Failures that say "it took too long": a 504 to our caller, not a 503.
TIMEOUTS = frozenset({"connect_timeout", "read_timeout", "deadline_exceeded"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """A status, headers and the whole body; or ``error``, the failure's kind (above)."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    error: str | None = None

    @property
    def label(self) -> str:
        """``"200"``, ``"503"``, ``"read_timeout"``: what logs, metrics and history show."""
        return self.error or str(self.status)

    @property
    def transport_failure(self) -> bool:
        """Refused, reset or timed out: the upstream did not answer."""
        return self.error in CONNECT_ERRORS | READ_ERRORS

    @property
    def upstream_failed(self) -> bool:
        """Does this say the upstream is unhealthy? Only transport failures and 5xx do;
        a 4xx or an unusable body is an answer, and the breaker does not count it."""
        if self.error is not None:
            return self.transport_failure
        return self.status is None or self.status >= 500
