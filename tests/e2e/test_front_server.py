"""``make serve``'s launcher starts nginx in front of each gunicorn, and stops all of it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from bench.stack import ROOT, free_port, refuses
from project.front import nginx_binary
from tests.e2e.test_run_services import PATIENCE, argv, launcher_env

pytestmark = pytest.mark.e2e


def nginx_prefixes(port: int) -> set[Path]:
    """The runtime directories (``-p``) of running nginx processes fronting ``port``."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            # nginx rewrites its title ("nginx: master process ..."): spaces, not NULs
            args = cmdline.read_bytes().decode().replace("\0", " ").split()
        except OSError:  # ended while we looked
            continue
        if "-p" in args and args[args.index("-p") + 1].endswith(f"-{port}"):
            found.add(Path(args[args.index("-p") + 1]))
    return found


def test_make_serve_runs_nginx_in_front_of_gunicorn_and_stops_it(tmp_path, sqlite_template):
    """The public ports are nginx's, Orders reaches Users through it, and Ctrl-C (SIGTERM
    here) leaves no nginx, no gunicorn and no runtime directory behind."""
    try:
        nginx_binary()
    except FileNotFoundError:
        pytest.skip("nginx is not installed (make nginx, as root)")
    env = {**launcher_env(tmp_path, sqlite_template), "DJANGO_SECRET_KEY": "k" * 50}
    users, orders = free_port(), free_port()
    launcher = subprocess.Popen(
        [*argv(users, orders, free_port()), "--server", "gunicorn"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in launcher.stdout], daemon=True).start()
    try:
        while "nginx in front of gunicorn" not in lines.get(timeout=PATIENCE):  # the banner
            assert launcher.poll() is None, "the launcher exited"
        answer = requests.get(f"http://127.0.0.1:{orders}/orders/?user_id=1", timeout=30)
        assert (answer.status_code, answer.headers["Server"]) == (200, "nginx")
        assert (
            requests.get(f"http://127.0.0.1:{users}/healthz", timeout=30).headers["Server"]
            == "nginx"
        )
        runtimes = nginx_prefixes(users) | nginx_prefixes(orders)
        assert len(runtimes) == 2
        assert all((runtime / "nginx.pid").exists() for runtime in runtimes)
    finally:
        os.killpg(launcher.pid, signal.SIGTERM)
        launcher.wait(timeout=PATIENCE)
    assert refuses(users)
    assert refuses(orders)
    assert not nginx_prefixes(users) | nginx_prefixes(orders)
    assert not any(runtime.exists() for runtime in runtimes)
