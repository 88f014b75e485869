"""The library's surface: small, typed, plain Python at its core, defaults in one place."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import resilient_http
from resilient_http.breaker import CircuitBreaker
from resilient_http.budget import RetryBudget
from resilient_http.config import UpstreamConfig, default

PACKAGE = Path(resilient_http.__file__).parent
ROOT = PACKAGE.parent
PUBLIC = "resilient_http"
DOTTED = re.compile(r"resilient_http(\.\w+)+")


def test_the_public_api_is_small_and_every_name_in_it_resolves():
    assert sorted(resilient_http.__all__) == sorted(
        [
            "DEADLINE_HEADER",
            "IDEMPOTENCY_HEADER",
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


def demo_uses() -> set[str]:
    """Every ``resilient_http`` name the demo imports, or names in a dotted string
    (settings, URLconfs, logging config)."""
    used: set[str] = set()
    for app in ("orders", "users", "project", "dashboard"):
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PUBLIC):
                    used.update(f"{node.module}.{alias.name}" for alias in node.names)
                elif isinstance(node, ast.Import):
                    used.update(a.name for a in node.names if a.name.startswith(PUBLIC))
                elif isinstance(node, ast.Constant) and DOTTED.fullmatch(str(node.value)):
                    used.add(str(node.value))
    return used


def test_the_demo_uses_only_the_documented_api():
    """The demo uses the library as an installed package is used: only what
    docs/reference/python.md documents (the top level: ``__all__``)."""
    documented = (ROOT / "docs" / "reference" / "python.md").read_text()
    used = demo_uses()
    assert "resilient_http.problems.exception_handler" in used  # the scan sees strings
    assert "resilient_http.Deadline" in used  # and imports
    undocumented = sorted(
        name
        for name in used
        if not (
            name.removeprefix("resilient_http.") in resilient_http.__all__
            or re.search(rf"`{re.escape(name)}[`(]", documented)
        )
    )
    assert undocumented == []
