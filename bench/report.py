"""Turn a benchmark run into docs/benchmarks.md, docs/benchmark-latency.png and the
committed figures (bench/results.json: no raw samples).

python -m bench.report [--results bench/out/results.json] [--docs docs]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet import CHART as FLEET_CHART
from bench.fleet import FIGURES as FLEET_FIGURES
from bench.fleet import section as fleet_section
from bench.front_door import FIGURES as FRONT_FIGURES
from bench.front_door import section as front_door_section
from bench.overhead import CHART as OVERHEAD_CHART
from bench.overhead import FIGURES as OVERHEAD_FIGURES
from bench.overhead import section as overhead_section
from bench.post_orders import BEGIN as POST_BEGIN
from bench.post_orders import END as POST_END
from bench.run import FIGURES, RESULTS, figures
from bench.slow_users import CHART as SLOW_CHART
from bench.slow_users import FIGURES as SLOW_FIGURES
from bench.slow_users import section as slow_users_section
from bench.tracing import FIGURES as TRACING_FIGURES
from bench.tracing import section as tracing_section

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHART = "benchmark-latency.png"


Reader = Callable[[dict[str, Any]], float | None]


def get(*keys: str) -> Reader:
    """A reader of ``results[k1][k2]...``; ``None`` where the run did not measure it."""

    def read(r: dict[str, Any]) -> float | None:
        value: Any = r
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return read


def none(r: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class Row:
    scenario: str
    figure: str
    ours: Reader
    tutorial: Reader = none
    raw: Reader = none
    unit: str = ""
    target: str = ""
    ok: Callable[[float], bool] | None = None


def both(section: str, key: str) -> dict[str, Reader]:
    """This project's and the tutorial's figure ``key`` of scenario ``section``."""
    return {"ours": get(section, "resilient", key), "tutorial": get(section, "tutorial", key)}


OVERHEAD = "client_overhead"
ROWS = [
    Row(
        "1 healthy overhead",
        "sequential Users calls",
        get(OVERHEAD, "resilient"),
        get(OVERHEAD, "tutorial"),
        get(OVERHEAD, "raw_pooled"),
        unit="calls/s",
    ),
    Row("", "vs raw pooled session", get(OVERHEAD, "resilient_vs_raw"), unit="x",
        target=">= 0.95x", ok=lambda v: v >= 0.95),
    Row("", "vs tutorial client", get(OVERHEAD, "resilient_vs_tutorial"), unit="x",
        target=">= 1.5x", ok=lambda v: v >= 1.5),
    Row("2 healthy Orders, 16 callers", "throughput", **both("healthy", "requests_per_second"),
        unit="req/s"),
    Row("", "p50", **both("healthy", "p50_ms"), unit="ms"),
    Row("", "p99", **both("healthy", "p99_ms"), unit="ms"),
    Row("3 hard outage (502), 16 callers", "p50", **both("hard_outage", "p50_ms"), unit="ms"),
    Row("", "p99", **both("hard_outage", "p99_ms"), unit="ms",
        target="<= 5000 ms (deadline)", ok=lambda v: v <= 5000),
    Row("", "p50 after the first second", **both("hard_outage", "steady_p50_ms"), unit="ms",
        target="< 20 ms", ok=lambda v: v < 20),
    Row("", "p99 after the first second", **both("hard_outage", "steady_p99_ms"), unit="ms"),
    Row("", "p50, one caller while open", **both("hard_outage", "open_alone_p50_ms"), unit="ms"),
    Row("", "p99, one caller while open", **both("hard_outage", "open_alone_p99_ms"), unit="ms",
        target="< 20 ms", ok=lambda v: v < 20),
    Row("", "Users requests per Orders request", **both("hard_outage", "amplification"),
        unit="x", target="<= 1.25", ok=lambda v: v <= 1.25),
    Row("", "Orders throughput", **both("hard_outage", "requests_per_second"), unit="req/s"),
    Row("4 flaky upstream (30 % errors)", "success", **both("flaky", "success_ratio"), unit="%",
        target=">= 99.5 %", ok=lambda v: v >= 0.995),
    Row("", "Users requests per Orders request", **both("flaky", "amplification"), unit="x",
        target="<= 1.5", ok=lambda v: v <= 1.5),
    Row("5 recovery", "`clear` to first 200", **both("recovery", "seconds_to_first_200"),
        unit="s", target="<= 6 s (reset + 1)", ok=lambda v: v <= 6),
    Row("6 slow drip (4 bytes/s)", "Orders latency, worst", **both("drip", "max_ms"), unit="ms",
        target="<= 5250 ms", ok=lambda v: v <= 5250),
    Row("7 memory, outage", "Orders RSS growth", get("memory", "growth"), unit="%",
        target="< 10 %", ok=lambda v: v < 0.10),
]  # fmt: skip


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "%":
        return f"{value * 100:.2f} %"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"


def table(server: dict[str, Any]) -> list[str]:
    lines = [
        "| Scenario | Figure | This project | Tutorial | Raw pooled | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        ours = row.ours(server)
        if ours is None:
            continue
        verdict = "" if row.ok is None else ("yes" if row.ok(ours) else "**no**")
        lines.append(
            f"| {row.scenario} | {row.figure} | {fmt(ours, row.unit)} | "
            f"{fmt(row.tutorial(server), row.unit)} | {fmt(row.raw(server), row.unit)} | "
            f"{row.target} | {verdict} |"
        )
    return lines


def chart(results: dict[str, Any], path: Path) -> bool:
    """Orders latency of each request by its start time: one panel per client, the
    outage shaded, answers green (200) or red (error)."""
    server = next(iter(results["servers"].values()))
    timeline = server.get("timeline")
    if not timeline:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    healthy, outage, _ = results["sizes"]["timeline"]
    titles = {"resilient": "this project (RetryManager)", "tutorial": "the tutorial's client"}
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.4), dpi=110, sharex=True, sharey=True)
    for ax, (client, samples) in zip(axes, timeline.items(), strict=False):
        for ok, color, label in ((True, "tab:green", "200"), (False, "tab:red", "error")):
            chosen = [s for s in samples if (s["status"] == 200) is ok]
            ax.scatter(
                [s["start"] for s in chosen],
                [max(s["latency"] * 1000, 0.5) for s in chosen],
                s=10 if client == "resilient" else 40,
                alpha=0.5,
                color=color,
                label=f"{label} ({len(chosen):,})",
            )
        ax.axvspan(healthy, healthy + outage, color="0.88", zorder=0)
        ax.axvline(healthy + outage, color="0.4", linewidth=0.8, linestyle=":")
        ax.axhline(5000, color="tab:blue", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{titles[client]}: {len(samples):,} requests", fontsize=10, loc="left")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    top = axes[0]
    top.text(healthy + 0.3, 6500, "Users answers 502 (simulate_outage error)", fontsize=8)
    top.text(healthy + outage + 0.3, 6500, "clear", fontsize=8)
    top.text(0.3, 3300, "deadline 5 s", color="tab:blue", fontsize=8)
    axes[-1].set_xlabel("request start (s)")
    fig.suptitle(
        "GET /orders/ through a Users outage and its recovery, 8 concurrent callers", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def reading(results: dict[str, Any]) -> list[str]:
    """What the tables mean, with the figures that explain them."""
    first = next(iter(results["servers"].values()))
    outage = first.get("hard_outage", {}).get("resilient")
    if not outage or results.get("smoke"):
        return []
    rate = outage["requests_per_second"]
    queue_ms = results["sizes"]["callers"] / rate * 1000
    call_ms = 1000 / first["client_overhead"]["resilient"]
    ratios = ", ".join(
        f"{server['client_overhead']['resilient_vs_tutorial']:.2f}x under {name}"
        for name, server in results["servers"].items()
    )
    return [
        "## Reading the numbers",
        "",
        "- **Hard outage.** The tutorial's client holds each Orders request for 30 s (sleeps of",
        "  0, 2, 4, 8 and 16 s) and sends 6 Users requests for it; RetryManager answers 503 at",
        "  once and, after the first failures, sends none while the breaker is open. With 16",
        "  callers that never pause, on 2 cores shared with the load generator, Orders is simply",
        f"  saturated ({rate:,.0f} req/s): latency is queueing,",
        f"  16 callers / {rate:,.0f} req/s = {queue_ms:.0f} ms on average.",
        "  One caller alone measures what the open breaker itself costs.",
        "- **Healthy overhead.** RetryManager costs nothing measurable over a bare pooled",
        "  session. Against the tutorial's Session-per-call the gain is what a new session, a",
        "  TCP handshake and a teardown cost per call, which on loopback is small next to the",
        f"  {call_ms:.1f} ms a whole Users call takes: {ratios}. Across a real network each",
        "  handshake also costs a round trip (two more with TLS), and the gap grows with it.",
        "- **Slow drip.** Users sends the 48-byte user 4 bytes a second. requests' timeout is per",
        "  socket read, so the tutorial waits for all of it (11 s here; unbounded for a longer",
        "  body); RetryManager cuts the body off at the 5 s deadline.",
        "- **Recovery.** After `clear`, RetryManager's breaker lets a probe through within its",
        "  5 s reset; the tutorial's callers are asleep in their backoff until their next attempt.",
        "",
    ]


def load_under_outage(path: Path) -> list[str]:
    """The load-under-outage run (``python -m bench.load_under_outage``), if there is one."""
    if not path.exists():
        return []
    f = json.loads(path.read_text())
    before, after = f["before"], f["after"]

    def yes(met: bool) -> str:
        return "yes" if met else "**no**"

    return [
        "## Load under outage",
        "",
        f"{f['callers']} callers for {f['seconds']:g} s against Orders (gunicorn,"
        f" {f['orders_threads']} threads) with the Users process stopped, while a prober times"
        f" `/healthz`; medians of {f.get('repeats', 1)} runs, threads and sockets from the first"
        " (every run must be leak-free):",
        "",
        "| Figure | Measured | Target | Met |",
        "|---|---|---|---|",
        f"| `/healthz` p99 during the load | {f['healthz_p99_ms']:.1f} ms | < 50 ms |"
        f" {yes(f['healthz_p99_ms'] < 50)} |",
        f"| slowest `/orders/` answer | {f['orders_max_s']:.2f} s | <= deadline"
        f" ({f['deadline_s']:g} s) | {yes(f['orders_max_s'] <= f['deadline_s'])} |",
        f"| threads before / after | {before['threads']} / {after['threads']} | back to"
        f" baseline | {yes(after['threads'] <= before['threads'])} |",
        f"| open sockets before / after | {before['sockets']} / {after['sockets']} | back to"
        f" baseline | {yes(after['sockets'] <= before['sockets'])} |",
        f"| RSS growth | {f['rss_growth'] * 100:.1f} % | < 10 % | {yes(f['rss_growth'] < 0.10)} |",
        "",
        f"Orders answered {f['orders_requests']:,} requests, all"
        f" {', '.join(map(str, f['orders_statuses']))}.",
        "",
    ]


def proxy_latency(path: Path) -> list[str]:
    """The fault proxy's cost on a healthy call (``python -m bench.proxy_latency``), if run."""
    if not path.exists():
        return []
    f = json.loads(path.read_text())
    rows = []
    for server in ("runserver", "gunicorn"):
        if server in f:
            r = f[server]
            direct, proxied = r["direct"], r["proxied"]
            rows.append(
                f"| Users under {server} | {direct['p50_ms']:.2f} / {direct['p99_ms']:.2f}"
                f" ms | {proxied['p50_ms']:.2f} / {proxied['p99_ms']:.2f} ms |"
                f" {r['added_p50_ms']:+.2f} / {r['added_p99_ms']:+.2f} ms |"
            )
    calls = next((f[s]["calls"] for s in ("runserver", "gunicorn") if s in f), 0)
    return [
        "## The fault proxy on a healthy call",
        "",
        "`make run` puts the fault proxy (`manage.py fault_proxy`, the transport faults of",
        "`simulate_outage`) between Orders and Users. What it adds to `GET /users/1` with no",
        f"fault set: one caller, {calls:,} calls each way, direct and proxied alternating, one run",
        f"({f['date']}). The client benchmarks above call Users directly.",
        "",
        "| | direct p50 / p99 | through the proxy p50 / p99 | added p50 / p99 |",
        "|---|---|---|---|",
        *rows,
        "",
        "What it adds is a second loopback hop through an asyncio loop, and one read of the",
        "fault row per request (as Users' middleware does, so that a fault applies from the very",
        "next request; ~0.4 ms on SQLite, timed alone). p99s on a busy 2-core machine are noisy.",
        "",
    ]


