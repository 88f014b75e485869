"""What the resilience page shows, as one JSON-ready dict: read, never written, here.

Per upstream in ``settings.UPSTREAMS`` (a second upstream appears by itself): the breaker,
budget and bulkhead from the process's own client (``resilient_http.registry.upstream``), the
calls and in-flight count from ``resilient_http.live.RECORDER``.
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
from resilient_http.views import upstream_state
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
