"""Resilient service-to-service HTTP calls: plain Python, no Django.

Read it in this order: ``transport`` (one attempt on a pooled ``requests`` session, cut by
the ``watchdog`` at its deadline) produces an ``Outcome``; ``policy`` (small pure
decisions) judges it; ``loop`` (``RetryManager``) runs the attempts under one deadline,
with a retry ``budget``, a ``bulkhead``, a circuit ``breaker`` and optional ``hedging``, and
raises one of the ``errors``. ``events`` are its instrumentation; ``testing`` its switch.
"""

from .breaker import CircuitBreaker, State
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .config import RETRY_STATUSES, UpstreamConfig
from .deadline import Deadline
from .errors import (
    DEFAULT_RETRY_AFTER,
    Attempt,
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .events import Event, describe, log_event
from .loop import RetryManager, UpstreamResponse
from .outcome import TIMEOUTS, Outcome
from .policy import IDEMPOTENCY_HEADER, IDEMPOTENT_METHODS
from .testing import is_testing, set_testing
from .transport import DEADLINE_HEADER

__all__ = [
    "DEADLINE_HEADER",
    "DEFAULT_RETRY_AFTER",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "TIMEOUTS",
    "Attempt",
    "Bulkhead",
    "CircuitBreaker",
    "CircuitOpen",
    "Deadline",
    "Event",
    "Outcome",
    "RetryBudget",
    "RetryManager",
    "State",
    "UpstreamBadResponse",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamOverloaded",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "describe",
    "is_testing",
    "log_event",
    "set_testing",
]
