"""One bad Users replica among three must not cost Orders its requests (issue 20).

    python -m bench.fleet --baseline-ref f2d95fa   # ~20 min (make bench-fleet)
    python -m bench.fleet --smoke                  # seconds: CI keeps it working

Three Users replicas, each under gunicorn as ``make serve`` runs it (1 worker, 32 threads),
each with **its own SQLite database** and **its own fault proxy** (``manage.py fault_proxy``
on that database), so ``simulate_outage`` run against replica 3's database makes replica 3
alone bad, in Users (503, slow) or in its transport (down: refused; reset).

Each column is a way for Orders (gunicorn 1x32, default settings) to reach the replicas:

- ``today_http``: today's code (``--baseline-ref``) behind HAProxy ``mode http``, round robin;
- ``today_tcp``: today's code behind HAProxy ``mode tcp``, round robin;
- ``new_tcp``: this tree behind HAProxy ``mode tcp``;
- ``new_list``: this tree with ``USERS_SERVICE_URL`` listing the three replicas (no HAProxy);
- ``new_list_rr``: the same with ``USERS_BALANCER=round_robin``, to compare balancers;
- ``today_http_checks`` (``--haproxy-checks``): today's code behind HAProxy http with its
  health checks on (``option httpchk GET /healthz``, every second), labelled as such.

HAProxy is configured plainly, as a team would: round robin, timeouts, no health checks
(the point is what the client does on its own), no ``redispatch``. Its configuration is
written into a temporary directory; it runs in the foreground as its own process group.

Each (column, scenario) runs on a **fresh Orders process** (and a fresh HAProxy): state
from one scenario never helps the next. Scenarios, replica 3 bad from before the first
request: healthy, ``error --status 503``, ``slow --delay 1.5``, ``down``, ``reset``. The
load is open-loop, ``GET /orders/?user_id=1`` at 30/s for 30 s (900 requests): request i is
sent at t0 + i/30 whatever the others are doing, its latency counted from when it was due
(no coordinated omission); the sender's own lag is reported. Replica 3 is healed
(``simulate_outage clear``) 22 s in; the load then goes on past the 900, for at most
``tail`` seconds, until replica 3 has served a request due after the heal: the recovery
time. Figures on the 900 only; the tail only for the recovery.

Where each Users request went is read from each replica's gunicorn access log, by the
request ID the harness gave each Orders request (Orders passes it on): a replica's share
of the Users requests of Orders requests due after the first 5 s and before the heal.
A refused connection (``down``) leaves no line anywhere: its share is not measurable.

Raw samples go to bench/out/fleet.json (not in git); the figures to bench/fleet.json and
the chart to docs/fleet.png (in git); ``python -m bench.report`` writes the section of
docs/benchmarks.md. Loopback only; every load is bounded in count and time; every process
started is stopped, on an exception, SIGTERM or SIGHUP too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.post_orders import baseline_tree
from bench.run import machine, percentile, warm
from bench.slow_users import Sample, Stream, _send, lag, ms
from bench.stack import (
    ROOT,
    USERS_GUNICORN_LINE,
    ManageConsole,
    Service,
    base_env,
    free_port,
    refuses,
    run_manage,
    stop_on_signals,
    wait_until,
)

FIGURES = ROOT / "bench" / "fleet.json"
RAW = ROOT / "bench" / "out" / "fleet.json"
CHART = ROOT / "docs" / "fleet.png"
#: main when this benchmark was written: one URL per upstream, no balancing of its own.
BASELINE_REF = "f2d95fa"
PATH = "/orders/?user_id=1"
REPLICAS = 3
BAD = REPLICAS - 1  # replica 3 (index 2) is the bad one
#: The new code's default ``outlier_base_ejection``: the recovery target when no ejection
#: of the bad replica was logged before the heal.
BASE_EJECTION = 5.0
#: Issue 20's targets, for the new code listing the replicas.
TARGET_OK = 0.999
TARGET_P99_VS_HEALTHY = 2.0
TARGET_BAD_SHARE_VS_FAIR = 0.10
HAPROXY = "haproxy"


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: tuple[str, ...]  # ``simulate_outage`` arguments for replica 3; () healthy
    label: str

    @property
    def transport(self) -> bool:
        """A fault of the proxy: ``down`` must be waited for (the proxy polls)."""
        return self.fault[:1] == ("down",)


SCENARIOS = (
    Scenario("healthy", (), "healthy"),
    Scenario("error_503", ("error", "--status", "503"), "503 on every request"),
    Scenario("slow", ("slow", "--delay", "1.5"), "slow 1.5 s"),
    Scenario("down", ("down",), "down (refused)"),
    Scenario("reset", ("reset",), "reset"),
)


@dataclass(frozen=True)
class Column:
    name: str
    code: str  # "today" (the baseline ref) or "new" (this tree)
    via: str  # "http" / "tcp": HAProxy in that mode; "list": USERS_SERVICE_URL lists them
    env: tuple[tuple[str, str], ...] = ()
    checks: bool = False  # HAProxy's health checks on
    label: str = ""


COLUMNS = (
    Column("today_http", "today", "http", label="today's code, HAProxy http"),
    Column("today_tcp", "today", "tcp", label="today's code, HAProxy tcp"),
    Column("new_tcp", "new", "tcp", label="new code, HAProxy tcp"),
    Column("new_list", "new", "list", label="new code, replicas listed (p2c)"),
    Column(
        "new_list_rr",
        "new",
        "list",
        (("USERS_BALANCER", "round_robin"),),
        label="new code, replicas listed, round robin",
    ),
)
CHECKS_COLUMN = Column(
    "today_http_checks", "today", "http", checks=True, label="today's code, HAProxy http + checks"
)
#: The column the issue's targets are for.
TARGETED = "new_list"


@dataclass(frozen=True)
class Sizes:
    rate: float = 30.0
    seconds: float = 30.0  # 900 requests at 30/s
    heal_at: float = 22.0  # replica 3 healed this long after t0
    settle: float = 5.0  # "after the first 5 s"
    tail: float = 15.0  # at most this long past ``seconds``, waiting for the healed replica
    client_timeout: float = 15.0  # generous: Orders' own deadline is 5 s
    warm_rounds: int = 3


SMOKE = Sizes(rate=10.0, seconds=3.0, heal_at=2.0, settle=1.0, tail=2.0, warm_rounds=1)
SMOKE_SCENARIOS = ("healthy", "error_503")
SMOKE_COLUMNS = ("new_tcp", "new_list")


# -- pure parts: configuration, figures, targets ---------------------------------------------


def haproxy_config(*, mode: str, port: int, servers: list[int], checks: bool = False) -> str:
    """HAProxy 2.6's configuration as a team would write it: round robin over ``servers``,
    timeouts longer than any Orders call, no health checks unless ``checks``."""
    if mode not in ("http", "tcp"):
        raise ValueError(f"mode must be http or tcp, not {mode!r}")
    check = " check inter 1s fall 2 rise 2" if checks else ""
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        f"    mode {mode}",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "frontend users",
        f"    bind 127.0.0.1:{port}",
        "    default_backend replicas",
        "backend replicas",
        "    balance roundrobin",
    ]
    if checks and mode == "http":
        lines.append("    option httpchk GET /healthz")
    lines += [f"    server r{i + 1} 127.0.0.1:{p}{check}" for i, p in enumerate(servers)]
    return "\n".join(lines) + "\n"


def request_index(rid: str | None, tag: str) -> int | None:
    """The index i of a request ID ``{tag}-{i}`` this run gave, else ``None``."""
    if not rid or not rid.startswith(tag + "-"):
        return None
    tail = rid[len(tag) + 1 :]
    return int(tail) if tail.isdigit() else None


BREAKER_OPENED = re.compile(r"\bbreaker_opened\b")
EJECTED = re.compile(r"host_ejected (?P<label>\S+): .*out for (?P<seconds>[\d.]+) s")


def breaker_openings(orders_log: str) -> int:
    """How many times Orders' breaker opened (its ``breaker_opened`` log lines)."""
    return sum(1 for line in orders_log.splitlines() if BREAKER_OPENED.search(line))


