"""What storing orders and Idempotency-Keys in the database costs POST /orders/.

    python -m bench.post_orders                          # ~2 min: this tree only
    python -m bench.post_orders --baseline-ref ec847e2   # + the in-memory version, same run
    python -m bench.post_orders --postgres postgres://...   # + this version on PostgreSQL
    python -m bench.post_orders --smoke                  # seconds: CI keeps it working

On one stack (Users and Orders under gunicorn, 1 worker x 32 threads, SQLite unless
``E2E_DATABASE_URL`` names a PostgreSQL), with 1 and with 16 callers that never pause:
``GET /orders/?user_id=1`` (reference: no write), ``POST /orders/`` without a key (one
insert) and with a fresh key per request (claim, insert + complete). With
``--baseline-ref``, the same scenarios against that git revision of this project (the
in-memory store) on its own stack in the same run, the two measured in turn. Figures go
to bench/out/post_orders.json; ``--docs`` also rewrites the "Creating orders" section of
docs/benchmarks.md.
Loopback only; every load is bounded in time; every process started is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.run import load as run_load
from bench.run import machine, median_of, percentile, warm
from bench.stack import ROOT, Stack, stop_on_signals

OUT = ROOT / "bench" / "out" / "post_orders.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- post-orders:begin -->", "<!-- post-orders:end -->"
SCENARIOS = ("get", "post", "post_key")
LABELS = {
    "get": "GET (reference, no write)",
    "post": "POST, no key",
    "post_key": "POST, new key each",
}

Send = Callable[[requests.Session, str], requests.Response]


def _get(session: requests.Session, url: str) -> requests.Response:
    return session.get(f"{url}/orders/", params={"user_id": 1}, timeout=60)


def _post(session: requests.Session, url: str, key: bool = False) -> requests.Response:
    headers = {"Idempotency-Key": str(uuid.uuid4())} if key else {}
    body = {"user_id": 2, "product": "Bench"}  # not user 1: the GET reference stays as is
    return session.post(f"{url}/orders/", json=body, headers=headers, timeout=60)


SENDERS: dict[str, Send] = {
    "get": _get,
    "post": _post,
    "post_key": lambda session, url: _post(session, url, key=True),
}


def load(url: str, send: Send, *, callers: int, seconds: float) -> dict[str, float]:
    """``callers`` threads send back to back for ``seconds``; throughput and latencies."""
    began = time.monotonic()
    samples = run_load(url, callers=callers, seconds=seconds, send=send)
    wall = time.monotonic() - began
    latencies = [s.latency for s in samples]
    return {
        "requests": len(samples),
        "requests_per_second": len(samples) / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "ok_ratio": sum(s.status in (200, 201) for s in samples) / max(1, len(samples)),
    }


def measure(stacks: dict[str, Stack], *, seconds: float, repeats: int) -> dict[str, Any]:
    """Every figure for every stack, interleaved (stack A, stack B, A, B, ...), so that
    whatever else loads the machine meanwhile weighs on both alike."""
    for stack in stacks.values():
        warm(f"{stack.orders.url}/orders/?user_id=1")
        with requests.Session() as session:
            for send in SENDERS.values():
                send(session, stack.orders.url)
    runs: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in stacks}
    for callers in (1, 16):
        for scenario in SCENARIOS:
            figure = f"{scenario}_{callers}"
            for _ in range(repeats):
                for name, stack in stacks.items():
                    measured = load(
                        stack.orders.url, SENDERS[scenario], callers=callers, seconds=seconds
                    )
                    runs[name].setdefault(figure, []).append(measured)
            for name in stacks:
                f = median_of(runs[name][figure])
                print(
                    f"  {name:9} {figure:11} {f['requests_per_second']:6.0f} req/s"
                    f"  p99 {f['p99_ms']:6.1f} ms",
                    flush=True,
                )
    return {
        name: {figure: median_of(rs) for figure, rs in figures.items()}
        for name, figures in runs.items()
    }


def baseline_tree(ref: str, into: Path) -> Path:
    """That revision of this project, as files (``git archive``), to serve beside ours."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    return into


