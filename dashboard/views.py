"""The live resilience page: thin views over ``dashboard.state`` and ``dashboard.faults``.

Open to anyone in development (``DEBUG``); in production to active staff users only, as
the admin is: the page shows internals and its controls break Users on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from dashboard.faults import fault_replica, fault_start_from_form
from dashboard.state import resilience_state
from resilient_http.views import may_view
from users.outages import outage_clear, outage_describe

View = Callable[..., HttpResponse]

#: How often the page asks for ``state.json``, in milliseconds.
POLL_MS = 500


def viewers_only(*, login_redirect: bool = False) -> Callable[[View], View]:
    """Refuse others: the page sends strangers to the admin login, the API answers 403."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if may_view(request):
                return view(request, *args, **kwargs)
            if login_redirect and not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
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
