"""A slow Users must not take Orders down: open-loop load through a slow Users and back.

    python -m bench.slow_users --baseline-ref 3aed396   # ~8 min (make bench-slow)
    python -m bench.slow_users --smoke                  # seconds: CI keeps it working

Orders and Users under gunicorn as ``make serve`` runs them (1 worker, 32 threads each),
the fault proxy between them, faults set with ``manage.py simulate_outage``. The load is
open-loop: request i of a stream is due at t0 + i/rate and sent then, whatever the
earlier ones are doing, and its latency counts from when it was due, not from when it was
sent: a caller that waits for an answer before sending the next request would slow down
exactly when Orders does, and hide the queue (coordinated omission). Three streams at once:
``GET /orders/?user_id=1`` (calls Users) at 40/s, and two probes that never call Users,
``/healthz`` and ``GET /orders/?user_id=99`` (a 404), at 10/s each.

1. Timeline: Users healthy, then ``slow --delay 1.5``, then ``clear``; for today's code
   (``--baseline-ref``, on its own stack) and for this tree with its defaults (and with
   each ``--max-concurrency`` given). Figures per phase and stream; the probes' p99 under
   slow against healthy; how long after ``clear`` Orders answers normally again.
2. Hedging: ``slow --delay 0.5 --rate 0.05``, Users-bound load only at 20/s, for each
   ``USERS_HEDGE_AFTER`` (0 = off, the same-run baseline) on its own Orders process,
   in interleaved rounds: Orders' p99 and Users requests per Orders request (counted by
   request ID in Users' log).

Raw samples go to bench/out/slow_users.json (not in git); the figures to
bench/slow_users.json and the chart to docs/slow-users.png (in git); ``python -m
bench.report`` writes its section of docs/benchmarks.md. Loopback only; every load is
bounded in count and time; every process started is stopped, on SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.post_orders import baseline_tree
from bench.run import machine, percentile, warm
from bench.stack import ROOT, Service, Stack, migrated_sqlite, stop_on_signals
from resilient_http import UpstreamConfig

FIGURES = ROOT / "bench" / "slow_users.json"
RAW = ROOT / "bench" / "out" / "slow_users.json"
CHART = ROOT / "docs" / "slow-users.png"
BASELINE_REF = "3aed396"  # main before the bulkhead, slow-call breaking and hedging


@dataclass(frozen=True)
class Stream:
    name: str
    path: str
    rate: float  # requests per second


USERS_BOUND = Stream("users_bound", "/orders/?user_id=1", 40)
HEALTHZ = Stream("healthz", "/healthz", 10)
NO_USERS = Stream("user_99", "/orders/?user_id=99", 10)
STREAMS = (USERS_BOUND, HEALTHZ, NO_USERS)
PROBES = (HEALTHZ, NO_USERS)
#: Concurrent requests per warm-up round: gunicorn's threads, each opening its database
#: connection on its first request, which a fresh process would otherwise pay under load.
WARM_THREADS = 32


def warm_all(url: str, rounds: int = 5) -> None:
    """Every stream's path, ``WARM_THREADS`` at a time, before anything is measured."""
    paths = [stream.path for stream in STREAMS]
    with ThreadPoolExecutor(WARM_THREADS) as pool:
        for _ in range(rounds):
            list(pool.map(lambda i: warm(f"{url}{paths[i % len(paths)]}"), range(WARM_THREADS)))


PHASES = ("healthy", "slow", "recovered")
#: One request of a plan: when it is due (seconds from t0), its stream, its index there.
Due = tuple[float, Stream, int]


@dataclass(frozen=True)
class Sizes:
    """How long each part runs; ``SMOKE`` only proves the machinery works."""

    healthy: float = 25.0
    slow: float = 25.0
    recovered: float = 15.0
    slow_delay: float = 1.5
    rate_scale: float = 1.0  # every stream's rate times this
    hedge_rate: float = 20.0
    hedge_seconds: float = 15.0  # per round and setting
    hedge_rounds: int = 2
    hedge_delay: float = 0.5
    hedge_fault_rate: float = 0.05
    client_timeout: float = 15.0  # generous: a request unanswered by then is a failure


