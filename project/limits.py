"""What a request may be, checked before anything reads it: defence in depth behind the
front server (nginx caps bodies too, but Django must hold on its own: ``make run`` and any
deployment without it).

DRF's ``JSONParser`` reads the request stream itself, past Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (a 300 MB body took a worker from 81 MB to 825 MB), and
Django answers a query string of too many fields with an HTML 400 and a logged traceback.
So the declared length and the query string's fields are checked here, first, and
refused as problem details: 413 ``body_too_large`` before a byte of the body is read,
400 ``too_many_fields``, 400 ``invalid_content_length``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from resilient_http.digits import ascii_int
from resilient_http.problems import problem_response


class RequestLimitsMiddleware:
    """A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` or a query string of more than
    ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields never reaches a view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return _refused(request) or self.get_response(request)


def _refused(request: HttpRequest) -> HttpResponse | None:
    instance = request.path
    sent = request.META.get("CONTENT_LENGTH") or None
    length = ascii_int(sent)
    if sent is not None and length is None:
        detail = "Content-Length must be a whole number of bytes."
        code = "invalid_content_length"
        return problem_response(400, detail=detail, code=code, instance=instance)
    cap = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if cap is not None and length is not None and length > cap:
        detail = f"The body may be at most {cap} bytes; this one is {length}."
        return problem_response(413, detail=detail, code="body_too_large", instance=instance)
    most = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    query = request.META.get("QUERY_STRING", "")
    fields = query.count("&") + query.count(";") + 1 if query else 0
    if most is not None and fields > most:
        detail = f"The query string may have at most {most} fields."
        return problem_response(400, detail=detail, code="too_many_fields", instance=instance)
    return None
