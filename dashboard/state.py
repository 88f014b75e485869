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
from users.models import Outage
from users.outages import outage_describe, outage_get, outage_is_active, outage_list


def resilience_state(*, now: datetime | None = None) -> dict[str, Any]:
    """The whole page's data; ``now`` (wall clock) for the fault's time left."""
    return {
        # Breaker, budget and calls are this process's: with several gunicorn workers each
        # poll may land on another one, so the page says which answered.
        "pid": os.getpid(),
        "upstreams": [upstream_state(name) for name in settings.UPSTREAMS],
        "fault": fault_state(now=now),
        "faults": faults_state(now=now),
        "replicas": settings.USERS_REPLICAS,
        "simulation": settings.OUTAGE_SIMULATION,
        "modes": fault_modes(),
    }


def upstream_state(name: str) -> dict[str, Any]:
    """One upstream: breaker, budget, in flight, and its last calls (newest first). The
    breaker, budget, bulkhead and hosts are read from their own state, never rebuilt."""
    recorded = RECORDER.snapshot(name)
    manager = upstream(name).manager
    state: dict[str, Any] = {
        "name": name,
        "client": True,  # every configured upstream has one, made on first use
        "in_flight": manager.bulkhead.in_flight,
        "calls": recorded["calls"],
        "transitions": recorded["transitions"],
    }
    cfg, breaker, budget = manager.config, manager.admission.breaker, manager.budget
    requests, retries = budget.counts()
    state.update(
        base_url=cfg.base_url,
        deadline=cfg.deadline,
        attempts=cfg.retries + 1,
        concurrency_limit=manager.bulkhead.limit,
        breaker=None
        if not cfg.breaker  # turned off: nothing to show
        else {
            "state": breaker.state.value,
            "next_probe": round(breaker.retry_after(), 3),
            "reset": breaker.reset,
            "consecutive_failures": breaker.consecutive_failures,
            "failure_ratio": breaker.failure_ratio,
        },
        budget={
            "available": round(budget.available(), 2),
            "ratio": budget.ratio,
            "floor": budget.floor,
            "window": budget.window,  # what the counts below cover
            "recent_requests": requests,
            "recent_retries": retries,
        },
        # Each host's own state, read from the balancer (only shown where there are several).
        hosts=manager.hosts.snapshot(),
    )
    return state


def fault_state(*, now: datetime | None = None) -> dict[str, Any] | None:
    """The stored simulated fault for all replicas (active or ended), or ``None``."""
    outage = outage_get()
    return None if outage is None else _fault(outage, now=now or timezone.now(), targeted=False)


def faults_state(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every stored fault with its ``target`` (``"all"`` or a replica number); each
    ``description`` names the target once any fault is for one replica only.
    """
    now = now or timezone.now()
    outages = outage_list()
    targeted = any(outage.replica is not None for outage in outages)
    return [_fault(outage, now=now, targeted=targeted) for outage in outages]


def _fault(outage: Outage, *, now: datetime, targeted: bool) -> dict[str, Any]:
    left = None if outage.expires_at is None else (outage.expires_at - now).total_seconds()
    return {
        "target": "all" if outage.replica is None else outage.replica,
        "mode": outage.mode,
        "active": outage_is_active(outage, now=now),
        "description": outage_describe(outage, now=now, targeted=targeted),
        "time_left": None if left is None else round(max(0.0, left), 1),
        "hits": outage.hits,
        "started_at": outage.started_at.isoformat(),
    }
