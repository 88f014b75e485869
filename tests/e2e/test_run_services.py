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


def free_replica_ports(replicas: int) -> int:
    """A first port whose replica ports (``+10`` each, as the launcher counts) are all free."""
    for _ in range(100):
        first = free_port()
        ports = [first + 10 * i for i in range(replicas)]
        if all(port <= 65535 and not port_in_use(port) for port in ports):
            return first
    raise AssertionError("no free run of replica ports")


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_three_replicas_each_behind_its_own_proxy_and_a_fault_for_replica_2_hits_only_it(
    tmp_path, sqlite_template
):
    env = launcher_env(tmp_path, sqlite_template)
    manage_env = {**env, "DJANGO_DEBUG": "1"}
    users, proxy, orders = free_replica_ports(3), free_replica_ports(3), free_port()
    users_ports, proxy_ports = [users, users + 10, users + 20], [proxy, proxy + 10, proxy + 20]
    launcher = subprocess.Popen(
        [*argv(users, orders, proxy), "--users-replicas", "3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(launcher.stdout), daemon=True).start()

    def logged(prefix: str, request_id: str) -> bool:
        return any(line.startswith(prefix) and request_id in line for line in list(output))

    def get(port: int, request_id: str) -> requests.Response:
        headers = {"X-Request-ID": request_id}
        return requests.get(f"http://127.0.0.1:{port}/users/1", headers=headers, timeout=30)

    try:
        wait_until(
            lambda: any("Ctrl-C stops all 7" in line for line in list(output)),
            "the banner",
            PATIENCE,
        )
        state = requests.get(f"http://127.0.0.1:{orders}/resilience/state.json", timeout=30)
        assert state.json()["replicas"] == 3
        assert state.json()["upstreams"][0]["base_url"] == ",".join(
            f"http://127.0.0.1:{port}" for port in proxy_ports
        )
        for i, port in enumerate(proxy_ports, 1):  # proxy i forwards to replica i
            assert get(port, f"route-{i}").status_code == 200
            wait_until(lambda i=i: logged(f"[users{i}] ", f"route-{i}"), "the log", PATIENCE)
        assert not any(logged(f"[users{i}] ", "route-2") for i in (1, 3))

        run_manage(manage_env, "simulate_outage", "--replica", "2", "error", "--status", "503")
        answers = [get(port, f"error-{i}").status_code for i, port in enumerate(proxy_ports)]
        assert answers == [200, 503, 200]
        assert [get(port, "direct").status_code for port in users_ports] == [200, 503, 200]

        run_manage(manage_env, "simulate_outage", "--replica", "2", "down")
        assert [refuses(port) for port in proxy_ports] == [False, True, False]
        assert get(users_ports[1], "direct-down").status_code == 200  # its own port: healthy
        status = run_manage(manage_env, "simulate_outage", "status")
        assert status.startswith("Replica 2: Simulated outage active: down")

        run_manage(manage_env, "simulate_outage", "clear")
        assert [get(port, "healed").status_code for port in proxy_ports] == [200, 200, 200]
    finally:
        os.killpg(launcher.pid, signal.SIGTERM)
        launcher.wait(timeout=PATIENCE)
    prefixes = {line.split("]", 1)[0] + "]" for line in output if line.startswith("[")}
    expected = {f"[{kind}{i}]" for kind in ("users", "proxy") for i in (1, 2, 3)} | {"[orders]"}
    assert expected <= prefixes
    assert all(refuses(port) for port in (*users_ports, *proxy_ports, orders))


def test_a_taken_replica_port_is_one_line_before_anything_starts(tmp_path, sqlite_template):
    env = launcher_env(tmp_path, sqlite_template)
    users, proxy, orders = free_replica_ports(3), free_replica_ports(3), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", proxy + 20))
        taken.listen()
        line = refused_in_one_line([*argv(users, orders, proxy), "--users-replicas", "3"], env)
    assert line.startswith(f"Port {proxy + 20} (proxy3) on 127.0.0.1 is already in use")
    assert "make run PROXY_PORT=<port>" in line
    assert all(refuses(port) for port in (users, users + 10, users + 20, orders, proxy))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--users-replicas", "0"], "--users-replicas must be 1..99; got 0"),
        (["--users-replicas", "3", "--users-port", "65530"], "The ports must be 1..65535"),
    ],
)
def test_impossible_replica_settings_are_one_line(tmp_path, sqlite_template, extra, message):
    env = launcher_env(tmp_path, sqlite_template)
    command = [*argv(free_port(), free_port(), free_port()), *extra]
    assert refused_in_one_line(command, env).startswith(message)
