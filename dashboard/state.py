"""What the resilience page shows, as one JSON-ready dict: read, never written, here.

Per upstream in ``settings.UPSTREAMS`` (a second upstream appears by itself): the breaker,
budget and bulkhead from the process's own client (``project.upstreams.upstream``), the
calls and in-flight count from ``project.live.RECORDER``.
And the simulated fault, from its database row. All of it is this process's view: each
Orders process has its own breaker, budget and recorder.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from dashboard.faults import fault_modes
from project.live import RECORDER
from project.upstreams import upstream
from users.outages import outage_describe, outage_get, outage_is_active


def resilience_state(*, now: datetime | None = None) -> dict[str, Any]:
    """The whole page's data; ``now`` (wall clock) for the fault's time left."""
    return {
        # Breaker, budget and calls are this process's: with several gunicorn workers each
        # poll may land on another one, so the page says which answered.
        "pid": os.getpid(),
        "upstreams": [upstream_state(name) for name in settings.UPSTREAMS],
        "fault": fault_state(now=now),
        "simulation": settings.OUTAGE_SIMULATION,
        "modes": fault_modes(),
    }


def upstream_state(name: str) -> dict[str, Any]:
    """One upstream: breaker, budget, in flight, and its last calls (newest first)."""
    recorded = RECORDER.snapshot(name)
    manager = upstream(name).manager
    state: dict[str, Any] = {
        "name": name,
        "client": True,  # every configured upstream has one, made on first use
        "in_flight": recorded["in_flight"],
        "calls": recorded["calls"],
        "transitions": recorded["transitions"],
    }
    cfg, breaker = manager.config, manager.breaker
    state.update(
        base_url=cfg.base_url,
        deadline=cfg.deadline,
        attempts=cfg.retries + 1,
        concurrency_limit=manager.bulkhead.limit,
        breaker=None
        if breaker is None
        else {
            "state": breaker.state.value,
            "next_probe": round(breaker.retry_after(), 3),
            "reset": breaker.reset,
            "consecutive_failures": breaker.consecutive_failures,
            "failure_ratio": breaker.failure_ratio,
        },
        budget={
            "available": round(manager.budget.available(), 2),
            "ratio": manager.budget.ratio,
            "floor": manager.budget.floor,
            "window": recorded["budget_window"],  # what the counts below cover
            # Counted from the events by the recorder (the budget keeps its own counts private).
            "recent_requests": recorded["recent_requests"],
            "recent_retries": recorded["recent_retries"],
        },
        # Each host's own state, read from the balancer (only shown where there are several).
        hosts=manager.hosts.snapshot(),
    )
    return state


def fault_state(*, now: datetime | None = None) -> dict[str, Any] | None:
    """The stored simulated fault (active or ended), or ``None`` when there is none."""
    outage = outage_get()
    if outage is None:
        return None
    now = now or timezone.now()
    left = None if outage.expires_at is None else (outage.expires_at - now).total_seconds()
    return {
        "mode": outage.mode,
        "active": outage_is_active(outage, now=now),
        "description": outage_describe(outage, now=now),
        "time_left": None if left is None else round(max(0.0, left), 1),
        "hits": outage.hits,
        "started_at": outage.started_at.isoformat(),
    }
