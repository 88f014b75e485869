"""OpenTelemetry for resilient calls: every attempt visible in the trace.

Three pieces, wired by ``resilient_http.registry`` when ``opentelemetry-api`` is installed
(the core works without it):

- ``call_scope``, a ``RetryManager`` scope: one INTERNAL span per logical call, current
  while it runs, so its attempts are its children; a failed call ends in ERROR with the
  stable problem code as ``error.type`` (``users_timeout``).
- ``attempt_hook``, the ``RetryManager`` attempt hook: one CLIENT span per attempt, hedges
  included, with the HTTP client semantic-convention attributes and
  ``http.request.resend_count``; the W3C ``traceparent`` (and ``baggage``) of that span goes
  out on that attempt, so the upstream continues the trace under it.
- ``record_event``, a listener: span events on the call's span (``record_span_event``:
  each backoff wait, a ``Retry-After`` honoured, breaker transitions, budget and bulkhead
  refusals), and the metrics (``record_metrics``), fed by the same events as the
  Prometheus ones: ``http.client.request.duration`` per attempt, and per call that retried
  its retries and the time spent in backoff (as gRPC's A96 counts them).

What is exported, and where, is the application's SDK configuration (``OTEL_*``
variables); with no SDK, the API's no-op spans cost little.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from urllib.parse import urlencode, urlsplit

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import __version__
from . import events as ev
from .errors import UpstreamError
from .events import Event
from .loop import AttemptInfo, CallInfo
from .outcome import Outcome

TRACER = trace.get_tracer("resilient_http", __version__)
METER = metrics.get_meter("resilient_http", __version__)

#: The semantic conventions' advisory buckets for HTTP durations, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
REQUEST_DURATION = METER.create_histogram(
    "http.client.request.duration",
    unit="s",
    description="Duration of HTTP client requests: each attempt.",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
)
CALL_RETRIES = METER.create_histogram(
    "resilient_http.client.call.retries",
    unit="{retry}",
    description="Attempts after the first (hedges included) per call that retried.",
    explicit_bucket_boundaries_advisory=(1, 2, 3, 4, 5),
)
CALL_RETRY_DELAY = METER.create_histogram(
    "resilient_http.client.call.retry_delay",
    unit="s",
    description="Time a call that retried spent in backoff between its attempts.",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
)
REFUSED = METER.create_counter(
    "resilient_http.client.call.refused",
    unit="{call}",
    description="Calls not sent: the breaker open, the bulkhead full, or no retry budget.",
)

#: Events that become span events on the call's span, by their name.
SPAN_EVENTS = frozenset(
    {
        ev.RETRY_SCHEDULED,
        ev.HEDGE_SENT,
        ev.BUDGET_EXHAUSTED,
        ev.BREAKER_REJECTED,
        ev.BULKHEAD_REJECTED,
        ev.BREAKER_OPENED,
        ev.BREAKER_HALF_OPEN,
        ev.BREAKER_CLOSED,
        ev.HOST_EJECTED,
        ev.HOST_RETURNED,
    }
)


def call_scope(info: CallInfo) -> AbstractContextManager[object]:
    """The logical call's span, current while the call runs; none within a trace that is
    not sampled (``_dropped``): the attempts carry on the caller's context as it is."""
    name = f"{info.upstream} {info.method}"
    return _NOTHING if _dropped(name) else _call_span(name, info)


#: The scope of a call no span records (``nullcontext`` may be entered again and again).
_NOTHING = nullcontext()


