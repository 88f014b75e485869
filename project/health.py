"""Liveness and readiness, on both services, for load balancers and orchestrators.

``/healthz``: the process answers (no dependency is consulted, so a slow database cannot
get a live process killed). ``/readyz``: the database answers. Orders' readiness does not
depend on Users: an upstream outage is handled by the breaker, and taking every Orders
instance out of the load balancer because Users is down would turn a partial outage into
a total one. Neither is subject to simulated outages (those touch ``/users/`` only).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from resilient_http.problems import problem_response

logger = logging.getLogger(__name__)


SAFE = ("GET", "HEAD")


def _not_allowed(request: HttpRequest) -> JsonResponse:
    response = problem_response(
        405, detail=f"{request.method} is not allowed here.", instance=request.path
    )
    response["Allow"] = ", ".join(SAFE)
    return response


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    if request.method not in SAFE:
        return _not_allowed(request)
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    if request.method not in SAFE:
        return _not_allowed(request)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.exception("readiness check: database unreachable")
        return problem_response(503, detail="The database is unreachable.", code="not_ready")
    return JsonResponse({"status": "ok", "database": "ok"})
