"""project/telemetry.py: the SDK's configuration from OTEL_* variables, refused early when
it names what is not installed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.telemetry import configure, exporters


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
