"""The live page of every upstream, and the JSON it polls.

``path("", include("resilient_http.urls"))`` serves them at ``resilience/`` and
``resilience/upstreams.json``: per upstream in ``settings.UPSTREAMS``, the breaker, budget,
bulkhead and hosts of this process's own client, and its last calls
(``resilient_http.live.RECORDER``). Open to anyone in development (``DEBUG``); in production
to active staff users only, as the admin is. A project extends the page by extending its
template, ``resilient_http/upstreams.html`` (the demo adds its fault controls).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .live import RECORDER
from .registry import upstream

View = Callable[..., HttpResponse]

#: How often the page asks for its state, in milliseconds.
POLL_MS = 500


def may_view(request: HttpRequest) -> bool:
    """Development: anyone. Production: an active staff user."""
    user = getattr(request, "user", None)
    return settings.DEBUG or bool(user and user.is_active and user.is_staff)


def viewers_only(*, login_redirect: bool = False) -> Callable[[View], View]:
    """Refuse others: a page sends strangers to the admin login (if there is one), the JSON
    answers 403."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if may_view(request):
                return view(request, *args, **kwargs)
            user = getattr(request, "user", None)
            if login_redirect and not (user and user.is_authenticated):
                try:
                    return redirect_to_login(request.get_full_path(), reverse("admin:login"))
                except NoReverseMatch:
                    pass  # no admin: a 403 like the JSON's
            return JsonResponse(
                {"detail": "Staff only outside development (DEBUG)."},
                status=HTTPStatus.FORBIDDEN,
            )

        return wrapped

    return decorate


@require_GET
@never_cache
@viewers_only(login_redirect=True)
def page(request: HttpRequest) -> HttpResponse:
    context = {"initial": upstreams_state(), "poll_ms": POLL_MS}
    return render(request, "resilient_http/upstreams.html", context)


@require_GET
@never_cache
@viewers_only()
def upstreams(request: HttpRequest) -> JsonResponse:
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
