"""Request IDs: one ID per incoming request, on every log line, passed on to upstreams.

An ID from the caller (``X-Request-ID``) is kept if it looks like one (so a gateway's
trace ID flows through); otherwise, or if absent, the OpenTelemetry trace's ID if there
is one, else a new one. Log lines carry the trace's ID too. It is not reset at
the end of the request on purpose: the dev server logs its access line after the
response, in the same thread, and the next request on that thread overwrites it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

try:
    from opentelemetry import trace as _trace
except ImportError:  # tracing is optional
    _trace = None  # type: ignore[assignment]

REQUEST_ID_HEADER = "X-Request-ID"
#: What a caller may send: letters, digits and ``._:-``, up to 128 characters. Anything
#: else (spaces, CR/LF log injection, absurd lengths) is replaced, not trusted.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _current.get()


def forwarded_headers() -> dict[str, str]:
    """The request ID, so the upstream logs its side of this request under the same ID
    (``RetryManager(headers=...)``)."""
    request_id = _current.get()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


def bind_request_id(value: str | None) -> None:
    """Log what follows under ``value`` (outside a Django request: the fault proxy)."""
    _current.set(value)


def request_id_from(value: str | None) -> str:
    """``value`` if it is an acceptable ID, else a new one."""
    if value and _VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in the chain, so everything after it logs with the ID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A request that brings no ID of its own takes its trace's: one ID to grep for.
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER) or current_trace_id())
        _current.set(request_id)
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` and ``trace_id`` (or ``None``), and ``request_id_suffix`` for the
    text format: `` [id]``, `` [id trace=...]`` when the trace's ID is another, or ``""``."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _current.get()
        trace_id = current_trace_id()
        record.request_id, record.trace_id = request_id, trace_id
        if request_id and trace_id and trace_id != request_id:
            record.request_id_suffix = f" [{request_id} trace={trace_id}]"
        else:
            record.request_id_suffix = (
                f" [{request_id or trace_id}]" if request_id or trace_id else ""
            )
        return True


def current_trace_id() -> str | None:
    """The current OpenTelemetry trace's ID (32 hex digits), if a span is recording one."""
    if _trace is None:
        return None
    context = _trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
