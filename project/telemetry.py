"""The OpenTelemetry SDK for both services, configured by its standard variables.

``OTEL_SERVICE_NAME`` (default: the service this process is, ``orders`` or ``users``),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` / ``_ARG`` (the SDK's default:
``parentbased_always_on``), ``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER``
(``otlp``, ``console``, ``none``, or a comma-separated list), ``OTEL_EXPORTER_OTLP_ENDPOINT``
and the rest of the exporter's own variables, ``OTEL_PROPAGATORS`` (default
``tracecontext,baggage``), ``OTEL_SDK_DISABLED``.

Two choices differ from the SDK's, for ``make run`` and ``make serve`` alike. With no
``OTEL_TRACES_EXPORTER`` (or ``_METRICS_``) nothing is exported, where the SDK would send
OTLP to localhost:4318 and log a failure every few seconds on a machine with no collector.
And with no trace exporter (and no ``OTEL_TRACES_SAMPLER``), a trace this service starts is
not recorded, nobody would read it, and with no metric exporter there is no metrics SDK:
recording both cost a healthy call about 80 µs (docs/benchmarks.md, "What a healthy call
costs"). Every request still gets a trace ID, in its log lines and on the live page; a
caller that samples its trace is still followed, and its context passed on. Naming an
exporter (``console``, or ``otlp`` with a collector) turns it all on, with no code change.
Django's server spans come from its instrumentation; the client's, from ``resilient_http.otel``.
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
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler

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
    processors = span_processors(exporters("OTEL_TRACES_EXPORTER"))
    tracer_provider = TracerProvider(resource=resource, sampler=sampler(bool(processors)))
    for processor in processors:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    readers = metric_readers(exporters("OTEL_METRICS_EXPORTER"))
    if readers:  # else the API's no-op meters: nothing would read what they record
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", EXCLUDED_URLS)
    # The stable HTTP conventions only (the client spans' names), not the old ones too:
    # building the old http.url, the instrumentation raises on a path a test client sends.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    DjangoInstrumentor().instrument(excluded_urls=excluded)
    return True


def sampler(exporting: bool) -> Sampler | None:
    """The sampler: the SDK's (``OTEL_TRACES_SAMPLER``, ``None`` here) when traces are
    exported or a sampler is named; else record no trace this service starts, and follow
    a caller's decision (trace IDs are minted either way)."""
    if exporting or os.environ.get("OTEL_TRACES_SAMPLER", "").strip():
        return None
    return ParentBased(root=ALWAYS_OFF)


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
