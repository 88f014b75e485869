"""Resilient service-to-service HTTP calls, for Django (and plain Python).

    from resilient_http import upstream
    user = upstream("users").get(f"/users/{user_id}").json()

``upstream(name)`` is the process-wide ``RetryManager`` for ``settings.UPSTREAMS[name]``;
without Django, build one: ``RetryManager(UpstreamConfig(name=..., base_url=...))``. A call
that fails raises an ``UpstreamError`` subclass; ``resilient_http.problems`` answers it
as RFC 9457 problem details. ``set_testing`` makes retries instant in tests.

The core (everything but ``apps``, ``checks``, ``registry``, ``problems``, ``views``,
``urls``, ``request_id`` and ``pytest_plugin``) is plain Python. Read it in this order:
``transport`` (one attempt on a pooled ``requests`` session, cut by the ``watchdog`` at its
deadline) produces an ``Outcome``; ``policy`` (small pure decisions) judges it; ``loop``
(``RetryManager``) runs the attempts under one deadline, with a retry ``budget``, a
``bulkhead``, a circuit ``breaker``, optional ``hedging`` and several ``hosts``, and raises
one of the ``errors``. ``events`` are its instrumentation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import UpstreamConfig
from .deadline import Deadline
from .errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .loop import RetryManager, UpstreamResponse
from .policy import IDEMPOTENCY_HEADER
from .testing import is_testing, set_testing
from .transport import DEADLINE_HEADER

if TYPE_CHECKING:
    from .registry import upstream

__version__ = "0.1.0"

__all__ = [
    "DEADLINE_HEADER",
    "IDEMPOTENCY_HEADER",
    "CircuitOpen",
    "Deadline",
    "RetryManager",
    "UpstreamBadResponse",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamOverloaded",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "is_testing",
    "set_testing",
    "upstream",
]


def __getattr__(name: str) -> Any:
    """``upstream`` needs Django's settings: imported on first use, so the core does not."""
    if name == "upstream":
        from .registry import upstream

        return upstream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