def run(
    *, seconds: float, repeats: int, baseline_ref: str | None, postgres_url: str | None = None
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "database": "postgresql" if os.environ.get("E2E_DATABASE_URL") else "sqlite",
        "seconds": seconds,
        "repeats": repeats,
        "baseline_ref": baseline_ref,
        "postgresql": bool(postgres_url),
        "stacks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, tuple[Path, str | None]] = {"database": (ROOT, None)}
        if postgres_url:
            trees["postgresql"] = (ROOT, postgres_url)
        if baseline_ref:
            trees["in_memory"] = (baseline_tree(baseline_ref, Path(tmp) / "baseline"), None)
        stacks: dict[str, Stack] = {}
        try:
            for name, (root, url) in trees.items():
                directory = Path(tmp) / f"stack-{name}"
                directory.mkdir()
                stacks[name] = Stack(
                    directory, {"USERS_RETRIES": "0"}, "gunicorn", root=root, database_url=url
                )
            results["stacks"] = measure(stacks, seconds=seconds, repeats=repeats)
        finally:
            for stack in stacks.values():
                stack.stop()
    return results


def section(results: dict[str, Any]) -> str:
    """The Markdown section for docs/benchmarks.md."""
    stacks = results["stacks"]
    m = results["machine"]
    columns = [("database", f"this version, {results['database']}")]
    if "postgresql" in stacks:
        columns.append(("postgresql", "this version, postgresql"))
    if "in_memory" in stacks:
        columns.append(("in_memory", f"in memory (`{results['baseline_ref']}`)"))
    lines = [
        BEGIN,
        "## Creating orders (POST /orders/)",
        "",
        "What storing created orders and Idempotency-Keys in the database costs, measured",
        "by `python -m bench.post_orders"
        + (f" --baseline-ref {results['baseline_ref']}" if results["baseline_ref"] else "")
        + (" --postgres URL`" if results["postgresql"] else "`")
        + f" on {m['cpus']} CPUs, {m['date']}: both services under gunicorn (1 worker,",
        f"32 threads), callers that never pause, {results['seconds']:g} s"
        f" per figure, median of {results['repeats']}. Each POST with a key uses a new key.",
        "",
        "| Request | Callers | "
        + " | ".join(f"{label}: req/s, p99" for _, label in columns)
        + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for name in SCENARIOS:
        for callers in (1, 16):
            cells = []
            for stack, _ in columns:
                f = stacks[stack][f"{name}_{callers}"]
                cells.append(f"{f['requests_per_second']:.0f}, {f['p99_ms']:.1f} ms")
            lines.append(f"| {LABELS[name]} | {callers} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "A POST without a key is one insert; with a new key it is two short write",
        "transactions (claim the key; the order and its stored response) and a read (a few",
        "expired keys to purge), around the same Users call. On SQLite every writer takes",
        "one lock on the file and a waiting writer polls for it with SQLite's busy handler,",
        "sleeping up to 100 ms a time, the likely source of the SQLite p99 with 16 callers",
        "all writing (a reading, not measured apart). PostgreSQL locks rows; the README's",
        "deployment uses it. The machine (2 cores) was shared with other test runs (load",
        "average ~5): compare the columns of one row, measured in turn, not separate runs.",
        "",
        END,
    ]
    return "\n".join(lines)


def write_docs(text: str, path: Path = DOCS) -> None:
    """Replace the section between the markers, or append it."""
    page = path.read_text() if path.exists() else ""
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        page = head + text + rest.split(END, 1)[1]
    else:
        page = page.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: seconds")
    parser.add_argument("--seconds", type=float, default=5.0, help="per figure (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--baseline-ref", help="git revision of the in-memory version to compare")
    parser.add_argument("--postgres", metavar="URL", help="also this version on PostgreSQL")
    parser.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md's section")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    stop_on_signals()  # kill or a closed terminal: the servers stop too
    seconds, repeats = (0.3, 1) if args.smoke else (args.seconds, args.repeats)
    results = run(
        seconds=seconds,
        repeats=repeats,
        baseline_ref=args.baseline_ref,
        postgres_url=args.postgres,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(section(results))
    if args.docs and not args.smoke:
        write_docs(section(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
