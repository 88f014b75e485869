"""project/telemetry.py: the SDK's configuration from OTEL_* variables, refused early when
it names what is not installed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.telemetry import configure, exporters, sampler


def test_no_exporter_by_default(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert exporters("OTEL_TRACES_EXPORTER") == []


def test_a_list_of_exporters(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, console,none")
    assert exporters("OTEL_TRACES_EXPORTER") == ["otlp", "console"]


def test_an_unknown_exporter_stops_start_up_by_name(monkeypatch):
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with pytest.raises(ImproperlyConfigured, match=r"OTEL_METRICS_EXPORTER.*prometheus"):
        exporters("OTEL_METRICS_EXPORTER")


def test_grpc_is_refused_before_anything_is_set_up(monkeypatch):
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ImproperlyConfigured, match="http/protobuf"):
        configure("orders")


def test_disabled_sets_nothing_up(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert configure("orders") is False


def _decision(chosen, parent_sampled: bool | None):
    """What ``chosen`` decides for a root span (``None``) or under a remote parent."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = None
    if parent_sampled is not None:
        flags = TraceFlags(TraceFlags.SAMPLED if parent_sampled else TraceFlags.DEFAULT)
        context = SpanContext(0x1F, 0x2F, is_remote=True, trace_flags=flags)
        parent = trace.set_span_in_context(NonRecordingSpan(context))
    return chosen.should_sample(parent, 0x1F, "GET").decision


def test_with_no_trace_exporter_no_trace_of_ours_is_recorded_but_a_callers_is(monkeypatch):
    """Nobody would read them (and recording cost ~40 µs a call); a caller that samples
    its trace is still followed, so its trace goes on through Users."""
    from opentelemetry.sdk.trace.sampling import Decision

    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    chosen = sampler(exporting=False)
    assert _decision(chosen, None) is Decision.DROP
    assert _decision(chosen, True) is Decision.RECORD_AND_SAMPLE
    assert _decision(chosen, False) is Decision.DROP


def test_an_exporter_or_a_named_sampler_keeps_the_sdks_sampler(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    assert sampler(exporting=True) is None
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    assert sampler(exporting=False) is None
