"""OpenTelemetry, with the SDK's in-memory exporter: every attempt a client span under the
call's span, the trace continued by Users over real HTTP, span events for what happened
between attempts, the problem code on a failure, metrics from the events."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from resilient_http import RetryManager, UpstreamConfig, UpstreamUnavailable, otel
from resilient_http import events as ev
from resilient_http.live import RECORDER
from resilient_http.request_id import RequestIdFilter
from tests.conftest import eventually
from tests.integration.conftest import outage
from tests.integration.test_hedging import HoldingServer

pytestmark = pytest.mark.django_db(transaction=True)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def by_kind(spans, kind: SpanKind, name: str | None = None) -> list:
    return [s for s in spans.get_finished_spans() if s.kind is kind and name in (None, s.name)]


def call_span(spans):
    (span,) = [s for s in by_kind(spans, SpanKind.INTERNAL) if s.name.startswith("users ")]
    return span


def test_each_attempt_is_a_client_span_under_the_call_and_users_continues_it(
    users_upstream, orders_client, spans, resilient_testing
):
    outage("fail-next", "2", "--status", "503")
    response = orders_client.get("/orders/", {"user_id": 1}, HTTP_TRACEPARENT=TRACEPARENT)
    assert response.status_code == 200
    call = call_span(spans)
    attempts = sorted(by_kind(spans, SpanKind.CLIENT), key=lambda s: s.start_time)
    assert [a.attributes.get("http.request.resend_count") for a in attempts] == [None, 1, 2]
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 503, 200]
    assert [a.attributes.get("error.type") for a in attempts] == ["503", "503", None]
    assert [a.status.status_code for a in attempts] == [StatusCode.ERROR] * 2 + [StatusCode.UNSET]
    assert all(a.parent.span_id == call.context.span_id for a in attempts)
    assert attempts[0].attributes["url.full"].endswith("/users/1?fromService=order")
    assert attempts[0].attributes["server.address"] == "localhost"
    # Users (the live server, its own Django instrumentation) continued each attempt's span.
    users = [s for s in by_kind(spans, SpanKind.SERVER) if s.name.startswith("GET ^users/")]
    assert sorted(s.parent.span_id for s in users) == sorted(a.context.span_id for a in attempts)
    # One trace, from Orders' own caller's traceparent to Users.
    assert {format(s.context.trace_id, "032x") for s in spans.get_finished_spans()} == {TRACE}
    (orders,) = by_kind(spans, SpanKind.SERVER, "GET orders/")
    assert call.parent.span_id == orders.context.span_id
    assert orders.parent.span_id == int("00f067aa0ba902b7", 16)


def test_backoff_and_an_honoured_retry_after_are_span_events(
    users_upstream, orders_client, spans, resilient_testing
):
    outage("fail-next", "1", "--status", "503", "--retry-after", "1")
    assert orders_client.get("/orders/", {"user_id": 1}).status_code == 200
    (retry,) = call_span(spans).events
    assert retry.name == ev.RETRY_SCHEDULED
    assert retry.attributes["resilient_http.wait"] == 1.0
    assert retry.attributes["resilient_http.retry_after"] == 1.0  # what Users asked, honoured
    assert retry.attributes["resilient_http.outcome"] == "503"


def test_a_failed_call_carries_its_problem_code_and_the_breaker_its_events(
    users_upstream, orders_client, spans, resilient_testing
):
    users_upstream(retries=0, breaker_consecutive_failures=1)
    outage("error", "--status", "502")
    response = orders_client.get("/orders/", {"user_id": 1})
    assert response.json()["code"] == "users_unavailable"
    call = call_span(spans)
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "users_unavailable"
    assert ev.BREAKER_OPENED in [e.name for e in call.events]
    spans.clear()
    assert orders_client.get("/orders/", {"user_id": 1}).json()["code"] == "users_circuit_open"
    refused = call_span(spans)
    assert [e.name for e in refused.events] == [ev.BREAKER_REJECTED]
    assert refused.attributes["error.type"] == "users_circuit_open"
    assert by_kind(spans, SpanKind.CLIENT) == []  # nothing went out


def test_a_hedge_is_its_own_client_span_under_the_same_call(spans):
    server = HoldingServer(hold={1})
    config = UpstreamConfig(
        name="users",
        base_url=f"http://127.0.0.1:{server.port}",
        hedge_after=0.05,
        deadline=60,
        read_timeout=60,
    )
    manager = RetryManager(
        config,
        listeners=[otel.record_event],
        scopes=[otel.call_scope],
        on_attempt=otel.attempt_hook,
    )
    try:
        assert manager.get("/users/1").status == 200
    finally:
        manager.close()
        server.close()
    # The held attempt's span ends when its worker sees its connection shut.
    assert eventually(lambda: len(by_kind(spans, SpanKind.CLIENT)) == 2)
    call = call_span(spans)
    attempts = {
        a.attributes.get("http.request.resend_count", 0): a for a in by_kind(spans, SpanKind.CLIENT)
    }
    assert set(attempts) == {0, 1}  # the held first attempt and the hedge, both recorded
    assert all(a.parent.span_id == call.context.span_id for a in attempts.values())  # the
    # hedge ran on a worker thread, in a copy of the caller's context
    assert attempts[1].attributes["http.response.status_code"] == 200
    assert attempts[0].attributes["error.type"] == "deadline_exceeded"  # cancelled: it lost
    assert [e.name for e in call.events] == [ev.HEDGE_SENT]


def test_a_refused_call_outside_django_has_no_span_but_is_counted(spans, metric_reader):
    metric_reader.get_metrics_data()  # what earlier tests recorded, out of the way
    config = UpstreamConfig(
        name="users", base_url="http://127.0.0.1:9", breaker_consecutive_failures=1, retries=0
    )
    manager = RetryManager(config, listeners=[otel.record_event], scopes=[otel.call_scope])
    with pytest.raises(UpstreamUnavailable):
        manager.get("/x")
    with pytest.raises(UpstreamUnavailable):
        manager.get("/x")  # the breaker is open now
    manager.close()
    points = _points(metric_reader, "resilient_http.client.call.refused")
    refused = points["resilient_http.client.call.refused"]
    assert [(p.attributes["reason"], p.value) for p in refused] == [(ev.BREAKER_REJECTED, 1)]


#: What a call records: each attempt's duration, and (A96) the retries of a call that retried.
CALL_METRICS = (
    "http.client.request.duration",
    "resilient_http.client.call.retries",
    "resilient_http.client.call.retry_delay",
)


def test_metrics_follow_the_conventions_names(
    users_upstream, orders_client, metric_reader, resilient_testing
):
    metric_reader.get_metrics_data()  # what earlier tests recorded, out of the way
    outage("fail-next", "1", "--status", "503")
    assert orders_client.get("/orders/", {"user_id": 1}).status_code == 200
    points = _points(metric_reader, *CALL_METRICS)
    durations = points["http.client.request.duration"]
    assert sorted(p.attributes["http.response.status_code"] for p in durations) == [200, 503]
    assert all(p.count == 1 for p in durations)
    (retries,) = points["resilient_http.client.call.retries"]
    assert (retries.count, retries.sum) == (1, 1)
    (delay,) = points["resilient_http.client.call.retry_delay"]
    assert delay.count == 1
    assert delay.sum == pytest.approx(
        0.01 * 2**0, abs=0.02
    )  # the one backoff (testing: its ceiling)


def test_a_call_that_did_not_retry_reports_no_retries(users_upstream, orders_client, metric_reader):
    """A96: "If there were no retries, 0 is not reported" (nor a zero delay): a healthy
    call records its attempt's duration only."""
    metric_reader.get_metrics_data()  # what earlier tests recorded, out of the way
    assert orders_client.get("/orders/", {"user_id": 1}).status_code == 200
    points = _points(metric_reader, *CALL_METRICS)
    assert [p.count for p in points["http.client.request.duration"]] == [1]
    assert points["resilient_http.client.call.retries"] == []
    assert points["resilient_http.client.call.retry_delay"] == []


