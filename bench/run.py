"""Benchmarks: this project's Users client against the tutorial's, on the same real servers.

    python -m bench.run                 # full run, medians of 3 (make bench): ~15 minutes
    python -m bench.run --smoke         # tiny counts, seconds: CI keeps this working

Every figure is measured in this run against a baseline measured in the same run, and
written with the raw samples to bench/out/results.json (not in git); ``python -m
bench.report`` turns that into docs/benchmarks.md, the latency chart and
bench/results.json, the figures without the samples (in git). Loopback only; every loop
is bounded in time or count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import requests

from bench import tutorial_client
from bench.stack import Stack, migrated_sqlite, stop_on_signals
from resilient_http import RetryManager, UpstreamConfig

#: Everything a run measured, raw samples included: large, so kept out of git.
RESULTS = Path(__file__).resolve().parent / "out" / "results.json"
#: What the report needs, without the samples: committed beside the report and its chart.
FIGURES = Path(__file__).resolve().parent / "results.json"
#: Each client measured, and the module Orders is served from for it: the project's own
#: entry points, or the one that swaps in the tutorial's client (bench/tutorial_wsgi.py).
CLIENTS: dict[str, str | None] = {
    "resilient": None,
    "tutorial": "bench.tutorial_wsgi",
}


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does; ``SMOKE`` only proves the machinery works."""

    sequential_calls: int = 2000
    callers: int = 16
    healthy_seconds: float = 10
    outage_seconds: float = 30
    flaky_seconds: float = 10
    drip_requests: int = 3
    memory_requests: int = 10_000
    timeline: tuple[float, float, float] = (5, 20, 20)  # healthy, outage, recovered
    repeats: int = 3


SMOKE = Sizes(
    sequential_calls=30,
    callers=4,
    healthy_seconds=0.5,
    outage_seconds=1,
    flaky_seconds=0.5,
    drip_requests=1,
    memory_requests=200,
    timeline=(0.5, 1.5, 1),
    repeats=1,
)


@dataclass(frozen=True)
class Sample:
    start: float  # seconds since the load began
    latency: float
    status: int
    code: str


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; ``nan`` for no values (reported, never hidden)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def warm(url: str) -> None:
    """First requests pay for imports and connections: make them before measuring (and
    before a fault is set, so they do not count as Users requests of the outage)."""
    with requests.Session() as session:
        for _ in range(3):
            session.get(url, timeout=120)


def sequential(url: str, n: int) -> list[float]:
    """Latencies of ``n`` back-to-back requests from one caller: no queueing."""
    latencies = []
    with requests.Session() as session:
        for _ in range(n):
            started = time.monotonic()
            session.get(url, timeout=120)
            latencies.append(time.monotonic() - started)
    return latencies


def _get(session: requests.Session, url: str) -> requests.Response:
    return session.get(url, timeout=120)


def load(
    url: str,
    *,
    callers: int,
    seconds: float,
    send: Callable[[requests.Session, str], requests.Response] = _get,
) -> list[Sample]:
    """``callers`` threads each ``send`` (default: GET) to ``url`` back to back for
    ``seconds``; a request in flight at the end is waited for and counted. Call
    ``warm(url)`` first.
    """
    samples: list[Sample] = []
    lock = threading.Lock()
    began = time.monotonic()
    stop_at = began + seconds

    def caller() -> None:
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                try:
                    response = send(session, url)
                    status = response.status_code
                    code = response.json().get("code", "") if status >= 400 else ""
                except (requests.RequestException, ValueError) as exc:
                    status, code = 0, type(exc).__name__
                sample = Sample(started - began, time.monotonic() - started, status, code)
                with lock:
                    samples.append(sample)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


