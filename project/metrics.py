"""Prometheus metrics for upstream calls, fed by the resilience events (like the logs).

django-prometheus covers each view's requests and latency; this covers each upstream:
attempts by outcome, retries, timeouts, breaker state and transitions, budget
exhaustions and call latency. A listener, so the resilience layer knows nothing of it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from project.resilience import TIMEOUTS, Event
from project.resilience import events as ev

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
_ATTEMPT_EVENTS = (ev.CALL_SUCCEEDED, ev.RETRY_SCHEDULED, ev.CALL_FAILED)


def record_event(event: Event) -> None:
    """Listener for ``RetryManager(listeners=...)``."""
    upstream = event.upstream
    if event.name in _ATTEMPT_EVENTS and event.outcome is not None:
        ATTEMPTS.labels(upstream, event.outcome).inc()
        if event.outcome in TIMEOUTS:
            TIMEOUT_ATTEMPTS.labels(upstream).inc()
        if event.host is not None:
            HOST_ATTEMPTS.labels(upstream, event.host, event.outcome).inc()
    if event.name == ev.RETRY_SCHEDULED:
        RETRIES.labels(upstream).inc()
    elif event.name == ev.BUDGET_EXHAUSTED:
        BUDGET_EXHAUSTED.labels(upstream).inc()
    elif event.name == ev.BREAKER_REJECTED:
        REJECTED.labels(upstream).inc()
    elif event.name == ev.BULKHEAD_REJECTED:
        OVERLOADED.labels(upstream).inc()
    elif event.name == ev.HEDGE_SENT:
        HEDGES.labels(upstream).inc()
    elif event.name == ev.HOST_EJECTED:
        EJECTIONS.labels(upstream, event.host).inc()
        EJECTED.labels(upstream, event.host).set(1)
    elif event.name == ev.HOST_RETURNED:
        EJECTED.labels(upstream, event.host).set(0)
    elif event.name in _BREAKER:
        BREAKER_STATE.labels(upstream).set(_BREAKER[event.name])
        TRANSITIONS.labels(upstream, event.name.removeprefix("breaker_")).inc()
    if event.name in (ev.CALL_SUCCEEDED, ev.CALL_FAILED) and event.duration is not None:
        result = "success" if event.name == ev.CALL_SUCCEEDED else "failure"
        CALL_SECONDS.labels(upstream, result).observe(event.duration)