def call_timeout(path: Path) -> list[str]:
    """The call timeout's cost (``python -m bench.call_timeout``), if it was run."""
    if not path.exists():
        return []
    f = json.loads(path.read_text())
    t, guard, dns = f["throughput"], f["guard"], f["getaddrinfo"]
    rows = []
    for kind, label in (("sequential", "1 caller"), ("concurrent", f"{f['threads']} threads")):
        rows.append(
            f"| {label} | {t['raw_pooled'][kind]:.0f} calls/s | {t['no_watchdog'][kind]:.0f}"
            f" calls/s ({t[f'{kind}_no_watchdog_vs_raw']:.2f}x) | {t['watchdog'][kind]:.0f}"
            f" calls/s ({t[f'{kind}_watchdog_vs_raw']:.2f}x) |"
            f" {t[f'{kind}_watchdog_vs_no_watchdog']:.2f}x |"
        )
    return [
        "## The call timeout's cost",
        "",
        f"Healthy `GET /users/1` against Users under {f['server']}, from one process:"
        f" medians of {f['rounds']} interleaved rounds (each client first in turn), measured"
        f" {f['machine']['date']} on {f['machine']['cpus']} CPUs, load average"
        f" {f.get('load', float('nan')):.1f} (`python -m bench.call_timeout`):",
        "",
        "| Callers | raw pooled `Session` | RetryManager, no watchdog | RetryManager |"
        " with / without watchdog |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Arming and disarming one guard takes {guard['guard_us']:.1f} µs"
        f" ({guard['no_guard_us']:.1f} µs for the same block without it), against"
        f" {1e6 / t['watchdog']['sequential']:.0f} µs for the call. `getaddrinfo` (median / max"
        f" of {f.get('dns_lookups', 500)}): `127.0.0.1` {dns['127.0.0.1']['median_ms'] * 1000:.0f}"
        f" / {dns['127.0.0.1']['max_ms'] * 1000:.0f} µs, `localhost`"
        f" {dns['localhost']['median_ms'] * 1000:.0f} / {dns['localhost']['max_ms'] * 1000:.0f} µs"
        " (from `/etc/hosts`, no DNS server asked).",
        "",
        "On a shared machine the rounds scatter by more than the watchdog costs: its price is"
        " the guard's few microseconds per attempt, well under 1 % of a loopback call.",
        "",
    ]


