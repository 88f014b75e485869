"""The live state of every upstream as JSON: what the resilience page polls.

``path("", include("resilient_http.urls"))`` serves it at ``resilience/upstreams.json``:
per upstream in ``settings.UPSTREAMS``, the breaker, budget, bulkhead and hosts of this
process's own client, and its last calls (``resilient_http.live.RECORDER``). Open to anyone
in development (``DEBUG``); in production to active staff users only, as the admin is.
"""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .live import RECORDER
from .registry import upstream


def may_view(request: HttpRequest) -> bool:
    """Development: anyone. Production: an active staff user."""
    user = getattr(request, "user", None)
    return settings.DEBUG or bool(user and user.is_active and user.is_staff)


@require_GET
@never_cache
def upstreams(request: HttpRequest) -> JsonResponse:
    if not may_view(request):
        return JsonResponse(
            {"detail": "Staff only outside development (DEBUG)."}, status=HTTPStatus.FORBIDDEN
        )
    return JsonResponse(upstreams_state())


def upstreams_state() -> dict[str, Any]:
    # Each process has its own clients: with several workers each poll may land on another.
    return {
        "pid": os.getpid(),
        "upstreams": [upstream_state(name) for name in getattr(settings, "UPSTREAMS", {})],
    }


def upstream_state(name: str) -> dict[str, Any]:
    """One upstream: breaker, budget, in flight, and its last calls (newest first). The
    breaker, budget, bulkhead and hosts are read from their own state, never rebuilt."""
    recorded = RECORDER.snapshot(name)
    manager = upstream(name)
    state: dict[str, Any] = {
        "name": name,
        "client": True,  # every configured upstream has one, made on first use
        "in_flight": manager.bulkhead.in_flight,
        "calls": recorded["calls"],
        "transitions": recorded["transitions"],
    }
    cfg, breaker, budget = manager.config, manager.admission.breaker, manager.budget
    requests, retries = budget.counts()
    state.update(
        base_url=cfg.base_url,
        deadline=cfg.deadline,
        attempts=cfg.retries + 1,
        concurrency_limit=manager.bulkhead.limit,
        breaker=None
        if not cfg.breaker  # turned off: nothing to show
        else {
            "state": breaker.state.value,
            "next_probe": round(breaker.retry_after(), 3),
            "reset": breaker.reset,
            "consecutive_failures": breaker.consecutive_failures,
            "failure_ratio": breaker.failure_ratio,
        },
        budget={
            "available": round(budget.available(), 2),
            "ratio": budget.ratio,
            "floor": budget.floor,
            "window": budget.window,  # what the counts below cover
            "recent_requests": requests,
            "recent_retries": retries,
        },
        # Each host's own state, read from the balancer (only shown where there are several).
        hosts=manager.hosts.snapshot(),
    )
    return state
