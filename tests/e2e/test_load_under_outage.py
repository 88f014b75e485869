"""Load under outage, smoke-sized: correctness only (the timings live in the benchmark)."""

from __future__ import annotations

import pytest

from bench.load_under_outage import DEADLINE, run

pytestmark = pytest.mark.e2e


def test_orders_under_load_with_users_down_answers_in_time_and_leaks_nothing():
    figures = run(callers=8, seconds=2)
    assert figures["orders_statuses"] == [503]  # refused, retried, then the breaker: honest 503s
    assert figures["orders_max_s"] <= DEADLINE + 0.25
    assert figures["healthz_requests"] > 10  # /healthz kept answering throughout
    assert figures["after"]["threads"] <= figures["before"]["threads"]
    assert figures["after"]["sockets"] <= figures["before"]["sockets"]
