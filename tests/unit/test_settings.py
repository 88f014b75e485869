"""Settings from the environment: typed, validated, named in errors, documented."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.env import env_bool, upstream_settings
from resilient_http import UpstreamConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_upstream_knob_is_read_from_its_variable(monkeypatch):
    monkeypatch.setenv("USERS_RETRIES", "5")
    monkeypatch.setenv("USERS_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("USERS_BACKOFF_JITTER", "0")
    monkeypatch.setenv("USERS_SERVICE_URL", "http://users.internal:9000")
    config = UpstreamConfig(**upstream_settings("USERS", base_url="http://x"))
    assert (config.retries, config.backoff_factor, config.backoff_jitter) == (5, 1.0, False)
    assert config.base_url == "http://users.internal:9000"


def test_unset_variables_keep_the_dataclass_defaults(monkeypatch):
    for field in dataclasses.fields(UpstreamConfig):
        monkeypatch.delenv(f"USERS_{field.name.upper()}", raising=False)
    monkeypatch.delenv("USERS_SERVICE_URL", raising=False)
    assert UpstreamConfig(**upstream_settings("USERS", base_url="http://x")) == UpstreamConfig(
        name="users", base_url="http://x"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USERS_RETRIES", "many"),
        ("USERS_DEADLINE", "soon"),
        ("USERS_DEADLINE", "inf"),
        ("USERS_READ_TIMEOUT", "nan"),
        ("USERS_BREAKER", "maybe"),
    ],
)
def test_a_malformed_value_names_its_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        upstream_settings("USERS", base_url="http://x")


def test_an_unknown_balancer_is_refused_at_start_up(monkeypatch):
    monkeypatch.setenv("USERS_BALANCER", "fastest")
    with pytest.raises(ImproperlyConfigured, match="balancer='fastest'"):
        upstream_settings("USERS", base_url="http://x")


def test_an_out_of_range_value_is_refused_at_start_up(monkeypatch):
    monkeypatch.setenv("USERS_DEADLINE", "-1")
    with pytest.raises(ImproperlyConfigured, match="deadline"):
        upstream_settings("USERS", base_url="http://x")


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("on", True), ("0", False), ("", False)]
)
def test_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG", not expected) is expected


def test_the_settings_reference_documents_every_upstream_variable():
    text = (README.parent / "docs" / "reference" / "settings.md").read_text()
    for field in dataclasses.fields(UpstreamConfig):
        if field.name not in ("name", "base_url"):
            assert f"`USERS_{field.name.upper()}`" in text, field.name


def _settings_value(env: dict[str, str], name: str) -> subprocess.CompletedProcess[str]:
    """Import the real settings module in a fresh interpreter with ``env`` set."""
    return subprocess.run(
        [sys.executable, "-c", f"import project.settings as s; print(s.{name})"],
        cwd=README.parent,
        env={**os.environ, "DJANGO_SECRET_KEY": "x", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_lock_timeout_defaults_above_the_users_deadline():
    done = _settings_value({"USERS_DEADLINE": "7"}, "IDEMPOTENCY_LOCK_TIMEOUT")
    assert done.stdout.strip() == "12.0", done.stderr


@pytest.mark.parametrize("raw", ["0", "-3", "soon"])
def test_a_bad_lock_timeout_is_refused_by_name(raw):
    done = _settings_value({"IDEMPOTENCY_LOCK_TIMEOUT": raw}, "IDEMPOTENCY_LOCK_TIMEOUT")
    assert done.returncode != 0
    assert "IDEMPOTENCY_LOCK_TIMEOUT" in done.stderr