def test_the_trace_id_is_in_the_log_line_and_on_the_live_page(
    users_upstream, orders_client, spans, resilient_testing
):
    orders_client.get(
        "/orders/", {"user_id": 1}, HTTP_TRACEPARENT=TRACEPARENT, HTTP_X_REQUEST_ID="req-1"
    )
    (row,) = RECORDER.snapshot("users")["calls"][:1]
    assert row["trace_id"] == TRACE
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    call = call_span(spans)
    from opentelemetry import trace

    with trace.use_span(trace.NonRecordingSpan(call.context)):
        RequestIdFilter().filter(record)
    assert record.trace_id == TRACE
    assert record.request_id_suffix == f" [req-1 trace={TRACE}]"  # the text format's


def test_a_request_without_an_id_takes_its_traces(users_upstream, orders_client, spans):
    response = orders_client.get("/orders/", {"user_id": 1}, HTTP_TRACEPARENT=TRACEPARENT)
    assert response["X-Request-ID"] == TRACE  # one ID to grep for, in logs and traces


def _points(reader, *names: str) -> dict[str, list]:
    """The data points of ``names`` recorded since the last collection (one collection)."""
    data = reader.get_metrics_data()
    found: dict[str, list] = {name: [] for name in names}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name in found:
                    found[metric.name] += metric.data.data_points
    return found


def test_an_unsampled_trace_makes_no_span_and_goes_on_unsampled_to_users(
    users_upstream, orders_client, spans, resilient_testing
):
    """A caller that did not sample its trace: no span here is recorded (the sampler
    follows the parent, as every ``parentbased_*`` one does), none is even made for the
    call, yet the trace ID reaches the live page and Users continues the same trace,
    unsampled (the SDK's in-memory exporter sees no span from either service)."""
    unsampled = f"00-{TRACE}-00f067aa0ba902b7-00"
    response = orders_client.get("/orders/", {"user_id": 1}, HTTP_TRACEPARENT=unsampled)
    assert response.status_code == 200
    assert spans.get_finished_spans() == ()
    (row,) = RECORDER.snapshot("users")["calls"][:1]
    assert row["trace_id"] == TRACE


def test_the_metrics_are_wired_only_where_a_metrics_sdk_reads_them(monkeypatch):
    """``make serve``'s default sets a tracer provider but no meter provider: its calls
    carry span events, and record into no instrument nobody reads."""
    from opentelemetry import metrics
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    from resilient_http import registry

    assert otel.metrics_installed()  # the tests' in-memory reader
    assert otel.record_event in registry.listeners(True)
    monkeypatch.setattr(metrics, "get_meter_provider", _ProxyMeterProvider)
    assert not otel.metrics_installed()
    wired = registry.listeners(True)
    assert otel.record_span_event in wired
    assert otel.record_event not in wired
