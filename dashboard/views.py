"""The demo's live page: resilient_http's (its template extended with the simulated fault,
its controls and the burst button), thin views over ``dashboard.state`` and
``dashboard.faults``. Who may see it: ``resilient_http.views.viewers_only`` (the controls
break Users on purpose).
"""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from dashboard.faults import fault_replica, fault_start_from_form
from dashboard.state import resilience_state
from resilient_http.views import POLL_MS, viewers_only
from users.outages import outage_clear, outage_describe


@require_GET
@never_cache
@viewers_only(login_redirect=True)
def page(request: HttpRequest) -> HttpResponse:
    replicas = settings.USERS_REPLICAS  # a target selector only when there are several
    context = {
        "initial": resilience_state(),
        "poll_ms": POLL_MS,
        "replica_numbers": range(1, replicas + 1) if replicas > 1 else None,
    }
    return render(request, "dashboard/resilience.html", context)


@require_GET
@never_cache
@viewers_only()
def state(request: HttpRequest) -> JsonResponse:
    return JsonResponse(resilience_state())


@require_POST
@viewers_only()
def fault_start(request: HttpRequest) -> JsonResponse:
    """Start a fault (form fields ``mode``, ``value``, ``for``, ``target``), or 400 with what
    is wrong.
    """
    outage, errors = fault_start_from_form(request.POST)
    if outage is None:
        return JsonResponse({"ok": False, "errors": errors}, status=HTTPStatus.BAD_REQUEST)
    message = outage_describe(outage, targeted=outage.replica is not None)
    return JsonResponse({"ok": True, "message": message})


@require_POST
@viewers_only()
def fault_clear(request: HttpRequest) -> JsonResponse:
    """End every fault, or one replica's (``target``); allowed even where simulation is off,
    as ``simulate_outage clear`` is.
    """
    replica, errors = fault_replica(request.POST)
    if errors:
        return JsonResponse({"ok": False, "errors": errors}, status=HTTPStatus.BAD_REQUEST)
    had = outage_clear(replica=replica)
    return JsonResponse({"ok": True, "message": "Cleared." if had else "Nothing to clear."})