def ejection_in_force(orders_log: str, label: str) -> float | None:
    """Seconds of the last ejection of ``label`` in this log (``out for X s``), or None."""
    found = [float(m["seconds"]) for m in EJECTED.finditer(orders_log) if m["label"] == label]
    return found[-1] if found else None


def recovery(hits: list[tuple[float, int]], healed_at: float | None) -> float | None:
    """Seconds from the heal to the due time of the first Orders request after it that the
    healed replica served (a 200 in its log); ``None``: not healed, or never served."""
    if healed_at is None:
        return None
    after = [due for due, status in hits if status == 200 and due >= healed_at]
    return max(0.0, min(after) - healed_at) if after else None


def outcome(s: Sample) -> str:
    return str(s.status) + (f" {s.code}" if s.code else "") if s.status else f"failed {s.code}"


def figures(
    samples: list[Sample],
    hits: list[list[tuple[float, int]]],
    sizes: Sizes,
    *,
    healed_at: float | None,
    refused: bool = False,
) -> dict[str, Any]:
    """One (column, scenario) run's figures: ``samples`` (every request sent, tail
    included), ``hits[r]`` the (due of the Orders request, status) of each Users request
    replica r logged. ``refused``: the bad replica refuses connections (no log line to
    count). Only the first ``seconds`` of requests count, except for the recovery."""
    measured = [s for s in samples if s.due < sizes.seconds]
    later = [s for s in measured if s.due >= sizes.settle]
    outcomes = Counter(outcome(s) for s in measured)
    ok = outcomes.get("200", 0)
    until = healed_at if healed_at is not None else sizes.seconds
    counts = [sum(1 for due, _ in h if sizes.settle <= due < until) for h in hits]
    total = sum(counts)
    share = None
    if total and not refused:
        share = (counts[BAD] / total) / (1 / len(hits))
    return {
        "requests": len(measured),
        "sent": len(samples),
        "ok": ok,
        "ok_share": ok / len(measured) if measured else float("nan"),
        "outcomes": dict(sorted(outcomes.items(), key=lambda kv: -kv[1])),
        "p50_ms": ms(percentile([s.latency for s in measured], 50)),
        "p99_ms": ms(percentile([s.latency for s in measured], 99)),
        "p50_after_ms": ms(percentile([s.latency for s in later], 50)),
        "p99_after_ms": ms(percentile([s.latency for s in later], 99)),
        "max_ms": ms(max((s.latency for s in measured), default=float("nan"))),
        "users_requests_after": counts,
        "bad_share_vs_fair": share,
        "healed_at_s": healed_at,
        "recovery_s": recovery(hits[BAD], healed_at),
        # how long after the heal requests were still sent: a later return is not seen
        "recovery_window_s": None
        if healed_at is None
        else max((s.due for s in samples), default=healed_at) - healed_at,
        "sender_lag": lag(samples),
    }