SMOKE = Sizes(
    healthy=0.6,
    slow=0.6,
    recovered=0.6,
    slow_delay=0.2,
    rate_scale=0.25,
    hedge_rate=10.0,
    hedge_seconds=0.5,
    hedge_rounds=1,
    hedge_delay=0.1,
    client_timeout=10.0,
)


@dataclass(frozen=True)
class Sample:
    stream: str
    due: float  # seconds from the load's t0
    lag: float  # how late the sender started it: its own lag, not Orders'
    latency: float  # answer (or failure) minus due: includes the lag
    status: int  # 0: no answer (timeout, connection error)
    code: str  # the problem's code, or the exception's name
    request_id: str


@dataclass(frozen=True)
class Action:
    """``run`` at ``at`` seconds from t0, in a thread (a ``simulate_outage`` call)."""

    at: float
    name: str
    run: Callable[[], object]


def plan(streams: tuple[Stream, ...], seconds: float, scale: float = 1.0) -> list[Due]:
    """(due, stream, index) of every request, in due order: request i at i/rate."""
    due = []
    for stream in streams:
        rate = stream.rate * scale
        due += [(i / rate, stream, i) for i in range(round(rate * seconds))]
    return sorted(due, key=lambda item: item[0])


async def _send(
    session: aiohttp.ClientSession, url: str, stream: Stream, due: float, t0: float, rid: str
) -> Sample:
    loop = asyncio.get_running_loop()
    lag = loop.time() - (t0 + due)
    try:
        async with session.get(url, headers={"X-Request-ID": rid}) as response:
            body = await response.read()
            status = response.status
        code = ""
        if status >= 400:
            try:
                code = str(json.loads(body).get("code", ""))
            except ValueError:
                code = "not_json"
    except (aiohttp.ClientError, TimeoutError) as exc:
        status, code = 0, type(exc).__name__
    return Sample(stream.name, due, lag, loop.time() - (t0 + due), status, code, rid)


async def _open_loop(
    base_url: str, requests: list[Due], tag: str, timeout: float, actions: list[Action]
) -> tuple[list[Sample], dict[str, float]]:
    loop = asyncio.get_running_loop()
    # One connection per request (Connection: close): a pooled keep-alive connection that
    # the server closes as it is reused would count as Orders' failure.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    done: dict[str, float] = {}

    async def act(action: Action, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + action.at - loop.time()))
        await loop.run_in_executor(None, action.run)
        done[action.name] = loop.time() - t0  # when it took effect (the command returned)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        t0 = loop.time() + 0.1
        acting = [asyncio.create_task(act(a, t0)) for a in actions]
        tasks = []
        for due, stream, index in requests:
            wait = t0 + due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            rid = f"{tag}-{stream.name}-{index}"
            url = base_url + stream.path
            tasks.append(asyncio.create_task(_send(session, url, stream, due, t0, rid)))
        samples = await asyncio.gather(*tasks)
        await asyncio.gather(*acting)
    return list(samples), done


def open_loop(
    base_url: str,
    requests: list[Due],
    *,
    tag: str,
    timeout: float,
    actions: tuple[Action, ...] = (),
) -> tuple[list[Sample], dict[str, float]]:
    """Send ``requests`` (from ``plan``) on schedule; every one waited for (at most
    ``timeout``) and returned as a ``Sample``, and when each action took effect."""
    return asyncio.run(_open_loop(base_url, requests, tag, timeout, list(actions)))


def ms(value: float) -> float:
    return value * 1000


