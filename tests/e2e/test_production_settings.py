"""Production settings, checked the way a deploy would: in a fresh process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from bench.stack import ROOT

pytestmark = pytest.mark.e2e


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "project.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_deploy_passes_for_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING",
                  DJANGO_SECRET_KEY=secrets.token_urlsafe(50))  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_check_deploy_fails_on_a_weak_secret_key():
    done = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY="short")  # noqa: S106
    assert done.returncode != 0
    assert "security.W009" in done.stderr


def test_a_missing_secret_key_is_a_clear_error_not_a_traceback_hunt():
    done = manage("check")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in done.stderr


def test_a_malformed_setting_names_its_variable():
    done = manage("check", DJANGO_DEBUG="1", USERS_DEADLINE="soon")
    assert done.returncode != 0
    assert "USERS_DEADLINE must be a finite number" in done.stderr


@pytest.mark.parametrize(
    ("service", "present", "absent"),
    [("users", "/users/{user_id}", "/orders/"), ("orders", "/orders/", "/users/{user_id}")],
)
def test_each_service_documents_only_its_own_api(tmp_path, service, present, absent):
    out = tmp_path / "schema.yaml"
    done = manage("spectacular", "--file", str(out), DJANGO_DEBUG="1", SERVICES=service)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert f"  {present}:" in text
    assert f"  {absent}:" not in text
