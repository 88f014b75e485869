"""Resilient service-to-service HTTP calls: plain Python, no Django.

A pooled ``requests`` session per upstream, urllib3's ``Retry`` deciding what is
retryable, a total deadline, jittered backoff that honours ``Retry-After``, a retry budget
and a circuit breaker. Start at ``RetryManager``.
"""

from .breaker import CircuitBreaker, State
from .budget import RetryBudget
from .config import IDEMPOTENT_METHODS, RETRY_STATUSES, UpstreamConfig
from .deadline import Deadline
from .errors import (
    Attempt,
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .events import Event, describe, log_event
from .manager import DEADLINE_HEADER, IDEMPOTENCY_HEADER, RetryManager, UpstreamResponse

__all__ = [
    "DEADLINE_HEADER",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "Attempt",
    "CircuitBreaker",
    "CircuitOpen",
    "Deadline",
    "Event",
    "RetryBudget",
    "RetryManager",
    "State",
    "UpstreamBadResponse",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "describe",
    "log_event",
]