@contextmanager
def _call_span(name: str, info: CallInfo) -> Iterator[Span]:
    attributes = {
        "resilient_http.upstream": info.upstream,
        "http.request.method": info.method,
        "url.path": info.path,
        "resilient_http.deadline": info.deadline,
    }
    with TRACER.start_as_current_span(
        name,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except UpstreamError as exc:
            span.set_attribute("error.type", exc.code)
            span.set_status(Status(StatusCode.ERROR, exc.reason))
            raise
        except BaseException as exc:  # a bug: its class, as the conventions say
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise


def _dropped(name: str) -> bool:
    """Would the SDK's sampler drop a span ``name`` here, under a valid parent? Then making
    one (a non-recording span, its context made current and reset) costs a healthy call
    about 10 µs for nothing: the trace ID and the unsampled context are the parent's."""
    parent = trace.get_current_span().get_span_context()
    if not parent.is_valid or parent.trace_flags.sampled:
        return False
    sampler = getattr(trace.get_tracer_provider(), "sampler", None)  # the SDK's
    if sampler is None:
        return False
    return not sampler.should_sample(None, parent.trace_id, name).decision.is_recording()


def attempt_hook(info: AttemptInfo, headers: MutableMapping[str, str]) -> Callable[[Outcome], None]:
    """Start the attempt's CLIENT span and put its trace context on the attempt's headers;
    what it returns ends the span with the outcome. A call that is not sampled makes no
    span: its context goes on (unsampled), so the upstream does not sample it either."""
    if not trace.get_current_span().is_recording():
        propagate.inject(headers)
        return _not_recorded
    full = f"{info.url}?{urlencode(info.params)}" if info.params else info.url
    attributes: dict[str, Any] = {
        "http.request.method": info.method,
        "url.full": full,
        **_server(info.url),
        "resilient_http.upstream": info.upstream,
    }
    if info.number > 1:
        attributes["http.request.resend_count"] = info.number - 1
    span = TRACER.start_span(info.method, kind=SpanKind.CLIENT, attributes=attributes)
    propagate.inject(headers, context=trace.set_span_in_context(span))

    def heard(outcome: Outcome) -> None:
        if outcome.status is not None:
            span.set_attribute("http.response.status_code", outcome.status)
        failed = outcome.error or (
            str(outcome.status) if outcome.status is not None and outcome.status >= 400 else None
        )
        if failed is not None:
            span.set_attribute("error.type", failed)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    return heard


def _not_recorded(outcome: Outcome) -> None:
    """The end of an attempt no span records."""


@functools.lru_cache(maxsize=256)
def _server(url: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a host's URL (a few hosts, many calls)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname or "", "server.port": port}


def sdk_installed() -> bool:
    """Has the application installed an SDK (a real provider, not the API's proxy)? If
    not, ``resilient_http.registry`` wires none of this: a call costs what it did."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def metrics_installed() -> bool:
    """Has the application set a metrics SDK up? If not (``make serve``'s default: nothing
    reads them), ``listener`` is ``record_span_event`` alone."""
    from opentelemetry.metrics._internal import _ProxyMeterProvider  # the API's stand-in

    provider = metrics.get_meter_provider()
    return not isinstance(provider, _ProxyMeterProvider | metrics.NoOpMeterProvider)


def listener() -> Callable[[Event], None]:
    """The listener worth wiring here: ``record_event``, or ``record_span_event`` alone
    where no metrics SDK would read the metrics."""
    return record_event if metrics_installed() else record_span_event


def record_event(event: Event) -> None:
    """The listener: span events on the call's span, and the metrics."""
    record_span_event(event)
    record_metrics(event)


def record_span_event(event: Event) -> None:
    """The event as a span event on the call's span (current in the thread that emits
    it), if it is one worth telling and that span records."""
    if event.name in SPAN_EVENTS:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(event.name, _attributes(event))


def record_metrics(event: Event) -> None:
    """The metrics the event feeds, as the Prometheus ones are fed."""
    match event:
        case ev.CallSucceeded() | ev.RetryScheduled() | ev.CallFailed():
            _record_attempt(event)
        case ev.BreakerRejected() | ev.BulkheadRejected() | ev.BudgetExhausted():
            REFUSED.add(1, {"resilient_http.upstream": event.upstream, "reason": event.name})


def _record_attempt(event: ev.CallEvent) -> None:
    upstream = {"resilient_http.upstream": event.upstream}
    if event.outcome is not None and event.elapsed is not None:
        attributes: dict[str, Any] = {**upstream, "http.request.method": event.method or ""}
        status = int(event.outcome) if event.outcome.isdigit() else None
        if status is not None:
            attributes["http.response.status_code"] = status
        if status is None or status >= 400:
            attributes["error.type"] = event.outcome
        REQUEST_DURATION.record(event.elapsed, attributes)
    # A call that did not retry reports neither (A96: "If there were no retries, 0 is not
    # reported"): a healthy call records one histogram, not three (about 12 µs with the SDK).
    retries = (event.attempt or 1) - 1
    if isinstance(event, ev.CallSucceeded | ev.CallFailed) and retries:
        CALL_RETRIES.record(retries, upstream)
        CALL_RETRY_DELAY.record(event.waited, upstream)


def _attributes(event: Event) -> dict[str, Any]:
    """The event's fields as span-event attributes (``None`` left out, names prefixed)."""
    return {
        f"resilient_http.{name}": value
        for name, value in event.fields().items()
        if name != "event" and isinstance(value, str | int | float | bool)
    }