def summary(samples: list[Sample], deadline: float = 5.0) -> dict[str, Any]:
    """Latency (from due) and what came back, by status and code; how many were a 200
    within ``deadline`` (Orders' own deadline: a later 200 is one nobody waited for)."""
    latencies = [s.latency for s in samples]
    outcomes = Counter(
        str(s.status) + (f" {s.code}" if s.code else "") if s.status else f"failed {s.code}"
        for s in samples
    )
    return {
        "requests": len(samples),
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies, default=float("nan"))),
        "answered": sum(s.status != 0 for s in samples),
        "outcomes": dict(sorted(outcomes.items(), key=lambda kv: -kv[1])),
        "fast_503": sum(s.status == 503 and s.latency < 0.25 for s in samples),
        "ok_in_time": sum(s.status == 200 and s.latency <= deadline for s in samples),
    }


def lag(samples: list[Sample]) -> dict[str, float]:
    lags = [s.lag for s in samples]
    return {
        "p50_ms": ms(percentile(lags, 50)),
        "p99_ms": ms(percentile(lags, 99)),
        "max_ms": ms(max(lags, default=float("nan"))),
    }


def recovery(samples: list[Sample], cleared: float, normal: float) -> float | None:
    """Seconds from ``clear`` taking effect to the due time after which every Users-bound
    request got a 200 within ``normal`` seconds; ``None`` if that never held."""
    bound = sorted((s for s in samples if s.stream == USERS_BOUND.name), key=lambda s: s.due)
    recovered_at = None
    for s in reversed(bound):
        if s.due < cleared:
            break
        if s.status != 200 or s.latency > normal:
            break
        recovered_at = s.due
    if recovered_at is None:
        return None
    return max(0.0, recovered_at - cleared)


def timeline(orders: Service, stack: Stack, sizes: Sizes) -> tuple[dict[str, Any], list[Sample]]:
    """Healthy, slow, recovered, as one open-loop run against ``orders``."""
    healthy_end = sizes.healthy
    slow_end = sizes.healthy + sizes.slow
    total = slow_end + sizes.recovered
    actions = (
        Action(
            healthy_end,
            "slow",
            lambda: stack.manage("simulate_outage", "slow", "--delay", str(sizes.slow_delay)),
        ),
        Action(slow_end, "clear", lambda: stack.manage("simulate_outage", "clear")),
    )
    requests = plan(STREAMS, total, sizes.rate_scale)
    tag = f"t{uuid.uuid4().hex[:8]}"
    samples, done = open_loop(
        orders.url, requests, tag=tag, timeout=sizes.client_timeout, actions=actions
    )
    bounds = {
        "healthy": (0, healthy_end),
        "slow": (healthy_end, slow_end),
        "recovered": (slow_end, total),
    }
    config = UpstreamConfig(name="users", base_url=orders.url)
    deadline = float(orders.env.get("USERS_DEADLINE", config.deadline))
    breaker_reset = float(orders.env.get("USERS_BREAKER_RESET", config.breaker_reset))
    phases: dict[str, Any] = {}
    for phase, (lo, hi) in bounds.items():
        inside = [s for s in samples if lo <= s.due < hi]
        phases[phase] = {
            stream.name: summary([s for s in inside if s.stream == stream.name], deadline)
            for stream in STREAMS
        }
        phases[phase]["sender_lag"] = lag(inside)
    healthy_p99 = phases["healthy"][USERS_BOUND.name]["p99_ms"] / 1000
    normal = max(2 * healthy_p99, 0.25)
    recovered = recovery(samples, done["clear"], normal)
    figures = {
        "orders_env": {
            k: v
            for k, v in orders.env.items()
            if k.startswith("USERS_") and k != "USERS_SERVICE_URL"
        },
        "phases": phases,
        "probe_p99_slow_vs_healthy": {
            p.name: phases["slow"][p.name]["p99_ms"] / phases["healthy"][p.name]["p99_ms"]
            for p in PROBES
        },
        "all_answered": all(s.status != 0 for s in samples),
        "failed": sum(s.status == 0 for s in samples),
        "sender_lag": lag(samples),
        "fault_set_at_s": done["slow"],
        "cleared_at_s": done["clear"],
        "normal_latency_ms": ms(normal),
        "recovery_s": recovered,
        "breaker_reset_s": breaker_reset,
        "deadline_s": deadline,
    }
    return figures, samples


