"""Request IDs: one ID per incoming request, on every log line, passed on to upstreams.

An ID from the caller (``X-Request-ID``) is kept if it looks like one (so a gateway's
trace ID flows through); otherwise, or if absent, a new one is made. It is not reset at
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
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        _current.set(request_id)
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or ``None``) and ``request_id_suffix`` (`` [id]`` or ``""``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _current.get()
        record.request_id = request_id
        record.request_id_suffix = f" [{request_id}]" if request_id else ""
        return True
