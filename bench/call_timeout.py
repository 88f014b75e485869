"""What the call timeout costs: RetryManager with and without its watchdog, against a raw
pooled ``requests.Session``, side by side on one real Users process, in one run.

    python -m bench.call_timeout            # about a minute: bench/call_timeout.json
    python -m bench.call_timeout --smoke    # seconds

Each round measures every client in turn (interleaved, so a busy neighbour on a shared
machine hits all of them alike): sequential calls per second from one caller, and calls
per second from 8 threads sharing one client. Figures are medians over the rounds. Also
times ``getaddrinfo`` for the two ways to name a local upstream: name resolution cannot be
interrupted in CPython, so the call's deadline cannot cover it. Loopback only; bounded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bench.run import machine
from bench.stack import Stack, migrated_sqlite, stop_on_signals
from resilient_http import RetryManager, UpstreamConfig
from resilient_http.watchdog import Guard, Watchdog, watching

RESULTS = Path(__file__).resolve().parent / "call_timeout.json"
THREADS = 8


def sequential(call: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return n / (time.perf_counter() - started)


def concurrent(call: Callable[[], object], seconds: float) -> float:
    """Calls per second from ``THREADS`` threads calling back to back for ``seconds``."""
    counts = [0] * THREADS
    stop_at = time.perf_counter() + seconds

    def caller(index: int) -> None:
        while time.perf_counter() < stop_at:
            call()
            counts[index] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def resolve(host: str, port: int, n: int) -> dict[str, float]:
    """``getaddrinfo`` latency in milliseconds, as urllib3 calls it for each new connection."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


class _NoWatchdog(Watchdog):
    """The baseline: guards that never fire (socket timeouts per operation only). The
    benchmark's own stand-in, injected where tests inject theirs."""

    def arm(self, seconds: float) -> Guard:
        return Guard(math.inf)


def measure(users_url: str, *, rounds: int, calls: int, seconds: float) -> dict[str, Any]:
    config = UpstreamConfig(name="users", base_url=users_url)
    raw = requests.Session()
    raw.trust_env = False  # as RetryManager's session: no proxy or netrc lookups per call
    raw.mount("http://", HTTPAdapter(pool_maxsize=32, max_retries=0))
    url = f"{users_url}/users/1"
    clients: dict[str, Callable[[], object]] = {}
    watched = RetryManager(config, listeners=[])
    unwatched = RetryManager(config, listeners=[], watchdog=_NoWatchdog())
    clients["raw_pooled"] = lambda: raw.get(url, timeout=(0.5, 2)).json()
    clients["watchdog"] = lambda: watched.get("/users/1").json()
    clients["no_watchdog"] = lambda: unwatched.get("/users/1").json()
    runs: dict[str, dict[str, list[float]]] = {
        name: {"sequential": [], "concurrent": []} for name in clients
    }
    for call in clients.values():  # connect, import: not measured
        for _ in range(20):
            call()
    names = list(clients)
    for index in range(rounds):
        for name in names[index % 3 :] + names[: index % 3]:  # each goes first in turn
            runs[name]["sequential"].append(sequential(clients[name], calls))
            runs[name]["concurrent"].append(concurrent(clients[name], seconds))
    watched.close()
    unwatched.close()
    raw.close()
    figures: dict[str, Any] = {
        name: {kind: statistics.median(values) for kind, values in kinds.items()}
        for name, kinds in runs.items()
    }
    for kind in ("sequential", "concurrent"):
        figures[f"{kind}_watchdog_vs_raw"] = figures["watchdog"][kind] / figures["raw_pooled"][kind]
        figures[f"{kind}_no_watchdog_vs_raw"] = (
            figures["no_watchdog"][kind] / figures["raw_pooled"][kind]
        )
        figures[f"{kind}_watchdog_vs_no_watchdog"] = (
            figures["watchdog"][kind] / figures["no_watchdog"][kind]
        )
    return figures


def guard_cost(n: int) -> dict[str, float]:
    """Microseconds to arm and disarm one guard, and the same block without one."""
    watchdog = Watchdog()

    def guarded() -> None:
        with watchdog.guard(5.0):
            pass

    def bare() -> None:
        with watching(Guard(math.inf)):
            pass

    per_call = {}
    for name, block in (("guard_us", guarded), ("no_guard_us", bare)):
        started = time.perf_counter()
        for _ in range(n):
            block()
        per_call[name] = (time.perf_counter() - started) / n * 1e6
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: seconds")
    parser.add_argument("--server", default="gunicorn", help="Users' server (or runserver)")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (median)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stop_on_signals()  # kill or a closed terminal: the servers stop too
    rounds, calls, seconds = (1, 20, 0.2) if args.smoke else (args.rounds, 150, 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        stack = Stack(directory, {}, args.server, migrated_sqlite(directory))
        try:
            results: dict[str, Any] = {
                "machine": machine(),
                "smoke": args.smoke,
                "server": args.server,
                "rounds": rounds,
                "calls": calls,
                "seconds": seconds,
                "threads": THREADS,
                "throughput": measure(stack.users.url, rounds=rounds, calls=calls, seconds=seconds),
                "dns_lookups": 20 if args.smoke else 500,
                "load": os.getloadavg()[0],  # a shared machine scatters the figures
                "guard": guard_cost(1000 if args.smoke else 100_000),
                "getaddrinfo": {
                    host: resolve(host, 8200, 20 if args.smoke else 500)
                    for host in ("127.0.0.1", "localhost")
                },
            }
        finally:
            stack.stop()
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["throughput"], indent=1))
    print(json.dumps(results["guard"], indent=1))
    print(json.dumps(results["getaddrinfo"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
