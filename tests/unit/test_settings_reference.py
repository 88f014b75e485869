"""docs/reference/settings.md is generated from the code, and says something of each."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from resilient_http.config import UpstreamConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "settings.md"


def test_the_settings_reference_is_what_the_code_generates():
    done = subprocess.run(
        [sys.executable, "scripts/settings_reference.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_setting_is_described():
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("| `")]
    assert len(rows) > 40
    for row in rows:
        assert row.rstrip(" |").split("|")[-1].strip(), f"no description: {row}"
    for field in dataclasses.fields(UpstreamConfig):
        if field.name != "name":
            assert f"| `{field.name}` |" in PAGE.read_text(), field.name
            assert f"`USERS_{field.name.upper()}`" in PAGE.read_text() or field.name == "base_url"
