"""What the fault proxy adds to a healthy call: GET /users/1 direct vs through the proxy.

    python -m bench.proxy_latency            # 2,000 calls each way per server (make bench)
    python -m bench.proxy_latency --smoke    # a few calls: CI keeps it working

One caller, one pooled session per path, calls alternating direct / proxied so both see
the same machine; no fault set. The proxy only runs in development (``make run``) and in
the fault matrix: the client benchmarks call Users directly. Loopback only; bounded in
count and time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.run import percentile, warm
from bench.stack import Stack, migrated_sqlite, stop_on_signals

RESULTS = Path(__file__).resolve().parent / "proxy_latency.json"


def measure(stack: Stack, calls: int, max_seconds: float) -> dict[str, Any]:
    assert stack.proxy is not None
    urls = {
        "direct": f"{stack.users.url}/users/1",
        "proxied": f"{stack.proxy.url}/users/1",
    }
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    sessions = {name: requests.Session() for name in urls}
    try:
        for url in urls.values():
            warm(url)
        give_up = time.monotonic() + max_seconds
        for _ in range(calls):
            if time.monotonic() > give_up:
                break
            for name, url in urls.items():
                started = time.perf_counter()
                response = sessions[name].get(url, timeout=30)
                latencies[name].append(time.perf_counter() - started)
                response.raise_for_status()
    finally:
        for session in sessions.values():
            session.close()
    out: dict[str, Any] = {"calls": len(latencies["direct"])}
    for name, values in latencies.items():
        out[name] = {
            "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
        }
    out["added_p50_ms"] = out["proxied"]["p50_ms"] - out["direct"]["p50_ms"]
    out["added_p99_ms"] = out["proxied"]["p99_ms"] - out["direct"]["p99_ms"]
    return out


def run(calls: int, servers: list[str], out: Path, max_seconds: float = 120.0) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="proxy-latency-"))
    template = migrated_sqlite(directory)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    for server in servers:
        (directory / server).mkdir()
        stack = Stack(directory / server, {}, server, template, proxy=True)
        try:
            results[server] = measure(stack, calls, max_seconds)
        finally:
            stack.stop()
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stop_on_signals()  # kill or a closed terminal: the servers stop too
    results = run(20 if args.smoke else 2000, ["runserver", "gunicorn"], args.out)
    for server in ("runserver", "gunicorn"):
        r = results[server]
        print(
            f"{server:>9}: direct p50 {r['direct']['p50_ms']:.2f} ms p99"
            f" {r['direct']['p99_ms']:.2f} ms; proxied p50 {r['proxied']['p50_ms']:.2f} ms"
            f" p99 {r['proxied']['p99_ms']:.2f} ms ({r['calls']} calls each)"
        )


if __name__ == "__main__":
    main()
