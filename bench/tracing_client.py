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

from resilient_http import RetryManager, UpstreamConfig


def configure(variant: str) -> None:
    """``bare`` (no tracing wired: what the registry does with no SDK) and ``off`` (wired
    anyway, no SDK: the API's no-op spans);
    ``console`` / ``otlp``: the SDK exporting what it samples (``OTEL_TRACES_SAMPLER``: every
    trace by default), as project/telemetry.py sets it up."""
    if variant in ("bare", "off"):
        return
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    readers = []
    if variant == "console":
        exporter = ConsoleSpanExporter(out=open(os.devnull, "w"))  # noqa: SIM115
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=readers))


def main() -> None:
    variant, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    configure(variant)
    config = UpstreamConfig(name="bench", base_url=url)
    if variant == "bare":  # as resilient_http.registry wires it with no SDK installed
        manager = RetryManager(config, listeners=())
    else:
        from resilient_http import otel

        manager = RetryManager(
            config,
            listeners=[otel.record_event],
            scopes=[otel.call_scope],
            on_attempt=otel.attempt_hook,
        )
    for _ in range(200):
        manager.get("/users/1")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        manager.get("/users/1")
        times.append(time.perf_counter() - started)
    manager.close()
    print(json.dumps(times))


if __name__ == "__main__":
    main()