def slow_users(path: Path, chart_path: Path) -> list[str]:
    """A slow Users under open-loop load (``python -m bench.slow_users``), if it was run."""
    if not path.exists():
        return []
    chart_name = chart_path.name if chart_path.exists() else None
    return slow_users_section(json.loads(path.read_text()), chart_name)


def front_door(path: Path) -> list[str]:
    """nginx before gunicorn (``python -m bench.front_door``), if it was run."""
    return front_door_section(json.loads(path.read_text())) if path.exists() else []


def fleet(path: Path, chart_path: Path) -> list[str]:
    """Several Users replicas, one bad (``python -m bench.fleet``), if it was run."""
    if not path.exists():
        return []
    chart_name = chart_path.name if chart_path.exists() else None
    return fleet_section(json.loads(path.read_text()), chart_name)


def tracing(path: Path) -> list[str]:
    """What OpenTelemetry costs (``python -m bench.tracing``), if it was run."""
    return tracing_section(json.loads(path.read_text())) if path.exists() else []


def overhead(path: Path, chart_path: Path) -> list[str]:
    """What a healthy call costs, against its peers (``python -m bench.overhead``), if run."""
    if not path.exists():
        return []
    chart_name = chart_path.name if chart_path.exists() else None
    return overhead_section(json.loads(path.read_text()), chart_name)


