"""The OpenTelemetry SDK for both services, configured by its standard variables.

``OTEL_SERVICE_NAME`` (default: the service this process is, ``orders`` or ``users``),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` / ``_ARG`` (the SDK's default:
``parentbased_always_on``), ``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER``
(``otlp``, ``console``, ``none``, or a comma-separated list), ``OTEL_EXPORTER_OTLP_ENDPOINT``
and the rest of the exporter's own variables, ``OTEL_PROPAGATORS`` (default
``tracecontext,baggage``), ``OTEL_SDK_DISABLED``.

One choice differs from the SDK's: with no ``OTEL_TRACES_EXPORTER`` (or ``_METRICS_``)
nothing is exported, for ``make run`` and ``make serve`` alike, where the SDK would send
OTLP to localhost:4318 and log a failure every few seconds on a machine with no collector.
Spans are still made and sampled: their trace IDs are in the log lines and on the live
page, and ``OTEL_TRACES_EXPORTER=console`` (or ``otlp`` with a collector) shows them with no
code change. Django's server spans come from its instrumentation; the client's, from
``resilient_http.otel``.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

#: Requests not worth a span: probes, scrapes, and the live page polling twice a second.
EXCLUDED_URLS = "healthz,readyz,metrics,resilience/"
EXPORTERS = ("otlp", "console", "none")


def configure(service: str) -> bool:
    """Set the SDK up once per process from the environment; ``False`` if it is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol != "http/protobuf":
        raise ImproperlyConfigured(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is installed; got {protocol!r}"
        )
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    resource = Resource.create({"service.name": name})
    tracer_provider = TracerProvider(resource=resource)
    for processor in span_processors(exporters("OTEL_TRACES_EXPORTER")):
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    readers = metric_readers(exporters("OTEL_METRICS_EXPORTER"))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", EXCLUDED_URLS)
    # The stable HTTP conventions only (the client spans' names), not the old ones too:
    # building the old http.url, the instrumentation raises on a path a test client sends.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    DjangoInstrumentor().instrument(excluded_urls=excluded)
    return True


def exporters(variable: str) -> list[str]:
    """The exporters ``variable`` names (none by default); a typo stops start-up."""
    names = [n.strip() for n in os.environ.get(variable, "none").split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise ImproperlyConfigured(
            f"{variable}: unknown exporter(s) {unknown}; want {', '.join(EXPORTERS)}"
        )
    return [n for n in names if n != "none"]


def span_processors(names: list[str]) -> list[SpanProcessor]:
    found: list[SpanProcessor] = []
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            found.append(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            found.append(BatchSpanProcessor(ConsoleSpanExporter()))
    return found


def metric_readers(names: list[str]) -> list[MetricReader]:
    found: list[MetricReader] = []
    for name in names:
        exporter: Any
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            exporter = OTLPMetricExporter()
        else:
            exporter = ConsoleMetricExporter()
        found.append(PeriodicExportingMetricReader(exporter))
    return found
