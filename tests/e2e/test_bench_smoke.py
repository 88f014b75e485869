"""The benchmark machinery, run with tiny counts so it keeps working (figures not judged)."""

from __future__ import annotations

import json
import shutil

import pytest

from bench import report
from bench.run import SMOKE, run

pytestmark = pytest.mark.e2e


def test_bench_smoke_run_measures_every_core_scenario_and_renders(tmp_path):
    out = tmp_path / "results.json"
    results = run(SMOKE, ["gunicorn"], out, smoke=True)
    assert json.loads(out.read_text())["smoke"] is True
    gunicorn = results["servers"]["gunicorn"]
    overhead = gunicorn["client_overhead"]
    assert overhead["resilient"] > 0
    assert overhead["tutorial"] > 0
    assert overhead["raw_pooled"] > 0
    for client in ("resilient", "tutorial"):
        assert gunicorn["healthy"][client]["success_ratio"] == 1.0
    outage = gunicorn["hard_outage"]["resilient"]
    assert outage["success_ratio"] == 0.0
    assert outage["amplification"] > 0  # measured; its bound is test_real_processes' job
    assert gunicorn["memory"]["requests"] >= SMOKE.memory_requests

    page = report.render(results, tmp_path / "docs").read_text()
    assert "| 3 hard outage (502), 16 callers | p50 |" in page
    assert "Smoke run" in page


def test_proxy_latency_smoke_measures_both_paths_and_renders(tmp_path):
    from bench import proxy_latency

    out = tmp_path / "proxy_latency.json"
    results = proxy_latency.run(5, ["runserver"], out, max_seconds=60)
    measured = results["runserver"]
    assert measured["calls"] == 5
    assert measured["direct"]["p50_ms"] > 0
    assert measured["proxied"]["p50_ms"] > 0
    section = "\n".join(report.proxy_latency(out))
    assert "| Users under runserver |" in section


def test_post_orders_bench_runs_and_its_section_survives_the_report(tmp_path):
    from bench import post_orders

    results = post_orders.run(seconds=0.2, repeats=1, baseline_ref=None)
    for name in post_orders.SCENARIOS:
        for callers in (1, 16):
            assert results["stacks"]["database"][f"{name}_{callers}"]["ok_ratio"] == 1.0
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n")
    post_orders.write_docs(post_orders.section(results), page)
    assert "| POST, new key each | 16 |" in page.read_text()
    kept = report.kept_sections(page)
    assert kept
    assert "| POST, new key each | 16 |" in kept[0]


def test_slow_users_bench_answers_for_every_request_and_renders(sqlite_template):
    """Every scheduled request has a sample, counted Users requests exist, the section and
    the committed shape hold no raw samples. Timing is not judged."""
    from dataclasses import replace

    from bench import slow_users

    sizes = replace(slow_users.SMOKE, hedge_seconds=0.5)
    results, raw = slow_users.run(
        sizes,
        baseline_ref=None,
        concurrency=[],
        hedge_after=["0", "0.05"],
        smoke=True,
        template=sqlite_template,
    )
    scheduled = slow_users.plan(
        slow_users.STREAMS, sizes.healthy + sizes.slow + sizes.recovered, sizes.rate_scale
    )
    assert len(raw["timeline"]["new"]) == len(scheduled)
    new = results["timeline"]["new"]
    for phase in slow_users.PHASES:
        for stream in slow_users.STREAMS:
            measured = new["phases"][phase][stream.name]
            assert measured["requests"] > 0
            assert sum(measured["outcomes"].values()) == measured["requests"]
    assert new["phases"]["healthy"]["healthz"]["outcomes"] == {
        "200": new["phases"]["healthy"]["healthz"]["requests"]
    }
    assert new["phases"]["healthy"]["user_99"]["outcomes"].keys() == {"404 orders_not_found"}
    assert new["cleared_at_s"] > new["fault_set_at_s"]
    assert new["probe_p99_slow_vs_best_healthy"].keys() == {"healthz", "user_99"}
    for value in ("0", "0.05"):
        assert results["hedging"][value]["users_requests"] > 0  # found by request ID
    page = "\n".join(slow_users.section(results, "slow-users.png"))
    assert "| `/healthz` p99, slow vs healthy |" in page
    assert "| 0.05 |" in page
    assert '"latency"' not in json.dumps(results)  # figures only: the samples are in ``raw``