def summarise(samples: list[Sample], wall: float) -> dict[str, float]:
    latencies = [s.latency for s in samples]
    return {
        "requests": len(samples),
        "requests_per_second": len(samples) / wall if wall else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "success_ratio": sum(s.status == 200 for s in samples) / len(samples) if samples else 0,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Figure by figure, the median over repeated runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


class Bench:
    def __init__(self, sizes: Sizes, servers: list[str], tmp: Path) -> None:
        self.sizes, self.servers, self.tmp = sizes, servers, tmp
        self.template = migrated_sqlite(tmp)

    @contextmanager
    def stack(self, client: str, server: str, **env: str) -> Iterator[Stack]:
        directory = Path(tempfile.mkdtemp(dir=self.tmp))
        stack = Stack(directory, env, server, self.template, orders_app=CLIENTS[client])
        try:
            yield stack
        finally:
            stack.stop()

    def orders_url(self, stack: Stack) -> str:
        return f"{stack.orders.url}/orders/?user_id=1"

    def repeat(
        self, measure: Callable[[], dict[str, float]], *, pause: float = 0.0
    ) -> dict[str, float]:
        """The median of ``repeats`` runs, ``pause`` seconds apart (to let a breaker close)."""
        runs = []
        for index in range(self.sizes.repeats):
            if index:
                time.sleep(pause)
            runs.append(measure())
        return median_of(runs)

    # 1 ---------------------------------------------------------------------------------
    def client_overhead(self, server: str) -> dict[str, Any]:
        """Sequential Users calls from this process: calls per second of each client."""
        n = self.sizes.sequential_calls
        with self.stack("resilient", server) as stack:
            url = f"{stack.users.url}/users/1"
            manager = RetryManager(UpstreamConfig(name="users", base_url=stack.users.url))
            raw = requests.Session()

            def per_second(call: Callable[[], object]) -> float:
                call()  # warm: connect once, import once
                started = time.perf_counter()
                for _ in range(n):
                    call()
                return n / (time.perf_counter() - started)

            def measure() -> dict[str, float]:
                return {
                    "resilient": per_second(lambda: manager.get("/users/1").json()),
                    "raw_pooled": per_second(lambda: raw.get(url, timeout=(0.5, 2)).json()),
                    "tutorial": per_second(
                        lambda: tutorial_client.call_api_with_retry(url, 10).json()
                    ),
                }

            figures = self.repeat(measure)
            manager.close()
            raw.close()
        figures["resilient_vs_raw"] = figures["resilient"] / figures["raw_pooled"]
        figures["resilient_vs_tutorial"] = figures["resilient"] / figures["tutorial"]
        return figures

    # 2 ---------------------------------------------------------------------------------
    def healthy_throughput(self, server: str, client: str) -> dict[str, float]:
        with self.stack(client, server) as stack:

            def measure() -> dict[str, float]:
                warm(self.orders_url(stack))
                started = time.monotonic()
                samples = load(
                    self.orders_url(stack),
                    callers=self.sizes.callers,
                    seconds=self.sizes.healthy_seconds,
                )
                return summarise(samples, time.monotonic() - started)

            return self.repeat(measure)

    # 3 ---------------------------------------------------------------------------------
    def hard_outage(self, server: str, client: str) -> dict[str, float]:
        with self.stack(client, server) as stack:

            def measure() -> dict[str, float]:
                url = self.orders_url(stack)
                warm(url)
                stack.manage("simulate_outage", "error", "--status", "502")
                started = time.monotonic()
                samples = load(url, callers=self.sizes.callers, seconds=self.sizes.outage_seconds)
                figures = summarise(samples, time.monotonic() - started)
                figures["amplification"] = stack.hits() / max(1, len(samples))
                steady = [s.latency for s in samples if s.start >= 1.0]  # breaker had time
                figures["steady_p50_ms"] = percentile(steady, 50) * 1000
                figures["steady_p99_ms"] = percentile(steady, 99) * 1000
                if client == "resilient":  # the tutorial's would take 30 s a request
                    # The open breaker's own cost: one caller, so no queue in front of it.
                    alone = sequential(url, self.sizes.sequential_calls // 4)
                    figures["open_alone_p50_ms"] = percentile(alone, 50) * 1000
                    figures["open_alone_p99_ms"] = percentile(alone, 99) * 1000
                stack.manage("simulate_outage", "clear")
                return figures

            return self.repeat(measure, pause=6)  # the breaker (5 s) closes between runs

    # 4 ---------------------------------------------------------------------------------
    def flaky(self, server: str, client: str) -> dict[str, float]:
        with self.stack(client, server) as stack:

            def measure() -> dict[str, float]:
                warm(self.orders_url(stack))
                stack.manage("simulate_outage", "error", "--rate", "0.3")
                started = time.monotonic()
                samples = load(
                    self.orders_url(stack),
                    callers=self.sizes.callers,
                    seconds=self.sizes.flaky_seconds,
                )
                figures = summarise(samples, time.monotonic() - started)
                # hits counts only failed Users requests: add the successful ones, one per 200
                failed_upstream = stack.hits()
                ok = sum(s.status == 200 for s in samples)
                figures["amplification"] = (failed_upstream + ok) / max(1, len(samples))
                stack.manage("simulate_outage", "clear")
                return figures

            return self.repeat(measure, pause=6)

    # 5 ---------------------------------------------------------------------------------
    def recovery(self, server: str, client: str) -> dict[str, float]:
        """Load through an outage long enough to open the breaker, then ``clear``: seconds
        from the end of ``clear`` until a caller first gets a 200."""
        with self.stack(client, server) as stack:
            url = self.orders_url(stack)

            def measure() -> dict[str, float]:
                stack.manage("simulate_outage", "error", "--status", "502")
                cleared = threading.Event()
                first_ok: list[float] = []

                def caller() -> None:
                    give_up = time.monotonic() + 120
                    with requests.Session() as session:
                        while not first_ok and time.monotonic() < give_up:
                            ok = session.get(url, timeout=120).status_code == 200
                            if ok and cleared.is_set():
                                first_ok.append(time.monotonic())

                threads = [threading.Thread(target=caller) for _ in range(4)]
                for t in threads:
                    t.start()
                time.sleep(max(2.0, self.sizes.outage_seconds / 5))
                stack.manage("simulate_outage", "clear")
                cleared_at = time.monotonic()
                cleared.set()
                for t in threads:
                    t.join()
                return {"seconds_to_first_200": min(first_ok) - cleared_at}

            return self.repeat(measure, pause=6)

    # 6 ---------------------------------------------------------------------------------
    def drip(self, server: str, client: str) -> dict[str, float]:
        with self.stack(client, server) as stack:
            stack.manage("simulate_outage", "drip", "--interval", "1")
            latencies = [stack.get_orders(1)[1] for _ in range(self.sizes.drip_requests)]
            return {
                "p50_ms": percentile(latencies, 50) * 1000,
                "max_ms": max(latencies) * 1000,
                "body_seconds_at_full_speed": 12.0,  # 48-byte user, 4 bytes per 1 s
            }

    # 7 ---------------------------------------------------------------------------------
    def memory(self, server: str) -> dict[str, float]:
        """Orders' RSS before and after N requests during a hard outage (our client only:
        the tutorial's needs ~30 s per request, so N requests would take hours)."""
        with self.stack("resilient", server) as stack:
            warm(self.orders_url(stack))  # imports, connection pool, first allocations
            before = stack.orders.rss_bytes()
            stack.manage("simulate_outage", "error", "--status", "502")
            done = 0
            lock = threading.Lock()

            def enough() -> bool:
                return done >= self.sizes.memory_requests

            def caller() -> None:
                nonlocal done
                with requests.Session() as session:
                    while not enough():
                        session.get(self.orders_url(stack), timeout=30)
                        with lock:
                            done += 1

            threads = [threading.Thread(target=caller) for _ in range(self.sizes.callers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            after = stack.orders.rss_bytes()
        return {
            "requests": done,
            "rss_before_mib": before / 2**20,
            "rss_after_mib": after / 2**20,
            "growth": after / before - 1,
        }

    # breaker lock ----------------------------------------------------------------------
    def breaker_concurrency(self) -> dict[str, float] | None:
        """16 threads each make one 50 ms call through a breaker: wall time of all of them.
        pybreaker holds its lock for the whole call; ours only around its counters."""
        try:
            import pybreaker
        except ImportError:  # a bench-only dependency (requirements-bench.txt)
            return None
        from resilient_http.breaker import CircuitBreaker

        def call() -> None:
            time.sleep(0.05)

        ours = CircuitBreaker()

        def through_ours() -> None:
            if ours.allow():
                call()
                ours.record(success=True)

        theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=5)

        def wall(fn: Callable[[], None], threads: int = 16) -> float:
            barrier = threading.Barrier(threads)
            workers = [
                threading.Thread(target=lambda: (barrier.wait(), fn())) for _ in range(threads)
            ]
            started = time.monotonic()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return time.monotonic() - started

        return self.repeat(
            lambda: {
                "no_breaker_s": wall(call),
                "ours_s": wall(through_ours),
                "pybreaker_s": wall(lambda: theirs.call(call)),
            }
        )

    # chart -----------------------------------------------------------------------------
    def timeline(self, server: str, client: str) -> list[dict[str, Any]]:
        """Orders latency of every request through healthy, outage and recovery phases."""
        healthy, outage, recovered = self.sizes.timeline
        with self.stack(client, server) as stack:

            def phases() -> None:
                time.sleep(healthy)
                stack.manage("simulate_outage", "error", "--status", "502")
                time.sleep(outage)
                stack.manage("simulate_outage", "clear")

            warm(self.orders_url(stack))
            driver = threading.Thread(target=phases)
            driver.start()
            samples = load(self.orders_url(stack), callers=8, seconds=healthy + outage + recovered)
            driver.join()
        return [asdict(s) for s in samples]


def _optional_versions(*names: str) -> dict[str, str]:
    found = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):  # not installed: not reported
            found[name] = version(name)
    return found


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {
            name: version(name)
            for name in ("django", "djangorestframework", "requests", "urllib3", "gunicorn")
        }
        | _optional_versions("pybreaker", "matplotlib"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def run(sizes: Sizes, servers: list[str], out: Path, *, smoke: bool) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {
        "machine": machine(),
        "smoke": smoke,
        "sizes": asdict(sizes),
        "servers": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(sizes, servers, Path(tmp))
        for index, server in enumerate(servers):
            full = index == 0  # the first server runs every scenario; the others the core
            r: dict[str, Any] = {}
            print(f"[{server}] 1 client overhead", flush=True)
            r["client_overhead"] = bench.client_overhead(server)
            for client in CLIENTS:
                print(f"[{server}] 2 healthy, {client}", flush=True)
                r.setdefault("healthy", {})[client] = bench.healthy_throughput(server, client)
            for client in CLIENTS:
                if client == "tutorial" and smoke:
                    continue  # ~30 s per request by design: not for a smoke run
                print(f"[{server}] 3 hard outage, {client}", flush=True)
                r.setdefault("hard_outage", {})[client] = bench.hard_outage(server, client)
            if full:
                for client in CLIENTS:
                    if smoke and client == "tutorial":
                        continue  # its 2-4 s backoff tails are the point, not for a smoke run
                    print(f"[{server}] 4 flaky, {client}", flush=True)
                    r.setdefault("flaky", {})[client] = bench.flaky(server, client)
                    if smoke:
                        continue
                    print(f"[{server}] 5 recovery, {client}", flush=True)
                    r.setdefault("recovery", {})[client] = bench.recovery(server, client)
                    print(f"[{server}] 6 drip, {client}", flush=True)
                    r.setdefault("drip", {})[client] = bench.drip(server, client)
                    print(f"[{server}] chart timeline, {client}", flush=True)
                    r.setdefault("timeline", {})[client] = bench.timeline(server, client)
                print(f"[{server}] 7 memory", flush=True)
                r["memory"] = bench.memory(server)
            results["servers"][server] = r
        results["breaker_concurrency"] = bench.breaker_concurrency()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return results


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` without the per-request samples (the chart is drawn from those)."""
    servers = {
        name: {key: value for key, value in server.items() if key != "timeline"}
        for name, server in results["servers"].items()
    }
    return {**results, "servers": servers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: seconds, not minutes")
    parser.add_argument("--servers", help="default: gunicorn,runserver; smoke: gunicorn")
    parser.add_argument("--repeats", type=int, help="runs per figure (median); default 3")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stop_on_signals()  # kill or a closed terminal: the servers stop too
    sizes = SMOKE if args.smoke else Sizes()
    if args.repeats:
        sizes = Sizes(**{**asdict(sizes), "repeats": args.repeats})
    chosen = args.servers or ("gunicorn" if args.smoke else "gunicorn,runserver")
    servers = [s.strip() for s in chosen.split(",") if s.strip()]
    run(sizes, servers, args.out, smoke=args.smoke)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
