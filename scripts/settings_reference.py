"""Writes docs/reference/settings.md from the code: ``UpstreamConfig``'s fields and their
docstrings (the library), and every ``env_*("NAME", default)`` read in project/settings.py
with the comment above it (the demo services). ``--check`` fails if the file is stale;
tests/unit/test_settings_reference.py runs it, so the reference cannot drift from the code.

    .venv/bin/python scripts/settings_reference.py          # rewrite it
    .venv/bin/python scripts/settings_reference.py --check  # exit 1 if it differs
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resilient_http.config import PROBLEM_TYPE_BASE, UpstreamConfig  # noqa: E402

OUT = ROOT / "docs" / "reference" / "settings.md"
SETTINGS = ROOT / "project" / "settings.py"
READERS = {"env_bool", "env_int", "env_float", "env_str", "env_list"}
#: Read by a library rather than by an ``env_*`` call.
OTHER_VARIABLES = [
    (
        "DATABASE_URL",
        "`sqlite:///db.sqlite3`",
        "The database, as a URL (dj-database-url): `postgres://user:pass@host:5432/name`.",
    ),
]


def _one_line(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split()).replace("|", "\\|")


def field_docs() -> dict[str, str]:
    """Each ``UpstreamConfig`` field's attribute docstring (the string right after it)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(UpstreamConfig)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
        ):
            docs[node.target.id] = _one_line(str(after.value.value))
    return docs


def _default(field: dataclasses.Field[object]) -> str:
    if field.default is dataclasses.MISSING:
        return "required"
    value = field.default
    if isinstance(value, frozenset):
        return "`" + ",".join(str(v) for v in sorted(value)) + "`"
    return f"`{value!r}`"


def library_rows() -> list[str]:
    docs = field_docs()
    rows = ["| key | default | demo variable (`users`) | what it does |", "|---|---|---|---|"]
    for field in dataclasses.fields(UpstreamConfig):
        if field.name == "name":
            continue
        variable = (
            "USERS_SERVICE_URL" if field.name == "base_url" else f"USERS_{field.name.upper()}"
        )
        rows.append(f"| `{field.name}` | {_default(field)} | `{variable}` | {docs[field.name]} |")
    return rows


def _comment_above(lines: list[str], lineno: int) -> str:
    """The comment block right above line ``lineno`` (1-based), or the call line's own."""
    block: list[str] = []
    at = lineno - 2
    while at >= 0 and lines[at].lstrip().startswith("#"):
        block.insert(0, lines[at].lstrip().lstrip("#:").strip())
        at -= 1
    if not block and "#" in lines[lineno - 1]:
        block = [lines[lineno - 1].split("#", 1)[1].strip()]
    return " ".join(block)


def demo_rows() -> list[str]:
    source = SETTINGS.read_text()
    lines = source.splitlines()
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for statement in ast.parse(source).body:
        for node in ast.walk(statement):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in READERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                continue
            default = ast.get_source_segment(source, node.args[1]) if len(node.args) > 1 else ""
            about = _comment_above(lines, statement.lineno) or _comment_above(lines, node.lineno)
            rows.append(f"| `{node.args[0].value}` | `{default}` | {_one_line(about)} |")
    rows += [f"| `{name}` | {default} | {about} |" for name, default, about in OTHER_VARIABLES]
    return rows


def render() -> str:
    return "\n".join(
        [
            "# Settings",
            "",
            "Generated from the code by `scripts/settings_reference.py` (do not edit: run it);",
            "`tests/unit/test_settings_reference.py` fails when this page and the code differ.",
            "",
            "## `UPSTREAMS`: one entry per upstream",
            "",
            'A Django setting: `UPSTREAMS = {"payments": {"base_url": "http://127.0.0.1:8300"}}`.',
            "Each entry's keys are the fields of `resilient_http.UpstreamConfig` (the same object",
            'without Django: `UpstreamConfig(name="payments", base_url=...)`). Times are seconds;',
            "every key but `base_url` has the default shown. `manage.py check` refuses an unknown",
            "key or a bad value (`resilient_http.E001`-`E004`). The demo reads each key of",
            "its `users` upstream from the variable shown (`project.env.upstream_settings`).",
            "",
            *library_rows(),
            "",
            "## Other library settings",
            "",
            "| setting | default | what it does |",
            "|---|---|---|",
            f"| `PROBLEM_TYPE_BASE` | `{PROBLEM_TYPE_BASE}` | The RFC 9457 `type` of a problem"
            " with a stable `code` is this prefix + the code. |",
            "",
            "## The demo services: environment variables",
            "",
            "Read once, at start-up, by `project/settings.py`; a bad value names its variable",
            "and stops the process. `make run` and `make serve` also take `USERS_PORT`,",
            "`ORDERS_PORT`, `PROXY_PORT` and `USERS_REPLICAS` on their command line.",
            "",
            *demo_rows(),
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run scripts/settings_reference.py")
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
