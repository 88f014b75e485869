"""RFC 9457 problem details for every error either service returns.

Exceptions only declare ``status_code``, ``default_code`` and ``default_detail``; one DRF
exception handler calls DRF's default first, then reshapes its answer into
``application/problem+json``. A failed upstream call (``resilient_http.UpstreamError``)
is answered here too, in one table: its class gives the status and the code's suffix, the
upstream's name the code's prefix (``users_timeout``, ``payments_timeout``). Django's
404/500 handlers use the same shape, so no error from these services is HTML or a
traceback. A database that refuses (``OperationalError``: down, or out of connections) is a
503 with ``Retry-After``, as an upstream's would be. Unknown exceptions still become a 500.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from .config import PROBLEM_TYPE_BASE
from .errors import (
    DEFAULT_RETRY_AFTER,
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = logging.getLogger(__name__)


#: How each way an upstream call fails is answered, by the error's ``kind``: status and
#: detail (its ``code`` is the error's own, ``users_timeout``). ``{service}`` is the
#: upstream's name, capitalised.
UPSTREAM_PROBLEMS: dict[str, tuple[int, str]] = {
    CircuitOpen.kind: (
        503,
        "The {service} service is failing; it is not being called for a while.",
    ),
    UpstreamOverloaded.kind: (
        503,
        "The {service} service is slow and has as many calls in flight as it may; try again later.",
    ),
    UpstreamUnavailable.kind: (
        503,
        "The {service} service is unavailable ({reason}); try again later.",
    ),
    UpstreamTimeout.kind: (504, "The {service} service did not answer in time ({reason})."),
    UpstreamBadResponse.kind: (502, "The {service} service answered badly ({reason})."),
}


class ServiceProblem(exceptions.APIException):
    """Base of our API errors; ``retry_after`` (seconds) becomes a ``Retry-After`` header."""

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def problem_type_base() -> str:
    return getattr(settings, "PROBLEM_TYPE_BASE", PROBLEM_TYPE_BASE)


def problem_response(
    status: int,
    *,
    detail: str,
    code: str | None = None,
    instance: str | None = None,
    retry_after: float | None = None,
    extra: dict[str, Any] | None = None,
) -> JsonResponse:
    """A problem+json response. ``type`` is about:blank unless a stable ``code`` names it."""
    body: dict[str, Any] = {
        "type": f"{problem_type_base()}{code}" if code else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if code:
        body["code"] = code
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    response = JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
    if retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> JsonResponse | None:
    """DRF's handler first (it knows every APIException, Http404, PermissionDenied)."""
    request = context.get("request")
    instance = request.get_full_path() if request is not None else None
    if isinstance(exc, UpstreamError):
        return upstream_problem(exc, instance=instance)
    if isinstance(exc, OperationalError):
        return database_problem(exc, instance=instance)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None and response.has_header("Retry-After"):
        retry_after = float(response["Retry-After"])  # DRF's own, for Throttled
    if isinstance(exc, exceptions.ValidationError):
        invalid = _invalid_params(exc.detail)
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in invalid)
        return problem_response(
            response.status_code,
            detail=f"Invalid request: {detail}",
            code="invalid_request",
            instance=instance,
            extra={"invalid_params": invalid},
        )
    code = None
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) and codes != "error" else None
    detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
    return problem_response(
        response.status_code,
        detail=str(detail),
        code=code,
        instance=instance,
        retry_after=retry_after,
    )


def upstream_problem(exc: UpstreamError, *, instance: str | None = None) -> JsonResponse:
    """The honest answer for how a call to an upstream ended (see ``UPSTREAM_PROBLEMS``)."""
    status, detail = UPSTREAM_PROBLEMS.get(exc.kind, UPSTREAM_PROBLEMS[UpstreamBadResponse.kind])
    retry_after = exc.retry_after
    if retry_after is None and status == 503:
        retry_after = DEFAULT_RETRY_AFTER
    return problem_response(
        status,
        detail=exc.detail or detail.format(service=exc.upstream.capitalize(), reason=exc.reason),
        code=exc.code,
        instance=instance,
        retry_after=retry_after,
    )


def database_problem(exc: OperationalError, *, instance: str | None = None) -> JsonResponse:
    """The database refused (down, or out of connections): retryable, its words logged."""
    logger.warning("database unavailable: %s", (str(exc).splitlines() or [""])[0])
    return problem_response(
        503,
        detail="The database is unavailable; try again later.",
        code="database_unavailable",
        instance=instance,
        retry_after=DEFAULT_RETRY_AFTER,
    )


def _invalid_params(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested error dict into RFC 9457's ``invalid_params`` list."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for name, value in detail.items():
            out += _invalid_params(value, f"{prefix}{name}" if not prefix else f"{prefix}.{name}")
        return out
    if isinstance(detail, list):
        return [p for item in detail for p in _invalid_params(item, prefix)]
    return [{"name": prefix or "body", "reason": str(detail)}]


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404``: an unknown URL, as a problem."""
    return problem_response(404, detail="No such resource.", instance=request.get_full_path())


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler400``: what Django refuses itself (a bad Host header, a suspicious
    request), as a problem rather than its HTML page."""
    return problem_response(400, detail="Bad request.", code="bad_request")


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: a bug. Logged by Django with its traceback; none goes to the client."""
    return problem_response(500, detail="Internal error; it has been logged.")
