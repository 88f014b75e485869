"""The upstreams this service calls: one process-wide resilient client per entry of
``settings.UPSTREAMS``, wired to Django (logs, metrics, the resilience page, request IDs).

Adding an upstream is one settings entry (``upstream_settings("PAYMENTS", base_url=...)``
reads every ``PAYMENTS_*`` knob) and a call: ``upstream("payments").get("/charges/7")``.
Its failures are ``project.resilience`` errors; ``project.problems`` answers them as
problem details with stable codes (``payments_timeout``, ...) and ``Retry-After``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from project.live import RECORDER
from project.metrics import record_event
from project.request_id import REQUEST_ID_HEADER, current_request_id
from project.resilience import (
    Deadline,
    RetryManager,
    UpstreamConfig,
    UpstreamResponse,
    log_event,
)


@dataclass(frozen=True, slots=True)
class Upstream:
    """A ``RetryManager`` plus what only Django knows: the request ID to forward, and the
    resilience page's record of each call (in flight, with its deadline)."""

    manager: RetryManager

    @property
    def name(self) -> str:
        return self.manager.config.name

    def get(self, path: str, **kwargs: Any) -> UpstreamResponse:
        return self.request("GET", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        deadline: Deadline | None = None,
        **kwargs: Any,
    ) -> UpstreamResponse:
        """``RetryManager.request``; ``deadline``, our own caller's, tightens the configured
        one. Raises ``project.resilience.UpstreamError`` subclasses."""
        allowed = self.manager.deadlines(deadline)[0].remaining()  # for the page's row
        sent = {**_forwarded_headers(), **(headers or {})}
        with RECORDER.call(self.name, method=method.upper(), path=path, deadline=allowed):
            return self.manager.request(method, path, headers=sent, deadline=deadline, **kwargs)


_upstreams: dict[str, Upstream] = {}
_lock = threading.Lock()


def upstream(name: str) -> Upstream:
    """The process-wide client for ``settings.UPSTREAMS[name]``, created once (thread-safe):
    its pooled session, breaker, budget and bulkhead are shared by every request thread."""
    found = _upstreams.get(name)
    if found is None:
        with _lock:
            found = _upstreams.get(name)
            if found is None:
                if name not in settings.UPSTREAMS:
                    raise ImproperlyConfigured(f"settings.UPSTREAMS has no {name!r} entry")
                config = UpstreamConfig(**settings.UPSTREAMS[name])
                listeners = (log_event, record_event, RECORDER)
                found = _upstreams[name] = Upstream(RetryManager(config, listeners=listeners))
    return found


def reset_upstreams() -> None:
    """Forget every client (and its breaker, budget and pool); the next call builds anew."""
    with _lock:
        for client in _upstreams.values():
            client.manager.close()
        _upstreams.clear()


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "UPSTREAMS":
        reset_upstreams()


def _forwarded_headers() -> dict[str, str]:
    """The request ID, so the upstream logs its side of this request under the same ID."""
    request_id = current_request_id()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}
