"""The front door: gunicorn alone (``make serve`` before nginx) beside gunicorn behind nginx
(``make serve`` now), in one run, on the same machine and database.

    python -m bench.front_door           # ~4 min (make bench-front)
    python -m bench.front_door --smoke   # seconds: the machinery works

1. Hostile callers: 0, 64 and 256 connections to Orders' public port, each sending a request
   line and then a header byte a second (slowloris; a connection the server closes is opened
   again). Meanwhile a prober sends ``/healthz`` and ``GET /orders/?user_id=1`` (calls Users)
   open-loop, each on a fresh connection: request i is due at i/rate and its latency counts
   from then, so a queue shows. The attack lasts ``probe_seconds``: gunicorn alone answers
   only once it ends, so its figure there is bounded by the attack's length.
2. The healthy path: ``GET /orders/?user_id=1`` open-loop at a fixed rate on kept-alive
   connections (p50/p99 from when each was due), then a closed loop (callers that send their
   next request as soon as the last one is answered) for throughput. Interleaved rounds.

Figures to bench/front_door.json (in git) and its section of docs/benchmarks.md (``python -m
bench.report``); no raw samples kept. Loopback only; bounded in count and time; every
process started is stopped at exit, on SIGTERM too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.hostile import SLOWLORIS, Hostile
from bench.run import machine, percentile, warm
from bench.stack import (
    ROOT,
    Stack,
    migrated_sqlite,
    smoke_or_full,
    wait_until,
    write_figures,
)
from project.front import CONN_PER_CLIENT, MAX_BODY_BYTES

FIGURES = ROOT / "bench" / "front_door.json"
VARIANTS = ("gunicorn", "nginx")  # before, after
PROBES = {"healthz": "/healthz", "orders": "/orders/?user_id=1"}
HEALTHY_PATH = "/orders/?user_id=1"


@dataclass(frozen=True)
class Sizes:
    hostile: tuple[int, ...] = (0, 64, 256)
    probe_seconds: float = 10.0  # how long each attack lasts, probed throughout
    probe_rate: float = 10.0  # per probe stream, requests per second
    healthy_rate: float = 100.0
    healthy_seconds: float = 15.0
    callers: int = 16  # closed loop
    closed_seconds: float = 10.0
    rounds: int = 3  # healthy path, interleaved
    client_timeout: float = 30.0  # a probe unanswered by then counts as failed


SMOKE = Sizes(
    hostile=(0, 8),
    probe_seconds=1.0,
    probe_rate=5.0,
    healthy_rate=20.0,
    healthy_seconds=1.0,
    callers=4,
    closed_seconds=1.0,
    rounds=1,
    client_timeout=20.0,
)


async def _send(session: aiohttp.ClientSession, url: str, due: float) -> tuple[float, int]:
    """(seconds from ``due`` to the answer, status); status 0: no answer."""
    loop = asyncio.get_running_loop()
    try:
        async with session.get(url) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return loop.time() - due, status


async def _open_loop(
    urls: dict[str, str], rate: float, seconds: float, timeout: float, keep_alive: bool
) -> dict[str, list[tuple[float, int]]]:
    loop = asyncio.get_running_loop()
    # Fresh connections for the probes (what an attack on connections blocks); kept-alive
    # ones for the healthy path (what Orders' pooled client does).
    connector = aiohttp.TCPConnector(limit=0, force_close=not keep_alive)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        t0 = loop.time() + 0.05
        plan = sorted((i / rate, name) for name in urls for i in range(round(rate * seconds)))
        tasks: dict[str, list[asyncio.Task[tuple[float, int]]]] = {name: [] for name in urls}
        for at, name in plan:
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            tasks[name].append(asyncio.create_task(_send(session, urls[name], t0 + at)))
        return {name: list(await asyncio.gather(*ts)) for name, ts in tasks.items()}


def open_loop(
    urls: dict[str, str], rate: float, seconds: float, timeout: float, *, keep_alive: bool
) -> dict[str, list[tuple[float, int]]]:
    """Each URL at ``rate`` per second for ``seconds``: (latency from due, status) each."""
    return asyncio.run(_open_loop(urls, rate, seconds, timeout, keep_alive))


async def _closed_loop(url: str, callers: int, seconds: float) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    ok = failed = 0
    connector = aiohttp.TCPConnector(limit=callers)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:

        async def caller() -> None:
            nonlocal ok, failed
            while loop.time() < ends:
                _, status = await _send(session, url, loop.time())
                if status == 200:
                    ok += 1
                else:
                    failed += 1

        await asyncio.gather(*(caller() for _ in range(callers)))
    return ok, failed


def closed_loop(url: str, callers: int, seconds: float) -> tuple[int, int]:
    """(answered 200, failed) by ``callers`` back-to-back callers in ``seconds``."""
    return asyncio.run(_closed_loop(url, callers, seconds))


def latency(samples: list[tuple[float, int]]) -> dict[str, Any]:
    seconds = [s for s, _ in samples]
    statuses = Counter(str(status) for _, status in samples)  # "0": no answer
    return {
        "statuses": dict(sorted(statuses.items())),
        "requests": len(samples),
        "ok": sum(status == 200 for _, status in samples),
        "failed": sum(status == 0 for _, status in samples),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds, default=float("nan")) * 1000,
    }


def warm_stack(url: str) -> None:
    """gunicorn's 32 threads each open their database connection before anything counts."""
    with ThreadPoolExecutor(32) as pool:
        for _ in range(3):
            list(pool.map(lambda path: warm(url + path), [*PROBES.values()] * 16))


