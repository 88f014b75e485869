"""Users and Orders as real server processes on loopback, for benchmarks and e2e tests.

Each service is its own process (``runserver`` or gunicorn with threads) on a free port;
``simulate_outage`` runs as yet another ``manage.py`` process against the shared database.
With ``proxy=True`` the fault proxy (``manage.py fault_proxy``, the transport faults) sits
between Orders and Users, as in ``make run``; without it (the benchmarks) Orders calls
Users directly, so the proxy never colours a figure. With ``front=True`` each gunicorn runs
behind its own nginx, configured as ``make serve`` configures it (``project/front.py``), and
Orders calls Users through Users' nginx. Each process is its own process
group, stopped as a whole: no gunicorn worker or reloader child outlives a test. A server
still running when the interpreter exits (an exception nobody caught, SIGTERM or SIGHUP once
``stop_on_signals()`` is installed) is stopped at exit as well.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from project.front import front_command
from project.servers import SERVERS, server_command

ROOT = Path(__file__).resolve().parent.parent
USERS_LINE = re.compile(
    r"^(?P<at>\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\.\d{3}) \w+ - "
    r'"GET /users/(?P<id>\d+)\?fromService=order HTTP/1\.1" (?P<status>\d{3})'
    r"(?: \d+ \[(?P<request_id>[\w.:-]+)\])?"
)
#: The same request in gunicorn's access log (``project.servers.ACCESS_LOG_FORMAT``).
USERS_GUNICORN_LINE = re.compile(
    r"^\[(?P<at>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) [+-]\d{4}\] "
    r'"GET /users/(?P<id>\d+)\?fromService=order HTTP/1\.1" (?P<status>\d{3})'
    r"(?: \S+ \[(?P<request_id>[\w.:-]+)\])?"
)
#: Every server started here and not yet stopped: ``stop_running()`` ends them at exit.
_running: set[Service] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_by(argv: list[str], app: str) -> list[str]:
    """``server_command``'s argv, serving ``app`` (a module such as ``bench.tutorial_wsgi``)
    instead of the project's own entry points: gunicorn loads ``app:application``, and
    runserver runs as ``python -m app`` instead of ``manage.py``."""
    swap = {"project.wsgi:application": [f"{app}:application"], "manage.py": ["-m", app]}
    served = [part for arg in argv for part in swap.get(arg, [arg])]
    if served == argv:
        raise ValueError(f"no entry point to replace in {argv}")
    return served


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll an observable state; the timeout is an outer limit, never the verdict."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.02)


def stop_running() -> None:
    """Stop every server still running (at interpreter exit: a bench that raised, or was
    told to stop, leaves nothing behind)."""
    for service in list(_running):
        with contextlib.suppress(Exception):  # at exit: stop the others all the same
            service.stop()


atexit.register(stop_running)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end this process as Ctrl-C would: ``finally`` blocks and
    ``stop_running`` run (Python's default for them is to die on the spot, servers left
    running). For a benchmark's ``main``; call it from the main thread."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)


def group_alive(group: int) -> bool:
    """Whether any process of process group ``group`` is still running (a zombie, dead
    but not yet reaped by its parent or by init, does not count)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # pgrp; state
            return True
    return False


