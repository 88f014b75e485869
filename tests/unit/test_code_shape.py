"""The resilience layer stays readable: no function over 40 lines (ruff's C901 keeps each
at cyclomatic complexity 10 or less, configured in pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "resilient_http"
MOST_LINES = 40


def test_no_function_in_the_resilience_layer_is_over_40_lines():
    checked, too_long = 0, []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                checked += 1
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MOST_LINES:
                    too_long.append(f"{path.name}:{node.lineno} {node.name}: {lines} lines")
    assert checked > 100  # the package was found and read
    assert too_long == []
