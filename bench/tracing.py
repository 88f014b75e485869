"""What OpenTelemetry costs a healthy call, two ways, each against ``off`` in the same run,
rounds interleaving the variants (a busy moment on the machine falls on all of them):

1. The client call alone: ``RetryManager.get`` wired as Django wires it (the call's span,
   a client span per attempt, span events and metrics from the events), against a canned
   keep-alive server (bench/canned.py), one process per variant (bench/tracing_client.py):
   ``off`` (no SDK: the API's no-op spans, what an application without one gets),
   ``default`` (``make serve``'s: the SDK, no exporter, nothing recorded), ``sdk_floor``
   (two plain spans around a bare call: the SDK's own cost, under any instrumentation),
   ``console`` (every span exported by the console exporter, silenced) and ``otlp`` (spans
   and metrics batched over OTLP/HTTP to a receiver on loopback, bench/otlp_receiver.py).
2. The whole service: ``GET /orders/?user_id=1`` on Orders and Users under gunicorn
   (``make serve``'s servers), the same tree started with only its ``OTEL_*`` variables
   differing: ``off`` (``OTEL_SDK_DISABLED=true``), ``default`` (none: ``make serve``'s),
   ``console``, ``otlp``, and ``otlp`` with one trace in ten sampled
   (``parentbased_traceidratio``, 0.1). Django's server spans are in it; timed
   sequentially on a kept-alive connection, and by closed-loop callers.

    python -m bench.tracing           # ~5 min (make bench-tracing)
    python -m bench.tracing --smoke   # seconds: the machinery works

Figures to bench/tracing.json (in git) and its section of docs/benchmarks.md (``python -m
bench.report``). Loopback only; every process started is stopped at exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bench.otlp_receiver import Receiver
from bench.run import machine, percentile, sequential, warm
from bench.stack import (
    ROOT,
    Stack,
    free_port,
    migrated_sqlite,
    refuses,
    smoke_or_full,
    wait_until,
    write_figures,
)

FIGURES = ROOT / "bench" / "tracing.json"
PATH = "/orders/?user_id=1"
#: Client variants: their name for bench/tracing_client.py, and their environment.
CLIENT_VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "bare": ("bare", {}),
    "off": ("off", {}),
    "default": ("default", {}),
    "sdk_floor": ("sdk_floor", {}),
    "console": ("console", {}),
    "otlp": ("otlp", {}),
    "otlp_sampled": (
        "otlp",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    ),
}


def variants(receiver: str) -> dict[str, dict[str, str]]:
    """Each service variant's environment (both services)."""
    otlp = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver,
    }
    return {
        "off": {"OTEL_SDK_DISABLED": "true"},
        "default": {},  # make serve's: the SDK, no exporter, no trace recorded
        "console": {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"},
        "otlp": otlp,
        "otlp_sampled": {
            **otlp,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        },
    }


@dataclass(frozen=True)
class Sizes:
    client_calls: int = 5000  # per round and variant
    sequential: int = 400  # per round and variant
    callers: int = 8
    closed_seconds: float = 5.0
    rounds: int = 5


SMOKE = Sizes(client_calls=100, sequential=20, callers=2, closed_seconds=0.5, rounds=1)


def client_rows(sizes: Sizes, receiver: str) -> dict[str, dict[str, float]]:
    """Seconds per healthy client call, by variant (one process per variant and round)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.canned", str(port)], cwd=ROOT)
    samples: dict[str, list[float]] = {name: [] for name in CLIENT_VARIANTS}
    try:
        wait_until(lambda: not refuses(port), "the canned server", timeout=30)
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver}
        for _ in range(sizes.rounds):
            for name, (variant, extra) in CLIENT_VARIANTS.items():
                argv = [sys.executable, "-m", "bench.tracing_client", variant]
                argv += [f"http://127.0.0.1:{port}", str(sizes.client_calls)]
                done = subprocess.run(
                    argv,
                    cwd=ROOT,
                    env={**env, **extra},
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=True,
                )
                samples[name] += json.loads(done.stdout)
    finally:
        server.kill()
        server.wait(timeout=10)
    base = statistics.median(samples["bare"])
    return {
        name: {
            "median_us": statistics.median(times) * 1e6,
            "p99_us": percentile(times, 99) * 1e6,
            "ratio": statistics.median(times) / base,
            "calls": len(times),
        }
        for name, times in samples.items()
    }


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ while a stack starts (its processes inherit them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def closed_loop(url: str, callers: int, seconds: float) -> float:
    """Requests answered 200 per second by ``callers`` back-to-back callers."""
    ends = time.monotonic() + seconds
    counts = [0] * callers

    def caller(i: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < ends:
                if session.get(url, timeout=30).status_code == 200:
                    counts[i] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


@contextlib.contextmanager
def stacks(tmp: Path, receiver: str) -> Iterator[dict[str, Stack]]:
    template = migrated_sqlite(tmp)
    started: dict[str, Stack] = {}
    try:
        for name, env in variants(receiver).items():
            directory = tmp / name
            directory.mkdir()
            with environ(env):
                started[name] = Stack(directory, {}, "gunicorn", template, shared=False)
        yield started
    finally:
        for stack in started.values():
            stack.stop()


def run(sizes: Sizes, *, smoke: bool) -> dict[str, Any]:
    load_before = os.getloadavg()
    receiver = Receiver()
    latencies: dict[str, list[float]] = {}
    throughput: dict[str, list[float]] = {}
    try:
        client = client_rows(sizes, receiver.url)
        with (
            tempfile.TemporaryDirectory(prefix="tracing-") as tmp,
            stacks(Path(tmp), receiver.url) as running,
        ):
            urls = {name: stack.orders_url + PATH for name, stack in running.items()}
            for url in urls.values():
                for _ in range(20):
                    warm(url)
            for _ in range(sizes.rounds):
                for name, url in urls.items():
                    latencies.setdefault(name, []).extend(sequential(url, sizes.sequential))
                    throughput.setdefault(name, []).append(
                        closed_loop(url, sizes.callers, sizes.closed_seconds)
                    )
        received = len(receiver.spans)
    finally:
        receiver.close()
    rows = {
        name: {
            "p50_ms": percentile(latencies[name], 50) * 1000,
            "p99_ms": percentile(latencies[name], 99) * 1000,
            "mean_ms": statistics.fmean(latencies[name]) * 1000,
            "throughput_rps": statistics.median(throughput[name]),
            "requests": len(latencies[name]),
        }
        for name in latencies
    }
    base = rows["off"]
    for row in rows.values():
        row["p50_ratio"] = row["p50_ms"] / base["p50_ms"]
        row["throughput_ratio"] = row["throughput_rps"] / base["throughput_rps"]
    return {
        "machine": machine() | {"load_average": [load_before, os.getloadavg()]},
        "smoke": smoke,
        "sizes": asdict(sizes),
        "client": client,
        "rows": rows,
        "spans_received": received,
    }


def section(results: dict[str, Any]) -> list[str]:
    """Its section of docs/benchmarks.md."""
    client, rows, sizes = results["client"], results["rows"], results["sizes"]
    m = results["machine"]
    load = m.get("load_average", [[float("nan")], [float("nan")]])
    lines = [
        "## What tracing costs a healthy call",
        "",
        "Two measurements, each against tracing off in the same run, rounds interleaved",
        "(`make bench-tracing`, figures in `bench/tracing.json`). First the client call alone:",
        "`RetryManager.get` wired as Django wires it (the call's span, a client span per",
        "attempt, span events and metrics from the events) against a canned keep-alive server,",
        f"{sizes['client_calls']:,} calls per round, one process per variant:",
        "",
        "| tracing | median per call | p99 | vs off (first row) |",
        "|---|---|---|---|",
    ]
    labels = {
        "bare": "off: no SDK, so nothing wired (what the registry does)",
        "off": "no SDK but wired anyway (the API's no-op spans)",
        "default": "`make serve`'s default: the SDK, no exporter, nothing recorded",
        "sdk_floor": "the SDK's floor: two plain spans around a bare call, OTLP batched",
        "console": "every trace, console exporter (silenced)",
        "otlp": "every trace, OTLP/HTTP batched, metrics too",
        "otlp_sampled": "one trace in ten, OTLP/HTTP, metrics too",
    }
    for name, label in labels.items():
        if name not in client:  # figures from before the row was measured
            continue
        row = client[name]
        lines.append(
            f"| {label} | {row['median_us']:.0f} µs | {row['p99_us']:.0f} µs | {row['ratio']:.3f} |"
        )
    lines += [
        "",
        "Then the whole service: `GET /orders/?user_id=1` (one call to Users) under gunicorn,",
        "the same tree started five times with only its `OTEL_*` variables differing; Django's",
        f"server spans are in it. {sizes['sequential']} sequential requests per round on a",
        f"kept-alive connection, and {sizes['callers']} closed-loop callers for"
        f" {sizes['closed_seconds']:g} s:",
        "",
        "| tracing | p50 | p99 | p50 vs off | throughput | vs off |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "off": "off (`OTEL_SDK_DISABLED=true`)",
        "default": "`make serve`'s default: the SDK, no exporter, nothing recorded",
        "console": "every trace, console exporter (to a file)",
        "otlp": "every trace, OTLP/HTTP batched, metrics too",
        "otlp_sampled": "one trace in ten, OTLP/HTTP",
    }
    for name, label in names.items():
        if name not in rows:
            continue
        row = rows[name]
        lines.append(
            f"| {label} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms |"
            f" {row['p50_ratio']:.3f} | {row['throughput_rps']:,.0f} req/s |"
            f" {row['throughput_ratio']:.3f} |"
        )
    lines += [
        "",
        f"The receiver took {results['spans_received']:,} spans. Measured {m['date']} on"
        f" {m['cpus']} CPUs, load average {load[0][0]:.1f} before and {load[1][0]:.1f} after.",
        "",
    ]
    return lines


def main() -> None:
    smoke, out = smoke_or_full(__doc__ or "", FIGURES)
    results = run(SMOKE if smoke else Sizes(), smoke=smoke)
    write_figures(out, results)
    print("\n".join(section(results)))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
