"""``make run``'s launcher (scripts/run_services.py) as a person meets it: a port already
taken, a fault left over from an earlier run, the fault proxy between Orders and Users.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from bench.stack import ROOT, free_port, refuses, run_manage, wait_until

pytestmark = pytest.mark.e2e

SCRIPT = str(ROOT / "scripts" / "run_services.py")
PATIENCE = 90.0  # outer limit for servers to start on a busy machine; never the verdict


def argv(users: int, orders: int, proxy: int) -> list[str]:
    ports = ("--users-port", str(users), "--orders-port", str(orders), "--proxy-port", str(proxy))
    return [sys.executable, SCRIPT, *ports]


def launcher_env(tmp_path: Path, template: Path) -> dict[str, str]:
    """What ``make run`` gets from a fresh shell: nothing of ours exported, own database."""
    database = tmp_path / "run.sqlite3"
    shutil.copyfile(template, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "USERS_"))}
    env.pop("OUTAGE_SIMULATION", None)
    return {**env, "DATABASE_URL": f"sqlite:///{database}", "PYTHONUNBUFFERED": "1"}


def refused_in_one_line(command: list[str], env: dict[str, str]) -> str:
    """Run the launcher expecting a refusal: exit 1, no banner, one line on stderr; that line."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 1
    assert done.stdout == ""  # no banner, no server started
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_make_serve_without_a_secret_key_is_one_line_and_exit_1(tmp_path, sqlite_template):
    """Production settings (gunicorn) refuse to start without DJANGO_SECRET_KEY: one line."""
    env = launcher_env(tmp_path, sqlite_template)
    line = refused_in_one_line(
        [*argv(free_port(), free_port(), free_port()), "--server", "gunicorn"], env
    )
    assert "DJANGO_SECRET_KEY is required" in line


def test_a_taken_port_is_one_line_and_exit_1_before_anything_starts(tmp_path, sqlite_template):
    env = launcher_env(tmp_path, sqlite_template)
    users, proxy = free_port(), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        orders = taken.getsockname()[1]
        line = refused_in_one_line(argv(users, orders, proxy), env)
    assert line.startswith(f"Port {orders} (orders) on 127.0.0.1 is already in use")
    assert refuses(users)
    assert refuses(proxy)


def test_banner_after_all_accept_a_leftover_fault_is_named_and_the_proxy_serves_it(
    tmp_path, sqlite_template
):
    env = launcher_env(tmp_path, sqlite_template)
    run_manage({**env, "DJANGO_DEBUG": "1"}, "simulate_outage", "down", "--for", "600")
    users, orders, proxy = free_port(), free_port(), free_port()
    launcher = subprocess.Popen(
        argv(users, orders, proxy),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in launcher.stdout], daemon=True).start()

    def next_line_with(text: str) -> str:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert launcher.poll() is None, "the launcher exited"
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}")

    try:
        banner = next_line_with("Ctrl-C stops all three")
        # At the banner, every server is up; the proxy refuses: the leftover `down`.
        assert not refuses(users)
        assert not refuses(orders)
        assert refuses(proxy)
        assert f"fault proxy on http://127.0.0.1:{proxy}" in banner
        assert "Simulated outage active: down" in next_line_with("Still set from before")
        assert "simulate_outage clear" in next_line_with("End it with: ")

        answer = requests.get(f"http://127.0.0.1:{orders}/orders/", {"user_id": 1}, timeout=30)
        assert (answer.status_code, answer.json()["code"]) == (503, "users_unavailable")
        run_manage({**env, "DJANGO_DEBUG": "1"}, "simulate_outage", "clear")
        wait_until(lambda: not refuses(proxy), "the proxy to listen again", PATIENCE)
        answer = requests.get(f"http://127.0.0.1:{orders}/orders/", {"user_id": 1}, timeout=30)
        assert answer.status_code == 200  # Orders -> proxy -> Users
        assert requests.get(f"http://127.0.0.1:{users}/users/1", timeout=30).ok  # direct
    finally:
        os.killpg(launcher.pid, signal.SIGTERM)
        launcher.wait(timeout=PATIENCE)
    assert all(refuses(port) for port in (users, orders, proxy))  # nothing left behind