def test_front_door_bench_answers_every_probe_and_renders():
    """Both variants measured in one run; with a handful of hostile connections (far
    fewer than gunicorn's threads) every probe of either is answered."""
    from bench import front_door

    results = front_door.run(front_door.SMOKE, smoke=True)
    for variant in front_door.VARIANTS:
        for row in results["hostile"][variant].values():
            assert all(probe["ok"] == probe["requests"] > 0 for probe in row.values())
        assert results["healthy"][variant]["ok"] == results["healthy"][variant]["requests"]
        assert results["healthy"][variant]["throughput_rps"] > 0
    assert "| gunicorn alone |" in "\n".join(front_door.section(results))


@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_fleet_bench_runs_through_haproxy_and_a_listed_fleet_and_renders():
    """Three replicas, replica 3 made bad and healed; every planned request has a sample,
    Users requests are found in the replicas' logs by request ID, the section renders, the
    committed shape holds no raw samples. Timing is not judged."""
    from bench import fleet

    columns = [c for c in fleet.COLUMNS if c.name in fleet.SMOKE_COLUMNS]
    scenarios = [s for s in fleet.SCENARIOS if s.name == "error_503"]
    results, raw = fleet.run(
        fleet.SMOKE, columns=columns, scenarios=scenarios, baseline_ref=None, smoke=True
    )
    planned = round(fleet.SMOKE.rate * fleet.SMOKE.seconds)
    for column in columns:
        got = results["runs"][column.name]["error_503"]
        assert got["requests"] == planned
        assert planned <= len(raw[column.name]["error_503"]) == got["sent"]
        assert sum(got["outcomes"].values()) == planned
        assert got["healed_at_s"] == pytest.approx(fleet.SMOKE.heal_at, abs=1.0)
    behind_haproxy = results["runs"]["new_tcp"]["error_503"]
    assert sum(behind_haproxy["users_requests_after"]) > 0  # found by request ID
    page = "\n".join(fleet.section(results, "fleet.png"))
    assert "## Several Users replicas" in page
    assert "| new code, HAProxy tcp | 503 on every request |" in page
    assert '"latency"' not in json.dumps(results)


def test_tracing_bench_measures_every_variant_and_renders():
    """Each variant answered every request and the section renders; no timing judged."""
    from bench import tracing

    results = tracing.run(tracing.SMOKE, smoke=True)
    assert set(results["client"]) == set(tracing.CLIENT_VARIANTS)
    assert all(row["calls"] == tracing.SMOKE.client_calls for row in results["client"].values())
    assert set(results["rows"]) == {"off", "default", "console", "otlp", "otlp_sampled"}
    assert all(row["throughput_rps"] > 0 for row in results["rows"].values())
    assert results["spans_received"] > 0  # the OTLP variants did export
    assert "| one trace in ten, OTLP/HTTP |" in "\n".join(tracing.section(results))


def test_overhead_bench_measures_every_section_with_the_peers_installed(tmp_path):
    """``python -m bench.overhead --smoke``: every section measured for every client whose
    library is installed (requirements-bench.txt; `make test` installs only the dev ones),
    the rest listed as missing; the section renders. Timing is not judged."""
    import os
    import subprocess
    import sys

    from bench import overhead

    out = tmp_path / "overhead.json"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run(
        [sys.executable, "-m", "bench.overhead", "--smoke", "--out", str(out)],
        cwd=overhead.ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=100,
    )
    f = json.loads(out.read_text())
    present = [p.name for p in overhead.PEERS if overhead.installed(p)]
    assert f["smoke"] is True
    assert f["missing_peers"] == [p.name for p in overhead.PEERS if p.name not in present]
    assert set(f["socket"]) == {p.name for p in overhead.PEERS if p.socket and p.name in present}
    assert set(f["canned"]) == {p.name for p in overhead.PEERS if p.canned and p.name in present}
    for transport in ("canned", "socket"):
        assert set(f["scaling"][transport]) == set(overhead.SCALING_CLIENTS) & set(present)
    assert set(f["refusals"]) == {"project-bare", "project", "project-django", "project-orders"}
    assert f["refusals"]["project-django"]["prometheus_counted"] > 0
    assert f["allocations"]["project_peak_bytes"] > 0
    assert f["growth"]["calls"] == overhead.SMOKE.growth_calls - overhead.SMOKE.growth_warmup
    page = "\n".join(report.overhead(out, tmp_path / "none.png"))
    assert "## What a healthy call costs" in page
    assert "| refusals/s, open breaker, project |" in page  # a target: the default listener
    assert "| `project-django` |" in page  # the refusals table: every manager
