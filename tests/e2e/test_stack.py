"""bench/stack.py's processes: stopping one stops everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import pytest

from bench.stack import (
    ROOT,
    Service,
    Stack,
    base_env,
    free_port,
    group_alive,
    refuses,
    wait_until,
)

pytestmark = pytest.mark.e2e

# A parent that starts a server of its own and then just waits: what gunicorn's master and
# worker, or runserver's reloader and its child, look like from outside.
PARENT = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-m', 'http.server', sys.argv[1], '--bind', '127.0.0.1'],"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    "time.sleep(300)"
)


def test_stop_ends_the_whole_process_group_children_included(tmp_path):
    port = free_port()
    argv = [sys.executable, "-c", PARENT, str(port)]
    service = Service("parent", base_env(), tmp_path, port, argv=argv).start()
    service.stop()
    # The child served the port; with the parent alone signalled it would serve on.
    wait_until(lambda: refuses(port), "the child's port to close")


def _groups(stack: Stack) -> dict[str, int]:
    """Each server's process group (start_new_session: the leader's pid)."""
    services = [stack.users, stack.orders, *([stack.proxy] if stack.proxy else [])]
    return {s.name: s.process.pid for s in services if s.process is not None}


def _none_alive(groups: dict[str, int]) -> None:
    for name, group in groups.items():
        wait_until(lambda g=group: not group_alive(g), f"{name}'s process group to end")


def test_a_gunicorn_stack_stops_as_whole_process_groups(tmp_path, sqlite_template):
    """Master and worker of both services: none survives ``stop``."""
    stack = Stack(tmp_path, {}, "gunicorn", sqlite_template, proxy=True)
    try:
        groups = _groups(stack)
        # the master listens before it forks its worker: wait for the worker
        wait_until(lambda: len(stack.orders.pids()) == 2, "gunicorn's worker")
        assert all(group_alive(g) for g in groups.values())
    finally:
        stack.stop()
    _none_alive(groups)


def test_stop_ends_a_worker_orphaned_by_its_killed_master(tmp_path, sqlite_template):
    """The master killed with SIGKILL, the worker stuck (SIGSTOP: it cannot notice and
    leave by itself): ``stop`` still ends it, by its process group."""
    stack = Stack(tmp_path, {}, "gunicorn", sqlite_template)
    try:
        groups = _groups(stack)
        wait_until(lambda: len(stack.orders.pids()) == 2, "gunicorn's worker")
        _master, worker = stack.orders.pids()
        os.kill(worker, signal.SIGSTOP)
        stack.orders.kill()
        assert group_alive(groups["orders"])  # the orphan, reparented, still in the group
    finally:
        stack.stop()
    _none_alive(groups)


BENCH = """
import sys, tempfile, time
from pathlib import Path
from bench.stack import Stack, stop_on_signals
stop_on_signals()
stack = Stack(Path(tempfile.mkdtemp()), {}, "gunicorn", Path(sys.argv[1]))
print(stack.users.process.pid, stack.orders.process.pid, flush=True)
time.sleep(120)  # a benchmark at work, until it is told to stop
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_benchmark_told_to_stop_leaves_no_server_running(tmp_path, sqlite_template, signum):
    """``kill`` (or a closed terminal) on a benchmark: its servers stop with it."""
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH, str(sqlite_template)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=base_env(),
    )
    groups: dict[str, int] = {}
    try:
        assert bench.stdout is not None
        users, orders = (int(pid) for pid in bench.stdout.readline().split())
        groups = {"users": users, "orders": orders}
        bench.send_signal(signum)
        bench.wait(timeout=60)
        _none_alive(groups)
    finally:
        bench.kill()
        bench.wait()
        for group in groups.values():  # whatever the test found alive: not left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
