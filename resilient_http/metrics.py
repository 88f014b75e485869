"""Prometheus metrics for upstream calls, fed by the resilience events (like the logs).

django-prometheus covers each view's requests and latency; this covers each upstream:
attempts by outcome, retries, timeouts, breaker state and transitions, budget
exhaustions and call latency. A listener, so the resilience layer knows nothing of it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from . import events as ev
from .events import Event
from .outcome import TIMEOUTS

ATTEMPTS = Counter(
    "upstream_attempts_total", "Requests sent to an upstream, by outcome", ["upstream", "outcome"]
)
RETRIES = Counter("upstream_retries_total", "Retries scheduled", ["upstream"])
TIMEOUT_ATTEMPTS = Counter("upstream_timeouts_total", "Attempts that timed out", ["upstream"])
BUDGET_EXHAUSTED = Counter(
    "upstream_budget_exhausted_total", "Retries refused by the retry budget", ["upstream"]
)
REJECTED = Counter(
    "upstream_breaker_rejections_total", "Calls refused by the open breaker", ["upstream"]
)
OVERLOADED = Counter(
    "upstream_bulkhead_rejections_total",
    "Calls refused by the full bulkhead (max_concurrency in flight)",
    ["upstream"],
)
HEDGES = Counter("upstream_hedges_total", "Hedged attempts sent", ["upstream"])
HOST_ATTEMPTS = Counter(
    "upstream_host_attempts_total",
    "Attempts by host and outcome (upstreams with several hosts only)",
    ["upstream", "host", "outcome"],
)
EJECTIONS = Counter(
    "upstream_host_ejections_total", "Hosts ejected by outlier detection", ["upstream", "host"]
)
EJECTED = Gauge("upstream_host_ejected", "1 while the host is ejected", ["upstream", "host"])
BREAKER_STATE = Gauge(
    "upstream_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ["upstream"]
)
TRANSITIONS = Counter(
    "upstream_breaker_transitions_total", "Breaker state changes, by new state", ["upstream", "to"]
)
CALL_SECONDS = Histogram(
    "upstream_call_duration_seconds",
    "Whole calls (attempts, backoff and body), by result",
    ["upstream", "result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_BREAKER = {ev.BREAKER_CLOSED: 0, ev.BREAKER_HALF_OPEN: 1, ev.BREAKER_OPENED: 2}


def record_event(event: Event) -> None:
    """Listener for ``RetryManager(listeners=...)``."""
    upstream = event.upstream
    match event:
        case ev.CallSucceeded() | ev.RetryScheduled() | ev.CallFailed():
            _attempt(event)
            if isinstance(event, ev.RetryScheduled):
                RETRIES.labels(upstream).inc()
        case ev.BudgetExhausted():
            BUDGET_EXHAUSTED.labels(upstream).inc()
        case ev.BreakerRejected():
            REJECTED.labels(upstream).inc()
        case ev.BulkheadRejected():
            OVERLOADED.labels(upstream).inc()
        case ev.HedgeSent():
            HEDGES.labels(upstream).inc()
        case ev.BreakerOpened() | ev.BreakerHalfOpen() | ev.BreakerClosed():
            BREAKER_STATE.labels(upstream).set(_BREAKER[event.name])
            TRANSITIONS.labels(upstream, event.name.removeprefix("breaker_")).inc()
        case ev.HostEjected():
            EJECTIONS.labels(upstream, event.host).inc()
            EJECTED.labels(upstream, event.host).set(1)
        case ev.HostReturned():
            EJECTED.labels(upstream, event.host).set(0)


def _attempt(event: ev.CallEvent) -> None:
    """An attempt that decided (succeeded, retried, gave up), and a whole call's time."""
    upstream = event.upstream
    if event.outcome is not None:
        ATTEMPTS.labels(upstream, event.outcome).inc()
        if event.outcome in TIMEOUTS:
            TIMEOUT_ATTEMPTS.labels(upstream).inc()
        if event.host is not None:
            HOST_ATTEMPTS.labels(upstream, event.host, event.outcome).inc()
    duration = getattr(event, "duration", None)
    if duration is not None:
        result = "success" if isinstance(event, ev.CallSucceeded) else "failure"
        CALL_SECONDS.labels(upstream, result).observe(duration)
