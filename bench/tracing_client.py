"""One variant of the client-call measurement of bench/tracing.py, in a process of its
own (an SDK is set once per process): ``n`` healthy calls through a ``RetryManager`` wired
as ``resilient_http.registry`` wires it (the call's span, a client span per attempt, the
events' span events and metrics), against bench/canned.py. Prints the seconds per call.

    python -m bench.tracing_client VARIANT URL N
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

from resilient_http import RetryManager, UpstreamConfig


def configure(variant: str) -> None:
    """``bare`` (no tracing wired: what the registry does with no SDK) and ``off`` (wired
    anyway, no SDK: the API's no-op spans); ``default``: the SDK as project/telemetry.py
    sets it up with no ``OTEL_*`` variable (``make serve``: no exporter, no trace recorded,
    no meter provider);
    ``console`` / ``otlp``: the SDK exporting what it samples (``OTEL_TRACES_SAMPLER``: every
    trace by default), as project/telemetry.py sets it up (``console``: no metrics, as
    ``OTEL_METRICS_EXPORTER=none``); ``sdk_floor``: ``otlp``'s SDK, and a bare call inside
    the two spans the issue asks for, made plainly (no attributes, no events, no metrics,
    no propagation): what the SDK alone costs, the floor under any instrumentation."""
    if variant in ("bare", "off"):
        return
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    resource = Resource.create({"service.name": "bench"})
    if variant == "default":
        trace.set_tracer_provider(
            TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
        )
        return
    provider = TracerProvider(resource=resource)
    if variant == "console":
        exporter = ConsoleSpanExporter(out=open(os.devnull, "w"))  # noqa: SIM115
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def call(variant: str, manager: RetryManager) -> Callable[[], object]:
    """One healthy call, as ``variant`` makes it."""
    if variant != "sdk_floor":
        return lambda: manager.get("/users/1")
    from opentelemetry import trace

    tracer = trace.get_tracer("bench")

    def floor() -> object:
        with tracer.start_as_current_span("users GET"):
            tracer.start_span("GET").end()
            return manager.get("/users/1")

    return floor


def main() -> None:
    variant, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    configure(variant)
    config = UpstreamConfig(name="bench", base_url=url)
    if variant in ("bare", "sdk_floor"):  # as resilient_http.registry wires it with no SDK
        manager = RetryManager(config, listeners=())
    else:  # as resilient_http.registry wires it: the metrics only where a meter provider is
        from resilient_http import otel

        manager = RetryManager(
            config,
            listeners=[otel.listener()],
            scopes=[otel.call_scope],
            on_attempt=otel.attempt_hook,
        )
    once = call(variant, manager)
    for _ in range(200):
        once()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    manager.close()
    print(json.dumps(times))


if __name__ == "__main__":
    main()
