"""The upstreams this service calls: one process-wide ``RetryManager`` per entry of
``settings.UPSTREAMS``, wired to Django (logs, metrics, the live state, request IDs).

Adding an upstream is one settings entry and a call: ``upstream("payments").get("/charges/7")``.
Its failures are ``UpstreamError`` subclasses; ``resilient_http.problems`` answers them as
problem details with stable codes (``payments_timeout``, ...) and ``Retry-After``.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .config import UpstreamConfig
from .events import Listener, log_event
from .live import RECORDER
from .loop import RetryManager
from .request_id import current_trace_id, forwarded_headers

_upstreams: dict[str, RetryManager] = {}
_lock = threading.Lock()


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def traced() -> bool:
    """OpenTelemetry is installed and the application has set its SDK up (without one,
    its no-op spans would still cost each call; see docs/benchmarks.md)."""
    if not installed("opentelemetry"):
        return False
    from .otel import sdk_installed

    return sdk_installed()


def listeners(tracing: bool) -> tuple[Listener, ...]:
    """The log line, the live state and, if their libraries are there, Prometheus metrics
    and (``tracing``) OpenTelemetry span events and, with a metrics SDK, its metrics."""
    found: tuple[Listener, ...] = (log_event, RECORDER)
    if installed("prometheus_client"):
        from .metrics import record_event

        found += (record_event,)
    if tracing:
        from . import otel

        found += (otel.listener(),)
    return found


def build(config: UpstreamConfig) -> RetryManager:
    """A ``RetryManager`` wired to Django's side: request IDs forwarded, the live page's
    row for each call and, with an OpenTelemetry SDK, a span per call and per attempt."""
    if not traced():
        return RetryManager(
            config, listeners=listeners(False), scopes=(RECORDER.scope,), headers=forwarded_headers
        )
    from . import otel

    RECORDER.trace_id = current_trace_id
    return RetryManager(
        config,
        listeners=listeners(True),
        scopes=(otel.call_scope, RECORDER.scope),  # the span first: the row names its trace
        headers=forwarded_headers,
        on_attempt=otel.attempt_hook,
    )


def upstream(name: str) -> RetryManager:
    """The process-wide client for ``settings.UPSTREAMS[name]``, created once (thread-safe):
    its pooled session, breaker, budget and bulkhead are shared by every request thread."""
    found = _upstreams.get(name)
    if found is None:
        with _lock:
            found = _upstreams.get(name)
            if found is None:
                entries = getattr(settings, "UPSTREAMS", {})
                if name not in entries:
                    raise ImproperlyConfigured(f"settings.UPSTREAMS has no {name!r} entry")
                config = UpstreamConfig(**{**entries[name], "name": name})
                found = _upstreams[name] = build(config)
    return found


def reset_upstreams() -> None:
    """Forget every client (and its breaker, budget and pool); the next call builds anew."""
    with _lock:
        for client in _upstreams.values():
            client.close()
        _upstreams.clear()


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "UPSTREAMS":
        reset_upstreams()
