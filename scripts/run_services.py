"""Run Users, Orders and the fault proxy side by side, logs interleaved with a prefix;
Ctrl-C stops them all.

Topology: Users on :8200 (reachable directly), the fault proxy (``manage.py fault_proxy``,
the transport faults of ``simulate_outage``) on :8202 forwarding to it, and Orders on :8201
calling Users through the proxy (``USERS_SERVICE_URL``, unless set). ``--server gunicorn``
(``make serve``) runs the services under gunicorn with threads, sized by
``GUNICORN_WORKERS`` and ``GUNICORN_THREADS``, with production settings, and without the
proxy unless ``FAULT_PROXY=1``, each gunicorn on a loopback port of its own behind nginx
(``project/front.py``) on the service's public port.

``--users-replicas N`` (``make run USERS_REPLICAS=3``) starts N Users replicas sharing the
database, each with its own fault proxy: replica i on ``users_port + 10*(i-1)``, its proxy
on ``proxy_port + 10*(i-1)``, Orders calling all of them (a comma-separated
``USERS_SERVICE_URL``). Each knows its number (``USERS_REPLICA``, ``fault_proxy --replica``),
so ``simulate_outage --replica 2 ...`` faults replica 2 alone. Logs are prefixed ``[users1]``,
``[proxy1]``, ...; with one replica, as ever, ``[users ]`` and ``[proxy ]``.

Every port is checked before anything starts (a second ``make run`` says so in one line),
and the banner comes once every server accepts connections.

A shell's ``a & b & wait`` is not enough: background jobs of a non-interactive shell
ignore SIGINT, so Ctrl-C would leave both servers running. This launcher owns its
children: any signal, or any of them exiting, stops the others.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.front import (  # noqa: E402 - after the path is set
    MAX_BODY_BYTES,
    front_command,
    nginx_binary,
)
from project.servers import SERVERS, server_command  # noqa: E402

#: What the fault proxy logs once it has read the fault: listening, or refusing (``down``).
PROXY_READY = (b"fault proxy ", b" listening, forwarding to ", b" not listening: ")


#: Replica i's ports are the first replica's plus this times (i - 1): 8200, 8210, 8220.
REPLICA_PORT_STEP = 10


def whole_number(raw: str) -> int:
    """ASCII digits only: ``int()`` alone also takes '١٢'."""
    if not (raw.isascii() and raw.isdigit()):
        raise argparse.ArgumentTypeError(f"invalid int value: {raw!r}")
    return int(raw)


def replica_ports(first: int, replicas: int) -> list[int]:
    return [first + REPLICA_PORT_STEP * i for i in range(replicas)]


def pipe(
    prefix: str, process: subprocess.Popen[bytes], ready: threading.Event | None = None
) -> None:
    for line in iter(process.stdout.readline, b""):  # type: ignore[union-attr]
        sys.stdout.buffer.write(prefix.encode() + line)
        sys.stdout.buffer.flush()
        if ready is not None and PROXY_READY[0] in line and any(m in line for m in PROXY_READY[1:]):
            ready.set()


def port_taken(host: str, port: int) -> bool:
    """Whether a server already listens there (``SO_REUSEADDR``, as the servers bind: a
    connection of an earlier run lingering in TIME_WAIT does not count).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def accepting(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_front(
    name: str, host: str, port: int, backend: int, runtime: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """nginx on ``host:port``, in front of ``name``'s gunicorn on loopback ``backend``."""
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    command = front_command(
        name, listen=listen, backends=[f"127.0.0.1:{backend}"], runtime_root=runtime
    )
    process = subprocess.Popen(  # noqa: S603 - our own fixed command line
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    threading.Thread(target=pipe, args=(f"[{name}/nginx] ", process), daemon=True).start()
    return process


def nginx_missing() -> str | None:
    """Why the front server cannot start (nginx not installed), in one line."""
    try:
        nginx_binary()
    except FileNotFoundError as exc:
        return str(exc)
    return None


def manage_command() -> str:
    """How to run manage.py as the README does, from this checkout."""
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        return f"{python.relative_to(ROOT)} manage.py"
    return f"{python} manage.py"


def active_fault(env: dict[str, str]) -> str | None:
    """``simulate_outage status`` when a fault is still active: it is a database row, so
    it outlives Ctrl-C and a restart; ``None`` otherwise (or if it cannot be read).
    """
    try:
        done = subprocess.run(  # noqa: S603 - our own fixed command line
            [sys.executable, "manage.py", "simulate_outage", "status"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = done.stdout.strip()
    return line if done.returncode == 0 and "Simulated outage active" in line else None


def settings_problem(env: dict[str, str]) -> str | None:
    """Why production settings will not load (no secret key, a malformed variable), in
    ``manage.py``'s one line; ``None`` if they do. Checked before any server starts, so
    ``make serve`` fails with that line instead of one traceback per worker."""
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "project.settings"},
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stderr.strip() or "manage.py check failed") if done.returncode else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users-port", type=whole_number, default=8200)
    parser.add_argument("--orders-port", type=whole_number, default=8201)
    parser.add_argument("--proxy-port", type=whole_number, default=8202)
    parser.add_argument(
        "--users-replicas",
        type=whole_number,
        default=1,
        metavar="N",
        help="Users replicas, each with its own fault proxy (default 1)",
    )
    parser.add_argument("--server", choices=SERVERS, default="runserver")
    parser.add_argument("--host", default=os.environ.get("BIND_HOST", "127.0.0.1"))
    args = parser.parse_args()

    replicas = args.users_replicas
    if not 1 <= replicas <= 99:
        print(f"--users-replicas must be 1..99; got {replicas}", file=sys.stderr)
        return 1
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "USERS_REPLICAS": str(replicas)}
    if args.server == "runserver":
        env.setdefault("DJANGO_DEBUG", "1")  # development; gunicorn runs production settings
    # The fault proxy: always in development, in production only when asked for.
    with_proxy = env.get("FAULT_PROXY", "1" if args.server == "runserver" else "0") == "1"
    users_ports = replica_ports(args.users_port, replicas)
    proxy_ports = replica_ports(args.proxy_port, replicas)
    users_via = proxy_ports if with_proxy else users_ports
    env.setdefault("USERS_SERVICE_URL", ",".join(f"http://127.0.0.1:{p}" for p in users_via))
    env.setdefault("MAX_REQUEST_BODY_BYTES", str(MAX_BODY_BYTES))  # nginx's cap and Django's

    if args.server == "gunicorn":  # production settings: refuse now, in one line, if they do
        problem = settings_problem(env) or nginx_missing()
        if problem:
            print(problem, file=sys.stderr)
            return 1

    # Name -> port, in start order; a replica's number is its name's last digits.
    numbered = replicas > 1
    ports = {f"users{i + 1}" if numbered else "users": p for i, p in enumerate(users_ports)}
    ports["orders"] = args.orders_port
    if with_proxy:
        ports.update(
            {f"proxy{i + 1}" if numbered else "proxy": p for i, p in enumerate(proxy_ports)}
        )
    if len(set(ports.values())) < len(ports):
        print(f"The ports must differ: {ports}", file=sys.stderr)
        return 1
    if not all(1 <= port <= 65535 for port in ports.values()):
        print(f"The ports must be 1..65535: {ports}", file=sys.stderr)
        return 1
    for name, port in ports.items():
        if port_taken(args.host, port):
            variable = f"{name.rstrip('0123456789').upper()}_PORT"
            print(
                f"Port {port} ({name}) on {args.host} is already in use: is another `make run`"
                f" running? Stop it, or choose another port: make run {variable}=<port>",
                file=sys.stderr,
            )
            return 1

    # Production: nginx takes each server's public port, its gunicorn a loopback port of its own.
    gunicorn = args.server == "gunicorn"
    backends = {n: free_port() for n in ports if not n.startswith("proxy")} if gunicorn else {}

    fault_check = threading.Thread(target=lambda: faults.append(active_fault(env)))
    faults: list[str | None] = []
    fault_check.start()

    # The proxy is a manage.py command: under gunicorn it must run the same production
    # settings as the servers (so OUTAGE_SIMULATION is off there unless asked for).
    proxy_env = (
        env if args.server == "runserver" else {**env, "DJANGO_SETTINGS_MODULE": "project.settings"}
    )
    upstream_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # noqa: S104
    children: list[subprocess.Popen[bytes]] = []
    # A proxy under `down` is ready but refuses connections: it says so in its log.
    proxy_ready = {name: threading.Event() for name in ports if name.startswith("proxy")}
    for name, port in ports.items():
        kind = name.rstrip("0123456789")
        replica = name[len(kind) :] or "1"
        if kind == "proxy":
            command = [
                *(sys.executable, "manage.py", "fault_proxy"),
                *("--listen", f"{args.host}:{port}"),
                *("--upstream", f"{upstream_host}:{users_ports[int(replica) - 1]}"),
                *(("--replica", replica) if numbered else ()),
            ]
        else:
            command = server_command(
                args.server,
                backends.get(name, port),
                host="127.0.0.1" if backends else args.host,
                workers=int(env.get("GUNICORN_WORKERS", "1")),
                threads=int(env.get("GUNICORN_THREADS", "32")),
                behind_front=bool(backends),
            )
        process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            command,
            cwd=ROOT,
            env=proxy_env
            if kind == "proxy"
            else {**env, "SERVICES": kind, "USERS_REPLICA": replica},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # we deliver the signals, once, to the whole server
        )
        children.append(process)
        ready = proxy_ready.get(name)
        threading.Thread(target=pipe, args=(f"[{name:<6}] ", process, ready), daemon=True).start()
    runtime = Path(tempfile.mkdtemp(prefix="make-serve-")) if backends else None  # nginx's files
    if runtime is not None:
        for name, backend in backends.items():
            children.append(start_front(name, args.host, ports[name], backend, runtime, env))

    stopping = threading.Event()

    def stop(signum: int = signal.SIGTERM, frame: object = None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    started = time.monotonic()
    waiting = {**ports, **{f"{name} (gunicorn)": port for name, port in backends.items()}}
    while waiting and not stopping.is_set() and time.monotonic() - started < 60:
        if any(child.poll() is not None for child in children):
            break  # one died: its own output said why
        waiting = {
            name: port
            for name, port in waiting.items()
            if not (accepting(port) or (name in proxy_ready and proxy_ready[name].is_set()))
        }
        if waiting:
            stopping.wait(0.1)
    if not waiting and not stopping.is_set():
        base = "http://127.0.0.1"
        if numbered:
            listed = ", ".join(f":{p}" for p in users_ports)
            via = f", their fault proxies on {', '.join(f':{p}' for p in proxy_ports)}"
            print(
                f"Users replicas on {base}{listed}{via if with_proxy else ''}, Orders on"
                f" {base}:{args.orders_port} (calling every replica"
                f"{' through its proxy' if with_proxy else ''}); Ctrl-C stops all {len(ports)}.",
                flush=True,
            )
        elif with_proxy:
            print(
                f"Users on {base}:{args.users_port}, the fault proxy on {base}:{args.proxy_port}"
                f" (forwarding to Users), Orders on {base}:{args.orders_port} (calling Users"
                " through the proxy); Ctrl-C stops all three.",
                flush=True,
            )
        else:
            front = " (nginx in front of gunicorn)" if backends else ""
            print(
                f"Users on {base}:{args.users_port}, Orders on {base}:{args.orders_port}{front};"
                " Ctrl-C stops both.",
                flush=True,
            )
        fault_check.join()
        if faults and faults[0]:
            print(
                f"Still set from before: {faults[0]}\n"
                f"End it with: {manage_command()} simulate_outage clear",
                flush=True,
            )
        while not stopping.wait(0.2):
            if any(child.poll() is not None for child in children):
                break  # one died: do not leave half a system running
    elif waiting and not stopping.is_set() and all(c.poll() is None for c in children):
        print(f"Not accepting connections after 60 s: {', '.join(waiting)}", file=sys.stderr)
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
    fault_check.join()
    if runtime is not None:
        shutil.rmtree(runtime, ignore_errors=True)
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if (failed or waiting) and not stopping.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
