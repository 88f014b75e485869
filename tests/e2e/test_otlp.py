"""Traces across two real processes, exported over OTLP/HTTP to a real receiver: Orders and
Users as ``make serve`` runs them, configured only by the standard ``OTEL_*`` variables.

The receiver (bench/otlp_receiver.py, the tracing benchmark's too) is an HTTP server that
decodes OTLP's protobuf with the ``opentelemetry-proto`` messages the exporter encodes with
(no OpenTelemetry Collector package is installable here); it accepts what a collector does."""

from __future__ import annotations

import pytest
import requests

from bench.otlp_receiver import Receiver
from bench.stack import wait_until

pytestmark = pytest.mark.e2e
TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


SERVER, CLIENT, INTERNAL = 2, 3, 1  # OTLP's SpanKind numbers


def test_a_call_retried_across_two_processes_is_one_trace_at_the_receiver(
    stack, monkeypatch, tmp_path
):
    receiver = Receiver()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: export soon after
    try:
        running = stack("gunicorn")
        running.manage("simulate_outage", "fail-next", "1", "--status", "503")
        response = requests.get(
            f"{running.orders_url}/orders/?user_id=1",
            headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
            timeout=30,
        )
        assert response.status_code == 200
        wait_until(
            lambda: len(receiver.of("orders", CLIENT)) == 2
            and len(receiver.of("users", SERVER)) == 2,
            "both services' spans at the receiver",
            timeout=60,
        )
    finally:
        receiver.close()
    attempts = sorted(receiver.of("orders", CLIENT), key=lambda s: s.start_time_unix_nano)
    users = receiver.of("users", SERVER)
    (call,) = receiver.of("orders", INTERNAL)
    (orders,) = receiver.of("orders", SERVER)
    every = [*attempts, *users, call, orders]
    assert {s.trace_id.hex() for s in every} == {TRACE}  # the caller's trace, continued
    assert orders.parent_span_id.hex() == CALLER_SPAN
    assert call.parent_span_id == orders.span_id
    assert all(a.parent_span_id == call.span_id for a in attempts)
    # Users, another process, continued each attempt's own span.
    assert sorted(u.parent_span_id for u in users) == sorted(a.span_id for a in attempts)
    resend = [
        next((a.value.int_value for a in s.attributes if a.key == "http.request.resend_count"), 0)
        for s in attempts
    ]
    assert resend == [0, 1]
    assert [e.name for e in call.events] == ["retry_scheduled"]
