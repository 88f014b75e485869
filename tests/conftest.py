"""Shared fixtures: an injected clock and sleep, a RetryManager factory, a closed port, and
an in-memory OpenTelemetry SDK (installed once per process, as an application would)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from resilient_http import RetryManager, UpstreamConfig, set_testing
from resilient_http.events import Event
from resilient_http.registry import reset_upstreams

BASE_URL = "http://users.test"
URL = f"{BASE_URL}/users/1"
USER = {"id": 1, "name": "Aaron Apple", "phone": "99992222"}


#: Every finished span and the metrics of this test process (``spans``, ``metric_reader``).
SPANS = InMemorySpanExporter()
#: Each collection holds what was recorded since the last one (delta), so a test reads its own.
METRICS = InMemoryMetricReader(
    preferred_temporality=dict.fromkeys(
        (
            Counter,
            UpDownCounter,
            Histogram,
            ObservableCounter,
            ObservableUpDownCounter,
            ObservableGauge,
        ),
        AggregationTemporality.DELTA,
    )
)
_tracer_provider = TracerProvider()
_tracer_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_tracer_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[METRICS]))
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")  # as project/telemetry.py
DjangoInstrumentor().instrument()  # server spans; before any test client loads middleware


def eventually(condition: Callable[[], bool], patience: float = 10.0) -> bool:
    """Poll ``condition`` until it holds; ``False`` after ``patience`` seconds, an outer
    bound for what takes milliseconds on an idle machine (never a verdict on speed)."""
    ends = time.monotonic() + patience
    while not condition():
        if time.monotonic() > ends:
            return False
        time.sleep(0.005)
    return True


class FakeClock:
    """A monotonic clock that only moves when told to; ``sleep`` records and advances."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> list[Event]:
    return []


ManagerFactory = Callable[..., RetryManager]


@pytest.fixture
def make_manager(clock: FakeClock, events: list[Event]) -> Iterator[ManagerFactory]:
    """``make_manager(retries=5, ...)``: a RetryManager on ``BASE_URL`` with the fake clock,
    no jitter unless asked, and every event appended to ``events``.
    """
    made: list[RetryManager] = []

    def make(random: Callable[[], float] = lambda: 1.0, **overrides: object) -> RetryManager:
        fields: dict[str, object] = {
            "name": "users",
            "base_url": BASE_URL,
            "backoff_jitter": False,
            **overrides,
        }
        manager = RetryManager(
            UpstreamConfig(**fields),  # type: ignore[arg-type]
            clock=clock,
            sleep=clock.sleep,
            random=random,
            listeners=[events.append],
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Breaker and budget must not leak between tests. Created orders and idempotency
    keys are rows: pytest-django's database isolation rolls them back or flushes them."""
    reset_upstreams()
    SPANS.clear()
    yield
    reset_upstreams()
    set_testing(False)  # a test that turned it on cannot leave it on


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The spans finished during this test (cleared before each)."""
    return SPANS


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return METRICS