def targets(
    runs: dict[str, dict[str, Any]], best_healthy: float | None = None
) -> dict[str, dict[str, bool | None]]:
    """Issue 20's targets for one column's runs (scenario -> figures), per scenario:
    ``None`` where a target does not apply (healthy; the share of a refusing replica).
    ``p99_vs_best``: the p99 target against ``best_healthy``, the lowest healthy p99 of any
    column in the run (the same load on the same machine), so that a noisy healthy run
    cannot flatter its own column."""
    healthy = runs.get("healthy", {}).get("p99_after_ms")
    out: dict[str, dict[str, bool | None]] = {}
    for name, f in runs.items():
        faulted = name != "healthy"
        share = f.get("bad_share_vs_fair")
        period = f.get("ejection_period_s") or BASE_EJECTION
        rec = f.get("recovery_s")
        out[name] = {
            "ok_200": f["ok_share"] >= TARGET_OK,
            "p99_after": None
            if healthy is None or not faulted
            else f["p99_after_ms"] <= TARGET_P99_VS_HEALTHY * healthy,
            "p99_vs_best": None
            if best_healthy is None or not faulted
            else f["p99_after_ms"] <= TARGET_P99_VS_HEALTHY * best_healthy,
            "bad_share": None
            if not faulted or share is None
            else share <= TARGET_BAD_SHARE_VS_FAIR,
            "recovery": None
            if not faulted or (rec is None and period > (f.get("recovery_window_s") or 0))
            else rec is not None and rec <= period,  # None: the ejection outlasted the window
        }
    return out


# -- processes --------------------------------------------------------------------------------


def sqlite_template(root: Path, path: Path) -> Path:
    """A migrated, seeded SQLite file of that tree's schema, to copy for each process."""
    run_manage({**base_env(), "DATABASE_URL": f"sqlite:///{path}"}, "migrate", "-v0", root=root)
    return path


