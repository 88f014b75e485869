"""Load under outage: Orders under 32 callers for 30 s while the Users process is down.

    python -m bench.load_under_outage            # full: 32 callers, 30 s (part of make bench)
    python -m bench.load_under_outage --smoke    # seconds: CI keeps it working

Measures, for Orders under gunicorn: /healthz latency while the callers hammer /orders/
(an outage upstream must not make the service look dead), the slowest /orders/ answer
against the deadline, and threads, open sockets and memory before and after (no leaks).
Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from bench.run import load, percentile, warm
from bench.stack import Stack, migrated_sqlite, stop_on_signals

RESULTS = Path(__file__).resolve().parent / "load_under_outage.json"
DEADLINE = 5.0


def process_state(pid: int) -> dict[str, int]:
    """Threads, open sockets and resident memory of one process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    fds = Path(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds.iterdir():
        try:
            sockets += fd.readlink().as_posix().startswith("socket:")
        except FileNotFoundError:  # closed while we looked
            continue
    return {
        "threads": int(fields["Threads"]),
        "sockets": sockets,
        "rss_bytes": int(fields["VmRSS"].split()[0]) * 1024,
    }


def settled_state(pid: int, baseline: dict[str, int], seconds: float = 10.0) -> dict[str, int]:
    """The state once idle connections have been closed (keep-alive timeouts), or as it
    stands after ``seconds``."""
    give_up = time.monotonic() + seconds
    state = process_state(pid)
    while time.monotonic() < give_up and (
        state["threads"] > baseline["threads"] or state["sockets"] > baseline["sockets"]
    ):
        time.sleep(0.5)
        state = process_state(pid)
    return state


def run(*, callers: int, seconds: float, threads: int = 64) -> dict[str, Any]:
    """``threads``: Orders' gunicorn threads, above the callers' concurrency, so that a
    health check never queues behind a saturated pool (see the sizing note in
    docs/how-to/deploy.md)."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        orders_env = {"GUNICORN_THREADS": str(threads)}
        stack = Stack(directory, orders_env, "gunicorn", migrated_sqlite(directory))
        try:
            url = f"{stack.orders.url}/orders/?user_id=1"
            warm(url)
            warm(f"{stack.orders.url}/healthz")
            # The same concurrency while healthy first: gunicorn's thread pool grows to its
            # working size and stays there; "before" is that, so a leak is a difference.
            load(url, callers=callers + 1, seconds=1)  # + the /healthz prober
            worker = stack.orders.pids()[-1]
            before = settled_state(worker, process_state(worker), seconds=3)
            stack.users.stop()  # Users is down: connections are refused

            health: list[float] = []
            done = threading.Event()

            def probe() -> None:
                with requests.Session() as session:
                    while not done.is_set():
                        started = time.monotonic()
                        session.get(f"{stack.orders.url}/healthz", timeout=10)
                        health.append(time.monotonic() - started)
                        time.sleep(0.02)

            prober = threading.Thread(target=probe)
            prober.start()
            samples = load(url, callers=callers, seconds=seconds)
            done.set()
            prober.join()
            during = process_state(worker)
            after = settled_state(worker, before)
        finally:
            stack.stop()
    latencies = [s.latency for s in samples]
    return {
        "callers": callers,
        "orders_threads": threads,
        "seconds": seconds,
        "orders_requests": len(samples),
        "orders_statuses": sorted({s.status for s in samples}),
        "orders_max_s": max(latencies),
        "deadline_s": DEADLINE,
        "healthz_requests": len(health),
        "healthz_p50_ms": percentile(health, 50) * 1000,
        "healthz_p99_ms": percentile(health, 99) * 1000,
        "before": before,
        "during": during,
        "after": after,
        "rss_growth": after["rss_bytes"] / before["rss_bytes"] - 1,
    }


def repeated(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the timings and growth; the leak checks must hold in every run."""
    median = {
        key: statistics.median(r[key] for r in runs)
        for key in ("orders_max_s", "healthz_p50_ms", "healthz_p99_ms", "rss_growth")
    }
    leak_free = all(
        r["after"]["threads"] <= r["before"]["threads"]
        and r["after"]["sockets"] <= r["before"]["sockets"]
        for r in runs
    )
    return {**runs[0], **median, "repeats": len(runs), "leak_free_every_run": leak_free,
            "runs": runs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stop_on_signals()  # kill or a closed terminal: the servers stop too
    if args.smoke:
        figures = repeated([run(callers=4, seconds=1)])
    else:
        figures = repeated([run(callers=32, seconds=30) for _ in range(args.repeats)])
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