def kept_sections(path: Path) -> list[str]:
    """Sections other scripts write into the page (``bench.post_orders``): kept as they are."""
    old = path.read_text() if path.exists() else ""
    if POST_BEGIN not in old or POST_END not in old:
        return []
    return [POST_BEGIN + old.split(POST_BEGIN, 1)[1].split(POST_END, 1)[0] + POST_END, ""]


def render(results: dict[str, Any], docs: Path) -> Path:
    docs.mkdir(exist_ok=True)
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        "# Benchmarks",
        "",
        "This project's Users client (`RetryManager`) against the tutorial's client (a new",
        "`Session` per call, `Retry(total=5, backoff_factor=1, status_forcelist=[502, 503, 504])`,",
        "10 s timeout) and a bare pooled `requests.Session` (no retries: the floor for overhead),",
        "measured side by side in one run on the same real servers over loopback. Reproduce with",
        "`make bench`; this page is generated by `python -m bench.report` from the run's",
        "`bench/out/results.json` (raw samples, not in git) or the committed figures,",
        "`bench/results.json`.",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs, {m['platform']}, Python {m['python']};",
        f"{versions}. Each figure is the median of {results['sizes']['repeats']} runs"
        " (drip, memory and the chart: one run).",
        "",
    ]
    if results.get("smoke"):
        lines += ["**Smoke run: tiny counts, figures are not meaningful.**", ""]
    if chart(results, docs / CHART) or (docs / CHART).exists():  # figures only: keep the chart
        lines += [f"![Orders latency through an outage, both clients]({CHART})", ""]
    for name, server in results["servers"].items():
        kind = "gunicorn, 1 worker, 32 threads" if name == "gunicorn" else "Django runserver"
        lines += [f"## Both services under {kind}", "", *table(server), ""]
    lines += reading(results)
    lines += load_under_outage(docs.parent / "bench" / "load_under_outage.json")
    lines += proxy_latency(docs.parent / "bench" / "proxy_latency.json")
    lines += call_timeout(docs.parent / "bench" / "call_timeout.json")
    lines += slow_users(docs.parent / "bench" / SLOW_FIGURES.name, docs / SLOW_CHART.name)
    lines += front_door(docs.parent / "bench" / FRONT_FIGURES.name)
    lines += fleet(docs.parent / "bench" / FLEET_FIGURES.name, docs / FLEET_CHART.name)
    lines += tracing(docs.parent / "bench" / TRACING_FIGURES.name)
    lines += overhead(docs.parent / "bench" / OVERHEAD_FIGURES.name, docs / OVERHEAD_CHART.name)
    breaker = results.get("breaker_concurrency")
    if breaker:
        lines += [
            "## Why not pybreaker",
            "",
            "16 threads each make one 50 ms call through a breaker (wall time for all of them):",
            "",
            "| No breaker | This project's breaker | pybreaker |",
            "|---|---|---|",
            f"| {breaker['no_breaker_s']:.3f} s | {breaker['ours_s']:.3f} s |"
            f" {breaker['pybreaker_s']:.3f} s |",
            "",
            "pybreaker holds its lock for the whole call, so calls through it run one at a time.",
            "",
        ]
    path = docs / "benchmarks.md"
    lines += kept_sections(path)
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, help="default: the last run's, else the committed figures"
    )
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    source = args.results or (RESULTS if RESULTS.exists() else FIGURES)
    results = json.loads(source.read_text())
    print(f"wrote {render(results, args.docs)}")
    if source != FIGURES and not results.get("smoke"):
        FIGURES.write_text(json.dumps(figures(results), indent=1, default=float) + "\n")
        print(f"wrote {FIGURES}")


if __name__ == "__main__":
    main()