@dataclass
class Replica:
    """One Users replica: gunicorn on its own database, its fault proxy, a console."""

    users: Service
    proxy: Service
    console: ManageConsole
    env: dict[str, str] = field(repr=False)

    @property
    def label(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    def stop(self) -> None:
        with contextlib.ExitStack() as stopping:
            stopping.callback(self.users.stop)
            stopping.callback(self.proxy.stop)
            stopping.callback(self.console.close)


def start_replica(tmp: Path, index: int, template: Path) -> Replica:
    database = tmp / f"users-{index + 1}.sqlite3"
    shutil.copyfile(template, database)
    env = {**base_env(), "DATABASE_URL": f"sqlite:///{database}"}
    port, proxy_port = free_port(), free_port()
    users = Service(f"users-{index + 1}", {**env, "SERVICES": "users"}, tmp, port, "gunicorn")
    argv = [
        *(sys.executable, "manage.py", "fault_proxy"),
        *("--listen", f"127.0.0.1:{proxy_port}", "--upstream", f"127.0.0.1:{port}"),
    ]
    proxy = Service(f"proxy-{index + 1}", env, tmp, proxy_port, argv=argv)
    console = ManageConsole(env)
    replica = Replica(users, proxy, console, env)
    try:
        users.start()
        proxy.start()
    except BaseException:
        replica.stop()
        raise
    return replica


def start_haproxy(tmp: Path, name: str, column: Column, servers: list[int]) -> Service:
    port = free_port()
    config = tmp / f"haproxy-{name}.cfg"
    config.write_text(
        haproxy_config(mode=column.via, port=port, servers=servers, checks=column.checks)
    )
    argv = [HAPROXY, "-db", "-f", str(config)]
    return Service(f"haproxy-{name}", base_env(), tmp, port, argv=argv).start()


def warm_orders(url: str, rounds: int) -> None:
    """Each of gunicorn's 32 threads opens its connections before anything is measured."""
    with ThreadPoolExecutor(32) as pool:
        for _ in range(rounds):
            list(pool.map(lambda _: warm(url + PATH), range(32)))


def log_size(service: Service) -> int:
    return service.log_path.stat().st_size if service.log_path.exists() else 0


def replica_hits(
    replica: Replica, tag: str, rate: float, since: int = 0
) -> list[tuple[float, int]]:
    """(due of the Orders request, status) of each Users request of this run it logged
    (read from byte ``since`` of its log on: the runs before are not read again)."""
    with replica.users.log_path.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        match = USERS_GUNICORN_LINE.match(line)
        index = request_index(match["request_id"], tag) if match else None
        if match and index is not None:
            out.append((index / rate, int(match["status"])))
    return out


def wait_for_logs(
    replicas: list[Replica], tag: str, offsets: list[int], settle: float = 1.0, limit: float = 20.0
) -> None:
    """Until the replicas' logs stop growing with this run's lines (a slow answer nobody
    waits for still logs when it ends); ``limit`` is an outer bound."""
    give_up = time.monotonic() + limit
    count, since = -1, time.monotonic()
    while time.monotonic() < give_up:
        now = sum(len(replica_hits(r, tag, 1.0, o)) for r, o in zip(replicas, offsets, strict=True))
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return
        time.sleep(0.2)


async def _load(
    url: str,
    sizes: Sizes,
    tag: str,
    heal: Callable[[], None] | None,
    back: Callable[[float], bool],
) -> tuple[list[Sample], float | None]:
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # one connection a request
    timeout = aiohttp.ClientTimeout(total=sizes.client_timeout)
    stream = Stream("users_bound", PATH, sizes.rate)
    state: dict[str, Any] = {"healed": None, "back": False}

    async def healing(t0: float) -> None:
        assert heal is not None
        await asyncio.sleep(max(0.0, t0 + sizes.heal_at - loop.time()))
        await loop.run_in_executor(None, heal)
        state["healed"] = healed = loop.time() - t0
        while not state["back"]:
            state["back"] = await loop.run_in_executor(None, back, healed)
            await asyncio.sleep(0.25)

    main = round(sizes.rate * sizes.seconds)
    cap = round(sizes.rate * (sizes.seconds + sizes.tail))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = loop.time() + 0.1
        watcher = asyncio.create_task(healing(t0)) if heal else None
        tasks = []
        i = 0
        while i < main or (watcher is not None and i < cap and not state["back"]):
            due = i / sizes.rate
            wait = t0 + due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            send = _send(session, url + PATH, stream, due, t0, f"{tag}-{i}")
            tasks.append(asyncio.create_task(send))
            i += 1
        samples = await asyncio.gather(*tasks)
        if watcher is not None:
            while state["healed"] is None and not watcher.done():
                await asyncio.sleep(0.05)  # the heal is due before the last request: not long
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return list(samples), state["healed"]


class Bench:
    """The replicas, started once; one Orders (and HAProxy) per (column, scenario)."""

    def __init__(self, tmp: Path, trees: dict[str, Path], sizes: Sizes) -> None:
        self.tmp, self.trees, self.sizes = tmp, trees, sizes
        self.templates = {
            code: sqlite_template(root, tmp / f"orders-{code}.sqlite3")
            for code, root in trees.items()
        }
        users_template = self.templates.get("new") or sqlite_template(ROOT, tmp / "users.sqlite3")
        self.replicas: list[Replica] = []
        try:
            for index in range(REPLICAS):
                self.replicas.append(start_replica(tmp, index, users_template))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        with contextlib.ExitStack() as stopping:
            for replica in self.replicas:
                stopping.callback(replica.stop)

    @contextlib.contextmanager
    def orders(self, column: Column, scenario: Scenario) -> Iterator[Service]:
        """A fresh Orders process (and HAProxy, if the column has one) for one run."""
        name = f"{column.name}-{scenario.name}"
        proxies = [r.proxy.port for r in self.replicas]
        with contextlib.ExitStack() as stack:
            if column.via == "list":
                url = ",".join(f"http://127.0.0.1:{port}" for port in proxies)
            else:
                haproxy = start_haproxy(self.tmp, name, column, proxies)
                stack.callback(haproxy.stop)
                url = haproxy.url
            database = self.tmp / f"orders-{name}.sqlite3"
            shutil.copyfile(self.templates[column.code], database)
            env = {
                **base_env(),
                "DATABASE_URL": f"sqlite:///{database}",
                "SERVICES": "orders",
                "USERS_SERVICE_URL": url,
                **dict(column.env),
            }
            orders = Service(
                f"orders-{name}",
                env,
                self.tmp,
                free_port(),
                "gunicorn",
                root=self.trees[column.code],
            )
            stack.callback(orders.stop)
            yield orders.start()

    def set_fault(self, scenario: Scenario) -> None:
        bad = self.replicas[BAD]
        bad.console.run("simulate_outage", *scenario.fault)
        if scenario.transport:
            wait_until(lambda: refuses(bad.proxy.port), "the fault proxy to refuse connections")

    def heal(self) -> None:
        bad = self.replicas[BAD]
        bad.console.run("simulate_outage", "clear")
        wait_until(lambda: not refuses(bad.proxy.port), "the fault proxy to listen")

    def run(self, column: Column, scenario: Scenario) -> tuple[dict[str, Any], list[Sample]]:
        sizes, bad = self.sizes, self.replicas[BAD]
        tag = f"f{uuid.uuid4().hex[:8]}"
        with self.orders(column, scenario) as orders:
            warm_orders(orders.url, sizes.warm_rounds)
            heal_offset: list[int] = []
            offsets = [log_size(r.users) for r in self.replicas]

            def heal() -> None:
                self.heal()
                heal_offset.append(orders.log_path.stat().st_size)

            def back(healed_at: float) -> bool:
                hits = replica_hits(bad, tag, sizes.rate, offsets[BAD])
                return recovery(hits, healed_at) is not None

            if scenario.fault:
                self.set_fault(scenario)
            samples, healed_at = asyncio.run(
                _load(orders.url, sizes, tag, heal if scenario.fault else None, back)
            )
            self.heal()  # the next run starts with three good replicas (on an exception,
            # there is no next run: the replicas and their databases go)
            wait_for_logs(self.replicas, tag, offsets)
            log = orders.log()
        hits = [
            replica_hits(r, tag, sizes.rate, o) for r, o in zip(self.replicas, offsets, strict=True)
        ]
        result = figures(
            samples, hits, sizes, healed_at=healed_at, refused=scenario.fault[:1] == ("down",)
        )
        result["breaker_opened"] = breaker_openings(log)
        result["load"] = os.getloadavg()[0]  # the machine's, just after the run
        before_heal = log.encode()[: heal_offset[0]].decode(errors="replace") if heal_offset else ""
        result["ejection_period_s"] = ejection_in_force(before_heal, bad.label)
        result["ejections"] = len([m for m in EJECTED.finditer(log) if m["label"] == bad.label])
        return result, samples


def describe_tree(ref: str) -> str:
    """``git describe``-like: the short commit, ``+changes`` if the tree has uncommitted ones."""
    short = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    if ref != "HEAD":
        return short
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return short + ("+changes" if dirty else "")


def run(
    sizes: Sizes,
    *,
    columns: list[Column],
    scenarios: list[Scenario],
    baseline_ref: str | None,
    smoke: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every (column, scenario), scenario by scenario, the columns in turn within each."""
    today = any(c.code == "today" for c in columns)
    if today and not baseline_ref:
        raise ValueError("today's columns need a baseline ref")
    if any(c.via != "list" for c in columns) and shutil.which(HAPROXY) is None:
        raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
    results: dict[str, Any] = {
        "machine": machine(),
        "load": os.getloadavg()[0],
        "smoke": smoke,
        "sizes": asdict(sizes),
        "path": PATH,
        "code": {"new": describe_tree("HEAD")}
        | ({"today": describe_tree(baseline_ref)} if baseline_ref and today else {}),
        "haproxy": _haproxy_version() if any(c.via != "list" for c in columns) else None,
        "columns": {c.name: {**asdict(c), "env": dict(c.env)} for c in columns},
        "scenarios": {s.name: {"fault": list(s.fault), "label": s.label} for s in scenarios},
        "runs": {c.name: {} for c in columns},
    }
    raw: dict[str, Any] = {c.name: {} for c in columns}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        trees = {"new": ROOT}
        if baseline_ref and today:
            trees["today"] = baseline_tree(baseline_ref, tmp / "baseline")
        bench = Bench(tmp, trees, sizes)
        try:
            for scenario in scenarios:
                for column in columns:
                    print(f"{scenario.name} / {column.name}", flush=True)
                    got, samples = bench.run(column, scenario)
                    results["runs"][column.name][scenario.name] = got
                    raw[column.name][scenario.name] = [asdict(s) for s in samples]
                    print("   " + _line(got), flush=True)
        finally:
            bench.stop()
    judge(results)
    results["wall_s"] = time.monotonic() - started
    results["load_end"] = os.getloadavg()[0]  # a shared machine: others' load shows here
    results["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return results, raw


def _haproxy_version() -> str:
    out = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].split(" - ")[0] if out else "?"


# -- output ------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "ms") -> str:
    if value is None or value != value:
        return "n/a"
    if unit == "ms":
        return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"
    if unit == "%":
        return f"{value * 100:.1f} %" if value < 0.9995 or value == 1 else f"{value * 100:.2f} %"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.1f} s"


def _back(f: dict[str, Any]) -> str:
    """The recovery, or ``> window`` when the healed replica served nothing in it."""
    if f.get("recovery_s") is None and f.get("recovery_window_s") is not None:
        return f"> {f['recovery_window_s']:.1f} s"
    return _fmt(f.get("recovery_s"), "s")


def _problems(f: dict[str, Any]) -> str:
    rest = [(what, n) for what, n in f["outcomes"].items() if what != "200"]
    return ", ".join(f"{n} {what}" for what, n in rest) or "-"


def _line(f: dict[str, Any]) -> str:
    return (
        f"200 {_fmt(f['ok_share'], '%')} ({_problems(f)}); p99 {_fmt(f['p99_ms'])},"
        f" after 5 s {_fmt(f['p99_after_ms'])}; bad share {_fmt(f['bad_share_vs_fair'], 'x')}"
        f" of fair; breaker opened {f['breaker_opened']}; recovery {_back(f)}"
        f" (ejection {_fmt(f['ejection_period_s'], 's')});"
        f" lag p99 {_fmt(f['sender_lag']['p99_ms'])}"
    )


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("PASS" if met else "**FAIL**")


def section(results: dict[str, Any], chart_name: str | None = None) -> list[str]:
    """The Markdown section of docs/benchmarks.md, from the committed figures."""
    if not results.get("runs"):
        return []
    results = {**results}
    judge(results)  # from the figures: a section never shows verdicts older than its rules
    s, m = results["sizes"], results["machine"]
    code = results["code"]
    lines = [
        "## Several Users replicas",
        "",
        f"`python -m bench.fleet --baseline-ref {code.get('today', '-')}`, {results['date']},"
        f" {results['wall_s'] / 60:.0f} min, {m['cpus']} CPUs, load average"
        f" {results['load']:.1f} at the start, {results.get('load_end', float('nan')):.1f} at"
        f" the end (each run's is in bench/fleet.json),"
        f" {results.get('haproxy') or 'no HAProxy'}. Three Users replicas under gunicorn (1 worker,"
        " 32 threads), each on its own SQLite database behind its own fault proxy; replica 3"
        " made bad with `simulate_outage` on its database, from before the first request,"
        f" and healed {s['heal_at']:g} s in. Orders under gunicorn 1x32 with the default"
        f" settings, a fresh process for each run. `GET {results['path']}` open-loop at"
        f" {s['rate']:g}/s for {s['seconds']:g} s ({round(s['rate'] * s['seconds'])} requests),"
        " latency from each request's due time; after the heal the load runs on (at most"
        f" {s['tail']:g} s, not counted in the other figures) until replica 3 serves again."
        f" Today's code is `{code.get('today', '-')}`, the new code `{code['new']}`. HAProxy:"
        " round robin, no health checks (unless the column says so), no `redispatch`.",
        "",
    ]
    if results.get("smoke"):
        lines += ["**Smoke run: tiny counts, figures are not meaningful.**", ""]
    if chart_name:
        lines += [f"![Orders with one bad Users replica of three]({chart_name})", ""]
    lines += [
        "| Orders reach Users | replica 3 | 200 | other answers | p50 | p99 |"
        f" p99 after {s['settle']:g} s"
        " | replica 3's share (vs fair) | breaker opened | back after heal | sender lag p99"
        " | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results["runs"].items():
        label = results["columns"][name]["label"] or name
        for scenario, f in runs.items():
            lines.append(
                f"| {label} | {results['scenarios'][scenario]['label']} |"
                f" {_fmt(f['ok_share'], '%')} | {_problems(f)} | {_fmt(f['p50_ms'])} |"
                f" {_fmt(f['p99_ms'])} | {_fmt(f['p99_after_ms'])} |"
                f" {_fmt(f['bad_share_vs_fair'], 'x')} | {f['breaker_opened']} |"
                f" {_back(f)} | {_fmt(f['sender_lag']['p99_ms'])} |"
                f" {f.get('load', float('nan')):.1f} |"
            )
    lines += [
        "",
        "Replica 3's share: of the Users requests of Orders requests due after the first"
        f" {s['settle']:g} s and before the heal, counted in each replica's access log by"
        " request ID, against a fair third (1.00x). A refused connection is logged nowhere, so"
        ' `down` has no share. "Back after heal": from the heal (the proxy listening again,'
        " for `down`) to the due time of the first Orders request the healed replica served.",
        "",
    ]
    lines += _targets_table(results)
    for note in results.get("notes", []):  # written by hand into the figures, after the run
        lines += [f"Note: {note}", ""]
    return [wrapped for line in lines for wrapped in _wrap(line)]


def best_healthy(results: dict[str, Any]) -> float | None:
    """The lowest healthy p99 after the first seconds of any column in this run."""
    healthy = [r["healthy"]["p99_after_ms"] for r in results["runs"].values() if "healthy" in r]
    return min(healthy) if healthy else None


def judge(results: dict[str, Any]) -> None:
    """The targets of every column, into ``results`` (again from the figures alone)."""
    best = best_healthy(results)
    results["best_healthy_p99_after_ms"] = best
    results["targets"] = {name: targets(runs, best) for name, runs in results["runs"].items()}


def _targets_table(results: dict[str, Any]) -> list[str]:
    s = results["sizes"]
    lines = [
        f"Issue 20's targets (for `{TARGETED}`; the other columns judged the same way, for"
        f" comparison): >= {TARGET_OK:.1%} answered 200; p99 after {s['settle']:g} s within"
        f" {TARGET_P99_VS_HEALTHY:g}x the same column's healthy p99 after {s['settle']:g} s;"
        f" replica 3 at most {TARGET_BAD_SHARE_VS_FAIR:.0%} of its fair share; back within one"
        " ejection period (the last ejection of replica 3 that Orders logged before the heal,"
        f" else {BASE_EJECTION:g} s). The p99 target again against the run's lowest healthy"
        f" p99 after {s['settle']:g} s ({_fmt(results.get('best_healthy_p99_after_ms'))}):"
        " each column's own healthy run is one run on a shared machine, and a noisy one"
        " flatters its column.",
        "",
        "| column | replica 3 | 200 | p99 vs own healthy | p99 vs run's best healthy | share"
        " | back |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, per in results.get("targets", {}).items():
        for scenario, t in per.items():
            lines.append(
                f"| {'**' + name + '**' if name == TARGETED else name} |"
                f" {results['scenarios'][scenario]['label']} | {_verdict(t['ok_200'])} |"
                f" {_verdict(t['p99_after'])} | {_verdict(t.get('p99_vs_best'))} |"
                f" {_verdict(t['bad_share'])} |"
                f" {_verdict(t['recovery'])} |"
            )
    return [*lines, ""]


def _wrap(line: str) -> list[str]:
    if not line or line.startswith(("|", "!", "#")):
        return [line]
    return textwrap.wrap(line, width=95, break_on_hyphens=False)


def chart(results: dict[str, Any], path: Path) -> None:
    """One panel pair per scenario: % answered 200 and p99 after 5 s, a bar per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(results["runs"])
    scenarios = list(results["scenarios"])
    fig, axes = plt.subplots(2, len(scenarios), figsize=(3.2 * len(scenarios), 6.4), dpi=100)
    colors = plt.get_cmap("tab10").colors
    for j, scenario in enumerate(scenarios):
        top, bottom = axes[0][j], axes[1][j]
        for i, column in enumerate(columns):
            f = results["runs"][column].get(scenario)
            if f is None:
                continue
            kw = {"color": colors[i % 10], "label": results["columns"][column]["label"]}
            top.bar(i, f["ok_share"] * 100, **kw)
            bottom.bar(i, max(f["p99_after_ms"], 1.0), **kw)
        top.set_title(results["scenarios"][scenario]["label"], fontsize=10)
        top.set_ylim(0, 101)
        top.axhline(TARGET_OK * 100, color="0.3", lw=0.8, ls="--")
        bottom.set_yscale("log")
        bottom.set_ylim(10, 2 * ms(results["sizes"]["client_timeout"]))
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("Orders answered 200 (%)")
    axes[1][0].set_ylabel(f"p99 after {results['sizes']['settle']:g} s (ms, from due)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(columns), 3), fontsize=8)
    fig.suptitle(
        "Orders with replica 3 of 3 Users replicas bad, open-loop"
        f" {results['sizes']['rate']:g}/s (dashed: 99.9 %)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def _pick(names: str, known: tuple[Any, ...], what: str) -> list[Any]:
    by_name = {item.name: item for item in known}
    chosen = [v.strip() for v in names.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in by_name]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(by_name)})")
    return [by_name[v] for v in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: seconds")
    parser.add_argument(
        "--baseline-ref", default=BASELINE_REF, help=f"today's code (default {BASELINE_REF})"
    )
    parser.add_argument("--columns", help="comma-separated (default: all five)")
    parser.add_argument("--scenarios", help="comma-separated (default: all five)")
    parser.add_argument(
        "--haproxy-checks", action="store_true", help="add today's code behind HAProxy with checks"
    )
    parser.add_argument("--out", type=Path, help=f"the figures (default {FIGURES.name})")
    parser.add_argument("--raw", type=Path, help="the raw samples (default bench/out/)")
    parser.add_argument("--chart", type=Path, default=CHART)
    parser.add_argument(
        "--chart-only",
        action="store_true",
        help="draw the chart from the figures (--out, default bench/fleet.json); run nothing",
    )
    args = parser.parse_args()
    if args.chart_only:
        chart(json.loads((args.out or FIGURES).read_text()), args.chart)
        print(f"wrote {args.chart}")
        return
    stop_on_signals()
    known = (*COLUMNS, CHECKS_COLUMN)
    default_columns = ",".join(SMOKE_COLUMNS) if args.smoke else ",".join(c.name for c in COLUMNS)
    columns = _pick(args.columns or default_columns, known, "column")
    if args.haproxy_checks and CHECKS_COLUMN not in columns:
        columns.append(CHECKS_COLUMN)
    default_scenarios = ",".join(SMOKE_SCENARIOS if args.smoke else (s.name for s in SCENARIOS))
    scenarios = _pick(args.scenarios or default_scenarios, SCENARIOS, "scenario")
    sizes = SMOKE if args.smoke else Sizes()
    if args.smoke:  # never over the committed figures
        args.out = args.out or RAW.with_name("fleet_smoke.json")
        args.raw = args.raw or RAW.with_name("fleet_smoke_raw.json")
    args.out, args.raw = args.out or FIGURES, args.raw or RAW
    results, raw = run(
        sizes,
        columns=columns,
        scenarios=scenarios,
        baseline_ref=args.baseline_ref,
        smoke=args.smoke,
    )
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps(raw) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(section(results)))
    print(f"wrote {args.out} and {args.raw}")
    if not args.smoke:
        chart(results, args.chart)  # last: the figures are safe if matplotlib is missing
        print(f"wrote {args.chart}")


if __name__ == "__main__":
    main()