def users_requests_by_id(users: Service, tag: str) -> Counter[str]:
    """How many Users requests each Orders request of this run made (by ``X-Request-ID``)."""
    return Counter(
        rid for _, _, rid in users.user_request_lines() if rid and rid.startswith(tag + "-")
    )


def wait_for_log(users: Service, tags: list[str], settle: float = 1.0, limit: float = 30.0) -> None:
    """Until Users' log stops growing with these runs' lines (a hedge cancelled by Orders
    still finishes at Users and logs a moment later); ``limit`` is an outer bound."""
    give_up = time.monotonic() + limit
    count, since = -1, time.monotonic()
    while time.monotonic() < give_up:
        now = sum(sum(users_requests_by_id(users, tag).values()) for tag in tags)
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return
        time.sleep(0.2)


def hedging(stack: Stack, settings: list[str], sizes: Sizes) -> tuple[dict[str, Any], list]:
    """Each ``USERS_HEDGE_AFTER`` on its own Orders process, same Users, interleaved rounds."""
    services = {value: stack.add_orders(USERS_HEDGE_AFTER=value) for value in settings}
    for service in services.values():
        warm(f"{service.url}{USERS_BOUND.path}")
    stack.manage(
        "simulate_outage",
        "slow",
        "--delay",
        str(sizes.hedge_delay),
        "--rate",
        str(sizes.hedge_fault_rate),
    )
    stream = Stream(USERS_BOUND.name, USERS_BOUND.path, sizes.hedge_rate)
    tags = {value: f"h{uuid.uuid4().hex[:8]}" for value in settings}
    samples: dict[str, list[Sample]] = {value: [] for value in settings}
    try:
        for round_ in range(sizes.hedge_rounds):
            for value, service in services.items():
                got, _ = open_loop(
                    service.url,
                    plan((stream,), sizes.hedge_seconds),
                    tag=f"{tags[value]}-r{round_}",
                    timeout=sizes.client_timeout,
                )
                samples[value] += got
    finally:
        stack.manage("simulate_outage", "clear")
    figures: dict[str, Any] = {}
    wait_for_log(stack.users, list(tags.values()))
    for value in settings:
        per_request = users_requests_by_id(stack.users, tags[value])
        got = samples[value]
        figures[value] = {
            **summary(got),
            "users_requests": sum(per_request.values()),
            "users_per_orders_request": sum(per_request.values()) / max(1, len(got)),
            "sender_lag": lag(got),
        }
    off = figures.get("0")
    if off:
        for f in figures.values():
            f["p99_vs_off"] = f["p99_ms"] / off["p99_ms"]
            f["users_requests_vs_off"] = (
                f["users_per_orders_request"] / off["users_per_orders_request"]
            )
    raw = [{"hedge_after": v, **asdict(s)} for v, got in samples.items() for s in got]
    return figures, raw


@contextmanager
def started(tmp: Path, name: str, root: Path, template: Path | None) -> Iterator[Stack]:
    directory = tmp / name
    directory.mkdir()
    stack = Stack(directory, {}, "gunicorn", template, proxy=True, root=root)
    try:
        yield stack
    finally:
        stack.stop()


