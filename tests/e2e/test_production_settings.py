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


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a user sees: exactly one line on stderr, and no traceback."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_missing_secret_key_is_a_clear_error_not_a_traceback_hunt():
    assert "DJANGO_SECRET_KEY is required" in one_line_error(manage("check"))


def test_a_malformed_setting_names_its_variable():
    line = one_line_error(manage("check", DJANGO_DEBUG="1", USERS_DEADLINE="soon"))
    assert "USERS_DEADLINE must be a finite number" in line


@pytest.mark.parametrize("urls", ["http://a:8200,,http://b:8200", "http://a:8200,a:8201"])
def test_a_malformed_list_of_replicas_is_one_line_at_start_up(urls):
    line = one_line_error(manage("check", DJANGO_DEBUG="1", USERS_SERVICE_URL=urls))
    assert line.startswith("ImproperlyConfigured: USERS_SERVICE_URL: not a base URL")


def test_a_database_that_is_not_there_is_one_line(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    line = one_line_error(manage("simulate_outage", "status", DJANGO_DEBUG="1", DATABASE_URL=empty))
    assert "no such table" in line
    assert "migrate" in line


def test_manage_py_in_a_fresh_shell_runs_with_development_settings(tmp_path):
    """No DJANGO_* variable exported: the docs' ``manage.py`` commands just work."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OUTAGE_"))}
    db = {"DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}"}
    for args in (["migrate", "-v0"], ["simulate_outage", "fail-next", "2"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**clean, **db},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert "fail-next, 2 more request(s)" in done.stdout


def test_gunicorn_without_a_secret_key_stops_with_one_line():
    """Production stays strict: the WSGI entry point refuses, once, and gunicorn stops."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "project.wsgi:application", "--bind", "127.0.0.1:0"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ImproperlyConfigured" in line]
    assert errors == [errors[0]]
    assert "DJANGO_SECRET_KEY is required" in errors[0]
    assert "App failed to load" in done.stderr  # the arbiter stopped: no respawn loop


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


def test_a_key_ttl_shorter_than_the_lock_timeout_is_refused():
    """A key that expires while its request still runs would let a retry create a second
    order: refused at start-up, naming both settings."""
    line = one_line_error(manage("check", DJANGO_DEBUG="1", IDEMPOTENCY_KEY_TTL="5"))
    assert "IDEMPOTENCY_KEY_TTL (5 s) must exceed IDEMPOTENCY_LOCK_TIMEOUT" in line
