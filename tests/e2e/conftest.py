"""Real processes: Users and Orders each a ``manage.py runserver``, sharing one database.

``simulate_outage`` runs as a separate ``manage.py`` process too, so these tests prove
what the README promises: a fault set from one process changes a running server.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
USERS_LINE = re.compile(
    r"^(?P<at>\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\.\d{3}) \w+ - "
    r'"GET /users/(?P<id>\d+)\?fromService=order HTTP/1\.1" (?P<status>\d{3})'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One ``runserver`` process, its log in a file, restartable on the same port."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, port: int) -> None:
        self.name, self.env, self.port = name, env, port
        self.log_path = log_dir / f"{name}-{port}.log"
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text()

    def user_requests(self) -> list[tuple[datetime, int]]:
        """(time, status) of each ``GET /users/<id>?fromService=order`` in the access log."""
        out = []
        for line in self.log().splitlines():
            if match := USERS_LINE.match(line):
                at = datetime.strptime(match["at"], "%d/%m/%Y %H:%M:%S.%f")
                out.append((at, int(match["status"])))
        return out


class Stack:
    """Users and Orders processes on free ports, and a way to run ``manage.py``."""

    def __init__(self, tmp: Path, orders_env: dict[str, str]) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "insecure-key-for-e2e-tests",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "OUTAGE_SIMULATION": "1",
            "DATABASE_URL": os.environ.get("E2E_DATABASE_URL", f"sqlite:///{tmp / 'e2e.sqlite3'}"),
            "PYTHONUNBUFFERED": "1",
        }
        self.manage("migrate", "-v0")
        self.manage("simulate_outage", "clear")
        users_port = free_port()
        self.users = Service("users", {**self.env, "SERVICES": "users"}, tmp, users_port)
        self.orders = Service(
            "orders",
            {
                **self.env,
                "SERVICES": "orders",
                "USERS_SERVICE_URL": f"http://127.0.0.1:{users_port}",
                **orders_env,
            },
            tmp,
            free_port(),
        )
        self.users.start()
        self.orders.start()
        self.session = requests.Session()

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def get_orders(self, user_id: int = 1) -> tuple[requests.Response, float]:
        started = time.monotonic()
        response = self.session.get(
            f"{self.orders.url}/orders/", params={"user_id": user_id}, timeout=30
        )
        return response, time.monotonic() - started

    def hits(self) -> int:
        match = re.search(r"(\d+) request\(s\) hit", self.manage("simulate_outage", "status"))
        return int(match[1]) if match else 0

    def stop(self) -> None:
        self.session.close()
        self.orders.stop()
        self.users.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[callable]:
    """``stack(USERS_RETRIES="5", ...)``: start both services, Orders with that environment."""
    started: list[Stack] = []

    def start(**orders_env: str) -> Stack:
        s = Stack(tmp_path, orders_env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
