"""Users-side middleware: honour the caller's deadline, and serve simulated outages.

The HTTP-level ones only: a transport fault (down, reset, hang, ...) is the fault proxy's
to serve (``users.fault_proxy``), so Users' own port stays healthy under one. Both apply
to the Users API (``/users/...``) only: admin, health and Orders are never hit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from resilient_http import DEADLINE_HEADER, Deadline
from resilient_http.problems import problem_response
from users.outages import TRANSPORT_MODES, Mode, outage_active, outage_hits_request

API_PREFIX = "/users/"
API_METHODS = frozenset({"GET", "HEAD"})
DRIP_BYTES = 4
#: Stop this long *after* the caller's deadline, so that its own timeout, not a 504 from
#: here racing it, is what ends its attempt: the caller then reports a timeout, honestly.
CALLER_GRACE = 0.05


def caller_time_left(request: HttpRequest) -> float | None:
    """Seconds the caller will still wait, from its deadline header, if it sent one."""
    deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER))
    return None if deadline is None else deadline.remaining()


def _deadline_passed(request: HttpRequest) -> HttpResponse:
    return problem_response(
        504,
        detail="The caller's deadline passed before this request could be served.",
        code="deadline_exceeded",
        instance=request.get_full_path(),
    )


class SimulatedOutageMiddleware:
    """Serves the fault set by ``manage.py simulate_outage``, if simulation is enabled: this
    replica's own (``USERS_REPLICA``), else the one for all replicas.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX) or request.method not in API_METHODS:
            return self.get_response(request)  # other methods: the view's own 405
        time_left = caller_time_left(request)
        if time_left is not None and time_left <= 0:
            return _deadline_passed(request)  # the caller has given up: do no work
        if not settings.OUTAGE_SIMULATION:
            return self.get_response(request)
        outage = outage_active(replica=settings.USERS_REPLICA)
        if outage is None or outage.mode in TRANSPORT_MODES or not outage_hits_request(outage):
            return self.get_response(request)

        if outage.mode in (Mode.ERROR, Mode.FAIL_NEXT):
            response = problem_response(
                outage.status,
                detail="Simulated outage (manage.py simulate_outage).",
                code="simulated_outage",
                instance=request.get_full_path(),
                retry_after=outage.retry_after,
            )
            # The access log line is the record of a simulated error; spare the error log
            # ("Bad Gateway: /users/1") that Django keeps for real failures.
            response._has_been_logged = True  # type: ignore[attr-defined]
            return response
        if outage.mode == Mode.SLOW:
            if time_left is not None and time_left < outage.delay:
                time.sleep(time_left + CALLER_GRACE)  # stop when the caller stops waiting
                return _deadline_passed(request)
            time.sleep(outage.delay)
            return self.get_response(request)
        return _drip(self.get_response(request), outage.delay)


def _drip(response: HttpResponse, interval: float) -> StreamingHttpResponse:
    """The same response, its body sent a few bytes at a time: the slow-loris upstream."""
    content = response.content

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(content), DRIP_BYTES):
            if start:
                time.sleep(interval)
            yield content[start : start + DRIP_BYTES]

    dripping = StreamingHttpResponse(pieces(), status=response.status_code)
    dripping["Content-Type"] = response["Content-Type"]
    return dripping