def run(
    sizes: Sizes,
    *,
    baseline_ref: str | None,
    concurrency: list[str],
    hedge_after: list[str],
    smoke: bool = False,
    template: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The figures and the raw samples of one run (``template``: a migrated SQLite file to
    copy for this tree's stack, from ``migrated_sqlite``)."""
    results: dict[str, Any] = {
        "machine": machine(),
        "load": os.getloadavg()[0],
        "smoke": smoke,
        "sizes": asdict(sizes),
        "streams": {s.name: {"path": s.path, "rate": s.rate * sizes.rate_scale} for s in STREAMS},
        "baseline_ref": baseline_ref,
        "timeline": {},
    }
    raw: dict[str, Any] = {"timeline": {}, "hedging": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if baseline_ref:
            root = baseline_tree(baseline_ref, tmp / "baseline")
            print(f"today's code ({baseline_ref}): timeline", flush=True)
            with started(tmp, "today", root, None) as stack:
                warm_all(stack.orders.url)
                figures, samples = timeline(stack.orders, stack, sizes)
            results["timeline"]["today"] = figures
            raw["timeline"]["today"] = [asdict(s) for s in samples]
        with started(tmp, "new", ROOT, template or migrated_sqlite(tmp)) as stack:
            variants: dict[str, Service] = {"new": stack.orders}
            for value in concurrency:
                variants[f"new_max_{value}"] = stack.add_orders(USERS_MAX_CONCURRENCY=value)
            for name, orders in variants.items():
                print(f"{name}: timeline", flush=True)
                warm_all(orders.url)
                figures, samples = timeline(orders, stack, sizes)
                results["timeline"][name] = figures
                raw["timeline"][name] = [asdict(s) for s in samples]
            if hedge_after:
                print(f"hedging: USERS_HEDGE_AFTER in {', '.join(hedge_after)}", flush=True)
                results["hedging"], raw["hedging"] = hedging(stack, hedge_after, sizes)
    compare_healthy(results["timeline"])
    results["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return results, raw


def compare_healthy(timelines: dict[str, dict[str, Any]]) -> None:
    """Each probe's p99 under slow against the lowest healthy p99 of the run too: the same
    load on the same machine, so one noisy healthy phase cannot flatter its own ratio."""
    for probe in PROBES:
        best = min(t["phases"]["healthy"][probe.name]["p99_ms"] for t in timelines.values())
        for t in timelines.values():
            vs_best = t.setdefault("probe_p99_slow_vs_best_healthy", {})
            vs_best[probe.name] = t["phases"]["slow"][probe.name]["p99_ms"] / best


def chart(results: dict[str, Any], raw: dict[str, Any], path: Path) -> None:
    """Each timeline's requests by due time and latency; the hedging latencies' tail."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(raw["timeline"])
    rows = len(names) + (1 if raw["hedging"] else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 3.2 * rows), dpi=100, squeeze=False)
    sizes = results["sizes"]
    slow_at, clear_at = sizes["healthy"], sizes["healthy"] + sizes["slow"]

    def bound(status: int) -> Callable[[dict[str, Any]], bool]:
        return lambda s: s["stream"] == USERS_BOUND.name and s["status"] == status

    kinds = (
        ("Users-bound 200", "tab:green", bound(200)),
        ("Users-bound 503", "tab:orange", bound(503)),
        ("no answer, or another error", "tab:red", lambda s: s["status"] not in (200, 404, 503)),
        (
            "probes (healthz, user 99)",
            "tab:blue",
            lambda s: s["stream"] != USERS_BOUND.name and s["status"] in (200, 404),
        ),
    )
    for ax, name in zip(axes[:, 0], names, strict=False):
        samples = raw["timeline"][name]
        for label, color, chosen in kinds:
            picked = [s for s in samples if chosen(s)]
            ax.scatter(
                [s["due"] for s in picked],
                [max(ms(s["latency"]), 0.5) for s in picked],
                s=6,
                alpha=0.5,
                color=color,
                label=f"{label} ({len(picked):,})",
            )
        ax.axvspan(slow_at, clear_at, color="0.9", zorder=0)
        ax.set_yscale("log")
        ax.set_ylim(1, 2 * ms(sizes["client_timeout"]))  # one scale: the panels compare
        ax.set_ylabel("latency from due (ms)")
        title = "today's code" if name == "today" else "this version"
        env = results["timeline"][name]["orders_env"]
        if env:
            title += ", " + ", ".join(f"{k}={v}" for k, v in env.items())
        elif name != "today":
            title += ", defaults"
        ax.set_title(
            f"{title} ({results['baseline_ref'] or ''})" if name == "today" else title,
            fontsize=10,
            loc="left",
        )
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(True, which="major", alpha=0.3)
    axes[len(names) - 1, 0].set_xlabel(
        f"request due (s); shaded: Users slow ({sizes['slow_delay']:g} s a request)"
    )
    if raw["hedging"]:
        ax = axes[-1, 0]
        for value in results["hedging"]:
            chosen = [s for s in raw["hedging"] if s["hedge_after"] == value]
            latencies = sorted(ms(s["latency"]) for s in chosen)
            n = len(latencies)
            label = "hedging off" if value == "0" else f"USERS_HEDGE_AFTER={value}"
            ax.plot(latencies, [(i + 1) / n for i in range(n)], label=label)
        ax.set_xscale("log")
        ax.set_ylim(0.9, 1.001)
        ax.set_xlabel("Orders latency (ms)")
        ax.set_ylabel("fraction answered")
        ax.set_title(
            f"hedging: Users slow ({sizes['hedge_delay']:g} s) for"
            f" {sizes['hedge_fault_rate']:.0%} of requests, {sizes['hedge_rate']:g} req/s",
            fontsize=10,
            loc="left",
        )
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        "Orders (gunicorn, 1 worker x 32 threads) under open-loop load, Users slow", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(value: float | None, unit: str = "ms") -> str:
    if value is None or value != value:  # None or nan
        return "n/a"
    if unit == "ms":
        return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.2f} s"


def _outcomes(summary_: dict[str, Any]) -> str:
    """``200: 1,234; 503 users_overloaded: 56``, most frequent first."""
    return "; ".join(f"{what}: {n:,}" for what, n in summary_["outcomes"].items())


def verdicts(results: dict[str, Any]) -> list[str]:
    """Each target of the issue, met or not, per version measured."""

    def yes(met: bool) -> str:
        return "met" if met else "**not met**"

    lines = []
    for name, t in results["timeline"].items():
        slow = t["phases"]["slow"]
        ratios = [
            max(same, t.get("probe_p99_slow_vs_best_healthy", {}).get(probe, same))
            for probe, same in t["probe_p99_slow_vs_healthy"].items()
        ]
        bound = slow[USERS_BOUND.name]
        excess = bound["requests"] - bound["ok_in_time"]
        reset = t["breaker_reset_s"]
        recovered = t["recovery_s"]
        lines.append(
            f"- {name}: probes' p99 under slow within 1.5x of healthy (the larger of the two"
            f" ratios: {', '.join(f'{v:.2f}x' for v in ratios)}):"
            f" {yes(all(v <= 1.5 for v in ratios))}; every request answered"
            f" ({t['failed']:,} not): {yes(t['failed'] == 0)}; most of the excess (requests"
            f" without a 200 within the {t['deadline_s']:g} s deadline) a fast 503"
            f" ({bound['fast_503']:,} of {excess:,}): {yes(bound['fast_503'] > excess / 2)};"
            f" normal again within {reset + 1:g} s of `clear`"
            f" ({_fmt(recovered, 's')}): {yes(recovered is not None and recovered <= reset + 1)}."
        )
    for value, f in results.get("hedging", {}).items():
        if value == "0" or "p99_vs_off" not in f:
            continue
        lines.append(
            f"- hedging after {value} s: p99 at most 1/3 of off's ({f['p99_vs_off']:.2f}x) and"
            f" at most 10 % more Users requests ({f['users_requests_vs_off']:.2f}x):"
            f" {yes(f['p99_vs_off'] <= 1 / 3 and f['users_requests_vs_off'] <= 1.10)}."
        )
    return ["Targets:", "", *lines, ""]


def section(results: dict[str, Any], chart_name: str | None = None) -> list[str]:
    """The Markdown section of docs/benchmarks.md, from the committed figures."""
    if not results.get("timeline"):
        return []
    s = results["sizes"]
    streams = results["streams"]
    m = results["machine"]
    names = list(results["timeline"])

    def title(name: str) -> str:
        if name == "today":
            return f"today (`{results['baseline_ref']}`)"
        env = results["timeline"][name]["orders_env"]
        return "this version" + (
            " (" + ", ".join(f"`{k}={v}`" for k, v in env.items()) + ")" if env else ", defaults"
        )

    lines = [
        "## A slow Users",
        "",
        "Open-loop load (`python -m bench.slow_users"
        + (f" --baseline-ref {results['baseline_ref']}`" if results["baseline_ref"] else "`")
        + f", {results['date']}, {m['cpus']} CPUs, load average {results['load']:.1f}):"
        f" `GET /orders/?user_id=1` (calls Users) at {streams['users_bound']['rate']:g}/s,"
        f" `/healthz` and `GET /orders/?user_id=99` (a 404 that never calls Users) at"
        f" {streams['healthz']['rate']:g}/s each, every request sent when due whatever the"
        " others are doing, its latency counted from when it was due (no coordinated"
        f" omission), client timeout {s['client_timeout']:g} s. Both services under gunicorn"
        " as `make serve` runs them (1 worker, 32 threads), the fault proxy between them."
        f" Users healthy for {s['healthy']:g} s, `simulate_outage slow --delay"
        f" {s['slow_delay']:g}` for {s['slow']:g} s, then `clear` and {s['recovered']:g} s"
        " more; each version on its own stack, in turn, in one run.",
        "",
    ]
    if results.get("smoke"):
        lines += ["**Smoke run: tiny counts, figures are not meaningful.**", ""]
    if chart_name:
        lines += [f"![Orders latency with a slow Users, by due time]({chart_name})", ""]
    lines += [
        "| Figure | " + " | ".join(title(n) for n in names) + " | Target |",
        "|---|" + "---|" * len(names) + "---|",
    ]

    def row(figure: str, cell: Callable[[dict[str, Any]], str], target: str = "") -> None:
        lines.append(
            f"| {figure} | "
            + " | ".join(cell(results["timeline"][n]) for n in names)
            + f" | {target} |"
        )

    for probe, label in (("healthz", "`/healthz`"), ("user_99", "user 99 (404)")):
        row(
            f"{label} p99, healthy / slow",
            lambda t, p=probe: f"{_fmt(t['phases']['healthy'][p]['p99_ms'])} /"
            f" {_fmt(t['phases']['slow'][p]['p99_ms'])}",
        )
        row(
            f"{label} p99, slow vs healthy",
            lambda t, p=probe: _fmt(t["probe_p99_slow_vs_healthy"][p], "x"),
            "<= 1.5x",
        )
        row(
            f"{label} p99, slow vs the run's lowest healthy p99",
            lambda t, p=probe: _fmt(t.get("probe_p99_slow_vs_best_healthy", {}).get(p), "x"),
            "<= 1.5x",
        )
    row(
        "Users-bound p50, healthy / slow",
        lambda t: f"{_fmt(t['phases']['healthy']['users_bound']['p50_ms'])} /"
        f" {_fmt(t['phases']['slow']['users_bound']['p50_ms'])}",
    )
    row(
        "Users-bound p99, healthy / slow",
        lambda t: f"{_fmt(t['phases']['healthy']['users_bound']['p99_ms'])} /"
        f" {_fmt(t['phases']['slow']['users_bound']['p99_ms'])}",
    )
    row(
        "Users-bound answers while slow",
        lambda t: _outcomes(t["phases"]["slow"]["users_bound"]),
        "most of the excess a fast 503",
    )
    row(
        "of which 200 within the deadline / 503 within 250 ms",
        lambda t: f"{t['phases']['slow'][USERS_BOUND.name]['ok_in_time']:,} /"
        f" {t['phases']['slow'][USERS_BOUND.name]['fast_503']:,}",
    )
    row("requests unanswered (timeout, error)", lambda t: f"{t['failed']:,}", "0")
    row(
        "`clear` to normal answers",
        lambda t: _fmt(t["recovery_s"], "s"),
        f"<= {results['timeline'][names[-1]]['breaker_reset_s'] + 1:g} s (reset + 1)",
    )
    row(
        "sender lag p99, healthy / slow",
        lambda t: f"{_fmt(t['phases']['healthy']['sender_lag']['p99_ms'])} /"
        f" {_fmt(t['phases']['slow']['sender_lag']['p99_ms'])}",
    )
    row("sender lag, worst", lambda t: _fmt(t["sender_lag"]["max_ms"]))
    lines += [
        "",
        '"Normal" after `clear`: from that due time on, every Users-bound request got a 200'
        " within twice its healthy p99 (at least 250 ms). The sender's lag is how late it"
        " started a request against its schedule: its own delay, included in the latencies."
        ' "The run\'s lowest healthy p99": the lowest any version had with Users healthy in'
        " this run (the same load on the same machine), so that one noisy healthy phase"
        " cannot flatter its own ratio; the targets below take the larger of the two ratios.",
        "",
    ]
    hedging = results.get("hedging")
    if hedging:
        lines += [
            f"**Hedging.** `simulate_outage slow --delay {s['hedge_delay']:g} --rate"
            f" {s['hedge_fault_rate']:g}`: Users-bound requests only, {s['hedge_rate']:g}/s"
            f" open-loop, {s['hedge_rounds']} interleaved rounds of {s['hedge_seconds']:g} s"
            " per setting, each setting its own Orders process on the same Users. Users"
            " requests counted in Users' log by each Orders request's ID.",
            "",
            "| `USERS_HEDGE_AFTER` | Orders p50 | p99 | p99 vs off | Users requests per"
            " Orders request | vs off | answers |",
            "|---|---|---|---|---|---|---|",
        ]
        for value, f in hedging.items():
            lines.append(
                f"| {value}{' (off)' if value == '0' else ''} | {_fmt(f['p50_ms'])} |"
                f" {_fmt(f['p99_ms'])} | {_fmt(f.get('p99_vs_off'), 'x')} |"
                f" {f['users_per_orders_request']:.3f} |"
                f" {_fmt(f.get('users_requests_vs_off'), 'x')} | {_outcomes(f)} |"
            )
        lines += [""]
    lines += verdicts(results)
    return [wrapped for line in lines for wrapped in _wrap(line)]


def _wrap(line: str) -> list[str]:
    """Prose wrapped as the rest of docs/benchmarks.md is; table rows and images kept."""
    if not line or line.startswith(("|", "!", "#")):
        return [line]
    indent = "  " if line.startswith("- ") else ""
    return textwrap.wrap(line, width=95, subsequent_indent=indent, break_on_hyphens=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: seconds")
    parser.add_argument("--baseline-ref", help=f"today's code to compare (e.g. {BASELINE_REF})")
    parser.add_argument(
        "--max-concurrency", default="", help="comma-separated USERS_MAX_CONCURRENCY values too"
    )
    parser.add_argument("--hedge-after", default="0,0.05,0.1", help="USERS_HEDGE_AFTER values")
    parser.add_argument("--out", type=Path, help=f"the figures (default {FIGURES.name})")
    parser.add_argument("--raw", type=Path, help="the raw samples (default bench/out/)")
    parser.add_argument("--chart", type=Path, default=CHART)
    args = parser.parse_args()
    stop_on_signals()
    sizes = SMOKE if args.smoke else Sizes()
    if args.smoke:  # never over the committed figures
        args.out = args.out or RAW.with_name("slow_users_smoke.json")
        args.raw = args.raw or RAW.with_name("slow_users_smoke_raw.json")
    args.out, args.raw = args.out or FIGURES, args.raw or RAW
    split = lambda text: [v.strip() for v in text.split(",") if v.strip()]  # noqa: E731
    results, raw = run(
        sizes,
        baseline_ref=args.baseline_ref,
        concurrency=split(args.max_concurrency),
        hedge_after=split(args.hedge_after),
        smoke=args.smoke,
    )
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps(raw) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    if not args.smoke:
        chart(results, raw, args.chart)
        print(f"wrote {args.chart}")
    print("\n".join(section(results)))
    print(f"wrote {args.out} and {args.raw}")


if __name__ == "__main__":
    main()
