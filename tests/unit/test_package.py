"""The library's surface: small, typed, plain Python at its core, defaults in one place."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import resilient_http
from resilient_http.breaker import CircuitBreaker
from resilient_http.budget import RetryBudget
from resilient_http.config import UpstreamConfig, default

PACKAGE = Path(resilient_http.__file__).parent


def test_the_public_api_is_small_and_every_name_in_it_resolves():
    assert sorted(resilient_http.__all__) == sorted(
        [
            "DEADLINE_HEADER",
            "CircuitOpen",
            "Deadline",
            "RetryManager",
            "UpstreamBadResponse",
            "UpstreamConfig",
            "UpstreamError",
            "UpstreamOverloaded",
            "UpstreamResponse",
            "UpstreamTimeout",
            "UpstreamUnavailable",
            "is_testing",
            "set_testing",
            "upstream",
        ]
    )
    for name in resilient_http.__all__:
        assert getattr(resilient_http, name) is not None


def test_the_core_imports_without_django():
    """``import resilient_http`` in a process with no settings: nothing Django is loaded
    until ``upstream`` is asked for."""
    code = (
        "import sys, resilient_http; from resilient_http import RetryManager, UpstreamConfig;"
        "RetryManager(UpstreamConfig(name='x', base_url='http://127.0.0.1:9')).close();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_breaker_and_the_budget_alone_take_the_configurations_defaults():
    rules = CircuitBreaker().rules
    assert rules.failure_ratio == default("breaker_failure_ratio")
    assert rules.min_calls == default("breaker_min_calls")
    assert rules.consecutive_failures == default("breaker_consecutive_failures")
    assert rules.window == default("breaker_window")
    assert rules.reset == default("breaker_reset")
    assert rules.slow_call == default("slow_call")
    assert rules.slow_call_ratio == default("breaker_slow_call_ratio")
    assert RetryBudget(ratio=0.2, min_per_second=3).window == default("budget_window")
    fields = {f.name: f.default for f in dataclasses.fields(UpstreamConfig)}
    assert fields["breaker_reset"] == default("breaker_reset")


def test_it_ships_its_type_hints_and_a_version():
    assert (PACKAGE / "py.typed").is_file()
    assert resilient_http.__version__.count(".") == 2
