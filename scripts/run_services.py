"""Run Users and Orders side by side, logs interleaved with a prefix; Ctrl-C stops both.

``--server gunicorn`` (``make serve``) runs them under gunicorn with threads, sized by
``GUNICORN_WORKERS`` and ``GUNICORN_THREADS``, with production settings.

A shell's ``a & b & wait`` is not enough: background jobs of a non-interactive shell
ignore SIGINT, so Ctrl-C would leave both servers running. This launcher owns its
children: any signal, or either server exiting, stops the other.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.servers import SERVERS, server_command  # noqa: E402 - after the path is set


def pipe(prefix: str, process: subprocess.Popen[bytes]) -> None:
    for line in iter(process.stdout.readline, b""):  # type: ignore[union-attr]
        sys.stdout.buffer.write(prefix.encode() + line)
        sys.stdout.buffer.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users-port", type=int, default=8200)
    parser.add_argument("--orders-port", type=int, default=8201)
    parser.add_argument("--server", choices=SERVERS, default="runserver")
    parser.add_argument("--host", default=os.environ.get("BIND_HOST", "127.0.0.1"))
    args = parser.parse_args()

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.server == "runserver":
        env.setdefault("DJANGO_DEBUG", "1")  # development; gunicorn runs production settings
    env.setdefault("USERS_SERVICE_URL", f"http://127.0.0.1:{args.users_port}")
    children: list[subprocess.Popen[bytes]] = []
    for name, port in (("users", args.users_port), ("orders", args.orders_port)):
        command = server_command(
            args.server,
            port,
            host=args.host,
            workers=int(env.get("GUNICORN_WORKERS", "1")),
            threads=int(env.get("GUNICORN_THREADS", "32")),
        )
        process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            command,
            cwd=ROOT,
            env={**env, "SERVICES": name},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # we deliver the signals, once, to the whole server
        )
        children.append(process)
        threading.Thread(target=pipe, args=(f"[{name:<6}] ", process), daemon=True).start()

    stopping = threading.Event()

    def stop(signum: int = signal.SIGTERM, frame: object = None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(
        f"Users on http://127.0.0.1:{args.users_port}, Orders on http://127.0.0.1:"
        f"{args.orders_port}; Ctrl-C stops both.",
        flush=True,
    )
    while not stopping.wait(0.2):
        if any(child.poll() is not None for child in children):
            break  # one died (port taken?): do not leave half a system running
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed and not stopping.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