def settled(url: str) -> None:
    """After an attack: wait until ``/healthz`` answers at once again (outer limit only)."""

    def answers() -> bool:
        started = time.monotonic()
        try:
            warm(url + "/healthz")
        except OSError:
            return False
        return time.monotonic() - started < 0.5

    wait_until(answers, "the service to settle after the attack", timeout=60)


def hostile_rows(urls: dict[str, str], sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Per variant and hostile count: the probes' latency while the attack lasts."""
    rows: dict[str, dict[str, Any]] = {variant: {} for variant in urls}
    for count in sizes.hostile:
        for variant, url in urls.items():
            port = int(url.rsplit(":", 1)[1])
            attack = Hostile(port, count, *SLOWLORIS)
            # The attack ends when the last probe is due; the probes it held are then
            # answered, late, and counted from when they were due.
            ends = threading.Timer(sizes.probe_seconds, attack.close)
            ends.start()
            try:
                probes = open_loop(
                    {name: url + path for name, path in PROBES.items()},
                    sizes.probe_rate,
                    sizes.probe_seconds,
                    sizes.client_timeout,
                    keep_alive=False,
                )
            finally:
                ends.cancel()
                attack.close()
            rows[variant][str(count)] = {name: latency(s) for name, s in probes.items()}
            print(f"{variant:<8} {count:>3} hostile: {rows[variant][str(count)]}", flush=True)
            settled(url)
    return rows


def healthy_rows(urls: dict[str, str], sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Per variant: open-loop latency and closed-loop throughput, rounds interleaved."""
    samples: dict[str, list[tuple[float, int]]] = {variant: [] for variant in urls}
    throughput: dict[str, list[float]] = {variant: [] for variant in urls}
    failed: dict[str, int] = dict.fromkeys(urls, 0)
    for _ in range(sizes.rounds):
        for variant, url in urls.items():
            got = open_loop(
                {"orders": url + HEALTHY_PATH},
                sizes.healthy_rate,
                sizes.healthy_seconds,
                sizes.client_timeout,
                keep_alive=True,
            )
            samples[variant] += got["orders"]
            ok, bad = closed_loop(url + HEALTHY_PATH, sizes.callers, sizes.closed_seconds)
            throughput[variant].append(ok / sizes.closed_seconds)
            failed[variant] += bad
    return {
        variant: {
            **latency(samples[variant]),
            "rate_per_s": sizes.healthy_rate,
            "throughput_rps": percentile(throughput[variant], 50),
            "throughput_rounds_rps": throughput[variant],
            "closed_loop_failed": failed[variant],
            "callers": sizes.callers,
        }
        for variant in urls
    }


@contextlib.contextmanager
def stacks(tmp: Path) -> Iterator[dict[str, Stack]]:
    """Both variants side by side, each on its own copy of one migrated SQLite database
    (``shared=False``: even when ``E2E_DATABASE_URL`` names a shared one)."""
    template = migrated_sqlite(tmp)
    started: dict[str, Stack] = {}
    try:
        for variant in VARIANTS:
            started[variant] = Stack(
                tmp / variant, {}, "gunicorn", template, front=variant == "nginx", shared=False
            )
        yield started
    finally:
        for stack in started.values():
            stack.stop()


def run(sizes: Sizes, *, smoke: bool) -> dict[str, Any]:
    load_before = os.getloadavg()  # other work on the machine shows in every figure
    with tempfile.TemporaryDirectory(prefix="front-door-") as tmp:
        for variant in VARIANTS:
            (Path(tmp) / variant).mkdir()
        with stacks(Path(tmp)) as running:
            urls = {variant: s.orders_url for variant, s in running.items()}
            for url in urls.values():
                warm_stack(url)
            hostile = hostile_rows(urls, sizes)
            healthy = healthy_rows(urls, sizes)
    return {
        "machine": machine() | {"load_average": [load_before, os.getloadavg()]},
        "smoke": smoke,
        "sizes": asdict(sizes),
        "front": {"max_body_bytes": MAX_BODY_BYTES, "conn_per_client": CONN_PER_CLIENT},
        "hostile": hostile,
        "healthy": healthy,
    }


def section(results: dict[str, Any]) -> list[str]:
    """Its section of docs/benchmarks.md."""
    sizes, hostile, healthy = results["sizes"], results["hostile"], results["healthy"]
    before, after = healthy["gunicorn"], healthy["nginx"]
    m = results["machine"]
    load = m.get("load_average", [[float("nan")], [float("nan")]])

    def cell(row: dict[str, Any]) -> str:
        wrong = ", ".join(f"{n} x {s}" for s, n in row["statuses"].items() if s != "200")
        return f"{row['p99_ms']:,.0f} ms" + (f" ({wrong})" if wrong else "")

    lines = [
        "## The front door: nginx before gunicorn",
        "",
        "`make serve` before (gunicorn alone, 1 worker x 32 threads) and now (nginx in front",
        "of it), both running in one run (`make bench-front`, figures in `bench/front_door.json`).",
        f"Hostile connections drip a header byte a second at Orders for"
        f" {sizes['probe_seconds']:g} s while a prober",
        f"sends `/healthz` and `GET /orders/?user_id=1` (calls Users), each at"
        f" {sizes['probe_rate']:g}/s,",
        "open-loop on fresh connections: latency counts from when each request was due.",
        "",
        "| hostile connections | /healthz p99, before | after | Orders call p99, before | after |",
        "|---|---|---|---|---|",
    ]
    for count in (str(c) for c in sizes["hostile"]):
        b, a = hostile["gunicorn"][count], hostile["nginx"][count]
        lines.append(
            f"| {count} | {cell(b['healthz'])} | {cell(a['healthz'])} |"
            f" {cell(b['orders'])} | {cell(a['orders'])} |"
        )
    lines += [
        "",
        "Before, every thread waits on a connection that never finishes its headers: a probe is",
        "answered only once the attack ends, so that figure is the attack's length, not a limit",
        "(status 0: no answer).",
        "",
        f"The healthy path, `GET /orders/?user_id=1`: open-loop at {sizes['healthy_rate']:g}/s"
        " on kept-alive connections",
        f"({before['requests']} requests each), and {sizes['callers']} closed-loop callers for"
        " throughput, rounds interleaved:",
        "",
        "| | p50 | p99 | throughput |",
        "|---|---|---|---|",
        f"| gunicorn alone | {before['p50_ms']:.1f} ms | {before['p99_ms']:.1f} ms |"
        f" {before['throughput_rps']:,.0f} req/s |",
        f"| nginx in front | {after['p50_ms']:.1f} ms | {after['p99_ms']:.1f} ms |"
        f" {after['throughput_rps']:,.0f} req/s |",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs, load average {load[0][0]:.1f} before the"
        f" run and {load[1][0]:.1f} after:",
        "other work on the machine is in every figure, on both sides alike. An Orders call",
        "crosses two nginx (Orders' and Users').",
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