def refuses(port: int) -> bool:
    """Whether connecting to ``port`` on loopback is refused (nothing listens there)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # the listener was closing as we connected: ask again
        return False
    return False


class Service:
    """One server process, its log in a file, restartable on the same port."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        port: int,
        server: str = "runserver",
        argv: list[str] | None = None,
        root: Path = ROOT,
        app: str | None = None,
        behind_front: bool = False,
    ) -> None:
        if server not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}, not {server!r}")
        self.name, self.env, self.port, self.server = name, env, port, server
        self.argv = argv  # another program than a server of this project (the proxy)
        self.root = root  # the project tree served: this one, or another version's (bench)
        self.app = app  # a module serving the project its own way (see ``served_by``)
        self.behind_front = behind_front  # nginx is its only caller (gunicorn's keep-alive)
        self.log_path = log_dir / f"{name}-{port}.log"
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.argv is not None:
            return self.argv
        threads = int(self.env.get("GUNICORN_THREADS", "32"))
        workers = int(self.env.get("GUNICORN_WORKERS", "1"))
        argv = server_command(
            self.server, self.port, workers=workers, threads=threads, behind_front=self.behind_front
        )
        if self.app is not None:
            argv = served_by(argv, self.app)
        return [*argv, "--noreload"] if self.server == "runserver" else argv

    def start(self) -> Service:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        _running.add(self)
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
        """Stop the whole process group: the server, and any worker or child it started."""
        if self.process is None:
            return
        _running.discard(self)
        group = self.process.pid  # start_new_session: the group's id is the leader's pid
        if self.process.poll() is None:
            # gunicorn: SIGINT is its quick shutdown (SIGTERM waits for graceful-timeout)
            quick = signal.SIGINT if self.server == "gunicorn" and not self.argv else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, quick)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # whatever of the group outlived its leader

    def kill(self) -> None:
        """``kill -9``: no shutdown, no cleanup, as a crash or the OOM killer would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pids(self) -> list[int]:
        """The process and its children (gunicorn's worker), for RSS readings."""
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        extra = [int(p) for p in children.read_text().split()] if children.exists() else []
        return [self.process.pid, *extra]

    def rss_bytes(self) -> int:
        """Resident memory of the process that serves requests (gunicorn: its worker)."""
        pid = self.pids()[-1]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {pid}")

    def log(self) -> str:
        return self.log_path.read_text()

    def user_requests(self, request_id: str | None = None) -> list[tuple[datetime, int]]:
        """(time, status) of each ``GET /users/<id>?fromService=order`` in the log
        (runserver's or gunicorn's, whose times are whole seconds); only those of one Orders
        request (its ``X-Request-ID``) if given."""
        return [(at, status) for at, status, _ in self.user_request_lines(request_id)]

    def user_request_lines(
        self, request_id: str | None = None
    ) -> list[tuple[datetime, int, str | None]]:
        """(time, status, request ID) of each Users request in the log, as above."""
        out = []
        for line in self.log().splitlines():
            if match := USERS_LINE.match(line):
                at = datetime.strptime(match["at"], "%d/%m/%Y %H:%M:%S.%f")
            elif match := USERS_GUNICORN_LINE.match(line):
                at = datetime.strptime(match["at"], "%d/%b/%Y:%H:%M:%S")
            else:
                continue
            if request_id in (None, match["request_id"]):
                out.append((at, int(match["status"]), match["request_id"]))
        return out


def base_env() -> dict[str, str]:
    """What every process here runs with: production settings, simulation allowed."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "insecure-key-for-local-processes",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OUTAGE_SIMULATION": "1",
        "PYTHONUNBUFFERED": "1",
    }


def run_manage(env: dict[str, str], *args: str, root: Path = ROOT) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


#: What the console runs: each stdin line a JSON list of ``manage.py`` arguments, each answer
#: one JSON line behind a record separator (log lines share its stdout). ``call_command``
#: parses the arguments with the command's own parser, as the CLI does.
_CONSOLE = """
import contextlib, io, json, sys
from django.core.management import call_command
for line in sys.stdin:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):  # print() too, as in ``shell -c``
            call_command(*json.loads(line), stdout=out, stderr=out)
        answer = {"ok": True, "out": out.getvalue()}
    except (Exception, SystemExit) as exc:
        answer = {"ok": False, "out": out.getvalue() + f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(chr(30) + json.dumps(answer) + chr(10))
    sys.stdout.flush()
"""


class ManageConsole:
    """``manage.py`` commands run in one long-lived process of their own.

    A fresh ``manage.py`` costs about a second of start-up (two on a busy machine); the
    fault matrix and the benchmarks set and read faults dozens of times. This is still a
    separate process on the same database, running the same commands, so the servers see
    exactly what a person's second terminal would make them see.
    """

    def __init__(self, env: dict[str, str], root: Path = ROOT) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "--no-startup", "-c", _CONSOLE],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def run(self, *args: str) -> str:
        """The command's output; ``RuntimeError`` with its output if it failed."""
        with self._lock:
            assert self._process.stdin is not None
            assert self._process.stdout is not None
            self._process.stdin.write(json.dumps(args) + "\n")
            self._process.stdin.flush()
            line = "-"
            while line and not line.startswith("\x1e"):  # skip its log lines
                line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the manage.py console exited ({self._process.poll()})")
        answer = json.loads(line[1:])
        if not answer["ok"]:
            raise RuntimeError(f"manage.py {' '.join(args)}: {answer['out']}")
        return answer["out"]

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()  # its loop ends; it exits
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def migrated_sqlite(directory: Path) -> Path:
    """A migrated, seeded SQLite file to copy for each stack: one ``migrate``, not one each."""
    path = directory / "template.sqlite3"
    if not path.exists():
        run_manage({**base_env(), "DATABASE_URL": f"sqlite:///{path}"}, "migrate", "-v0")
    return path


class Stack:
    """Users and Orders on free ports sharing one database, and ``manage.py`` beside them.

    The database is ``database_url`` or ``E2E_DATABASE_URL`` if set (migrated, any fault
    cleared), else a copy of ``template`` (from ``migrated_sqlite``), else a new SQLite file
    in ``tmp``; ``shared=False`` ignores ``E2E_DATABASE_URL`` (stacks run side by side, each
    on its own copy: four 32-thread gunicorns on one PostgreSQL outrun its 100 connections).
    ``proxy`` puts the fault proxy between Orders and Users. ``orders_app``
    serves Orders from that module instead (``bench.tutorial_wsgi``: the tutorial's client).
    ``front`` (gunicorn only) puts ``make serve``'s nginx in front of each service:
    ``users_url`` and ``orders_url`` are then nginx's, ``users.url`` and ``orders.url``
    gunicorn's.
    """

    def __init__(
        self,
        tmp: Path,
        orders_env: dict[str, str],
        server: str = "runserver",
        template: Path | None = None,
        proxy: bool = False,
        root: Path = ROOT,
        database_url: str | None = None,
        orders_app: str | None = None,
        front: bool = False,
        shared: bool = True,
    ) -> None:
        if front and (server != "gunicorn" or proxy):
            raise ValueError("the front server is make serve's: gunicorn, no fault proxy")
        self.root, self.orders_app, self.tmp = root, orders_app, tmp
        shared_url = database_url or (os.environ.get("E2E_DATABASE_URL") if shared else None)
        sqlite = tmp / "stack.sqlite3"
        self.env = {**base_env(), "DATABASE_URL": shared_url or f"sqlite:///{sqlite}"}
        if template is not None and not shared_url:
            shutil.copyfile(template, sqlite)
        self.console = ManageConsole(self.env, root)
        if template is None or shared_url:
            self.manage("migrate", "-v0")
            self.manage("simulate_outage", "clear")
        users_port = free_port()
        users_env = {**self.env, "SERVICES": "users"}
        self.users = Service(
            "users", users_env, tmp, users_port, server, root=root, behind_front=front
        )
        self.front: dict[str, Service] = {}
        if front:
            self.front["users"] = self._front_for(self.users)
        self.users_url = self.front["users"].url if front else self.users.url
        self.proxy: Service | None = None
        if proxy:
            proxy_port = free_port()
            argv = [
                *(sys.executable, "manage.py", "fault_proxy"),
                *("--listen", f"127.0.0.1:{proxy_port}", "--upstream", f"127.0.0.1:{users_port}"),
            ]
            self.proxy = Service("proxy", self.env, tmp, proxy_port, argv=argv, root=root)
        orders_env = {
            **self.env,
            "SERVICES": "orders",
            "USERS_SERVICE_URL": self.proxy.url if self.proxy else self.users_url,
            **orders_env,
        }
        self.server, self.orders_env = server, orders_env
        self.orders = Service(
            "orders",
            orders_env,
            tmp,
            free_port(),
            server,
            root=root,
            app=orders_app,
            behind_front=front,
        )
        if front:
            self.front["orders"] = self._front_for(self.orders)
        self.orders_url = self.front["orders"].url if front else self.orders.url
        self.more_orders: list[Service] = []
        self.session = requests.Session()
        try:
            self.users.start()
            if self.proxy is not None:
                self.proxy.start()
            self.orders.start()
            for service in self.front.values():
                service.start()
        except BaseException:
            self.stop()  # what did start, and the console: nothing outlives a failed start
            raise

    def _front_for(self, service: Service) -> Service:
        """nginx on a free port in front of ``service``, its files in this stack's ``tmp``."""
        port = free_port()
        argv = front_command(
            service.name,
            listen=f"127.0.0.1:{port}",
            backends=[f"127.0.0.1:{service.port}"],
            runtime_root=self.tmp,
        )
        return Service(f"{service.name}-nginx", self.env, self.tmp, port, argv=argv)

    def add_orders(self, server: str | None = None, **env: str) -> Service:
        """Another Orders instance on its own port, on the same database and Users."""
        env = {**self.orders_env, **env}
        service = Service(
            "orders",
            env,
            self.tmp,
            free_port(),
            server or self.server,
            root=self.root,
            app=self.orders_app,
        )
        self.more_orders.append(service.start())
        return service

    def manage(self, *args: str) -> str:
        """``manage.py ARGS`` against this stack's database; its output."""
        return self.console.run(*args)

    def get_orders(self, user_id: int = 1) -> tuple[requests.Response, float]:
        started = time.monotonic()
        response = self.session.get(
            f"{self.orders_url}/orders/", params={"user_id": user_id}, timeout=60
        )
        return response, time.monotonic() - started

    def hits(self) -> int:
        """How many Users requests the current fault has hit (its own counter)."""
        match = re.search(r"(\d+) request\(s\) hit", self.manage("simulate_outage", "status"))
        return int(match[1]) if match else 0

    def proxy_settle(self, *, down: bool) -> None:
        """Wait until the proxy refuses connections (``down``) or accepts them again: it
        polls the fault, so it follows ``simulate_outage down`` / ``clear`` a moment later.
        """
        if self.proxy is None:
            raise RuntimeError("this stack has no fault proxy")
        port = self.proxy.port
        what = "the fault proxy to refuse connections" if down else "the fault proxy to listen"
        wait_until(lambda: refuses(port) == down, what)

    def stop(self) -> None:
        """Stop everything, each part even if stopping another raised (then re-raised)."""
        with contextlib.ExitStack() as stopping:  # callbacks run last-in first-out
            stopping.callback(self.users.stop)
            if self.proxy is not None:
                stopping.callback(self.proxy.stop)
            stopping.callback(self.orders.stop)
            for service in self.front.values():
                stopping.callback(service.stop)
            for service in self.more_orders:
                stopping.callback(service.stop)
            stopping.callback(self.console.close)
            stopping.callback(self.session.close)


def smoke_or_full(doc: str, figures: Path) -> tuple[bool, Path]:
    """The command line of a benchmark with ``--smoke`` and ``--out``: (smoke?, where its
    figures go: ``--out``, else bench/out/<name>_smoke.json for a smoke run, else
    ``figures``). Stops every process it starts on SIGTERM and SIGHUP too."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: seconds")
    parser.add_argument("--out", type=Path, help=f"the figures (default {figures.name})")
    args = parser.parse_args()
    stop_on_signals()
    smoke_out = figures.with_name("out") / f"{figures.stem}_smoke.json"
    return args.smoke, args.out or (smoke_out if args.smoke else figures)


def write_figures(out: Path, results: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
