"""bench/fleet.py's pure parts: HAProxy's configuration, figures from samples and access-log
hits, the issue's targets, the section; and its open-loop sender's recovery tail."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import fleet
from bench.slow_users import Sample

SIZES = fleet.Sizes(rate=10.0, seconds=10.0, heal_at=8.0, settle=2.0, tail=3.0)


def sample(due: float, status: int = 200, latency: float = 0.01, code: str = "") -> Sample:
    return Sample("users_bound", due, 0.0, latency, status, code, f"t-{round(due * 10)}")


def test_haproxy_config_is_plain_round_robin_without_checks_by_default():
    config = fleet.haproxy_config(mode="tcp", port=9000, servers=[9001, 9002, 9003])
    assert "    mode tcp" in config
    assert "    bind 127.0.0.1:9000" in config
    assert "    balance roundrobin" in config
    assert "    server r3 127.0.0.1:9003\n" in config
    assert "check" not in config
    assert "redispatch" not in config


def test_haproxy_config_with_checks_checks_every_server_over_http():
    config = fleet.haproxy_config(mode="http", port=9000, servers=[9001, 9002], checks=True)
    assert "option httpchk GET /healthz" in config
    assert config.count(" check inter 1s") == 2


def test_haproxy_config_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        fleet.haproxy_config(mode="udp", port=1, servers=[2])


@pytest.mark.parametrize(
    ("rid", "expected"),
    [("t-12", 12), ("t-0", 0), ("u-12", None), ("t-12-x", None), (None, None), ("t-", None)],
)
def test_request_index_reads_only_this_runs_request_ids(rid, expected):
    assert fleet.request_index(rid, "t") == expected


def test_breaker_openings_count_orders_breaker_opened_lines():
    log = (
        "04/12/2026 18:00:00.000 WARNING - users breaker_opened: 5 failures [r-1]\n"
        "04/12/2026 18:00:01.000 INFO - users breaker_half_open [r-2]\n"
        "04/12/2026 18:00:09.000 WARNING - users breaker_opened: slow calls [r-3]\n"
    )
    assert fleet.breaker_openings(log) == 2


def test_ejection_in_force_is_the_last_ejection_of_that_host():
    log = (
        "W - users host_ejected 127.0.0.1:7003: 5 failed or slow attempts in a row"
        " (last: 503 in 3 ms); out for 5 s\n"
        "W - users host_ejected 127.0.0.1:7001: 5 failed ...; out for 5 s\n"
        "W - users host_ejected 127.0.0.1:7003: 5 failed ...; out for 10 s\n"
    )
    assert fleet.ejection_in_force(log, "127.0.0.1:7003") == 10.0
    assert fleet.ejection_in_force(log, "127.0.0.1:7002") is None


@pytest.mark.parametrize(
    ("hits", "healed_at", "expected"),
    [
        ([(7.0, 200), (8.5, 503), (9.25, 200)], 8.0, 1.25),  # a 503 after the heal: not served
        ([(7.9, 200), (8.0, 200)], 8.0, 0.0),  # due before the heal: does not count
        ([(7.0, 200)], 8.0, None),  # never again
        ([(9.0, 200)], None, None),  # never healed (healthy)
    ],
)
def test_recovery_is_the_first_request_due_after_the_heal_that_the_replica_served(
    hits, healed_at, expected
):
    assert fleet.recovery(hits, healed_at) == expected


def test_figures_count_the_measured_requests_and_the_bad_replicas_share_after_settling():
    samples = [sample(i / 10, latency=0.01) for i in range(100)]
    samples[50] = sample(5.0, 503, 2.0, "users_unavailable")
    samples.append(sample(10.5))  # the tail: the recovery's only
    # replicas 1 and 2 serve everything after the first 2 s; replica 3 one request, and
    # one before 2 s (not counted) and one after the heal (the recovery)
    good = [(i / 10, 200) for i in range(20, 80)]
    hits = [good[::2], good[1::2], [(1.0, 503), (5.0, 503), (8.5, 200)]]
    got = fleet.figures(samples, hits, SIZES, healed_at=8.0)
    assert got["requests"] == 100
    assert got["sent"] == 101
    assert got["ok"] == 99
    assert got["ok_share"] == pytest.approx(0.99)
    assert got["outcomes"] == {"200": 99, "503 users_unavailable": 1}
    assert got["p99_ms"] == pytest.approx(10.0)
    assert got["max_ms"] == pytest.approx(2000.0)
    assert got["users_requests_after"] == [30, 30, 1]
    assert got["bad_share_vs_fair"] == pytest.approx((1 / 61) * 3)
    assert got["recovery_s"] == pytest.approx(0.5)


def test_figures_p99_after_settling_leaves_the_first_seconds_out():
    samples = [sample(i / 10, latency=3.0 if i < 20 else 0.02) for i in range(100)]
    got = fleet.figures(samples, [[], [], []], SIZES, healed_at=None)
    assert got["p99_ms"] == pytest.approx(3000.0)
    assert got["p99_after_ms"] == pytest.approx(20.0)
    assert got["bad_share_vs_fair"] is None  # no Users request at all: no share


def test_figures_give_a_refusing_replica_no_share():
    samples = [sample(i / 10) for i in range(100)]
    hits = [[(5.0, 200)], [(5.1, 200)], []]
    assert (
        fleet.figures(samples, hits, SIZES, healed_at=8.0, refused=True)["bad_share_vs_fair"]
        is None
    )


def _run(ok_share=1.0, p99_after=100.0, share=0.0, recovery=1.0, period=None):
    return {
        "ok_share": ok_share,
        "p99_after_ms": p99_after,
        "bad_share_vs_fair": share,
        "recovery_s": recovery,
        "ejection_period_s": period,
    }


def test_targets_judge_each_scenario_against_the_same_columns_healthy_run():
    runs = {
        "healthy": _run(p99_after=100.0, share=1.0, recovery=None),
        "error_503": _run(ok_share=0.9995, p99_after=199.0, share=0.1, recovery=4.9),
        "slow": _run(ok_share=0.998, p99_after=201.0, share=0.11, recovery=9.0, period=10.0),
        "down": {**_run(share=None, recovery=None), "recovery_window_s": 10.0},
    }
    got = fleet.targets(runs)
    assert got["healthy"] == dict.fromkeys(
        ("ok_200", "p99_after", "p99_vs_best", "bad_share", "recovery")
    ) | {"ok_200": True}
    assert got["error_503"] == {
        "ok_200": True,
        "p99_after": True,
        "p99_vs_best": None,  # no run-wide best given
        "bad_share": True,
        "recovery": True,
    }
    # the ejection in force at the heal (10 s) is the recovery's bound, not the base 5 s
    assert got["slow"] == {
        "ok_200": False,
        "p99_after": False,
        "p99_vs_best": None,
        "bad_share": False,
        "recovery": True,
    }
    assert got["down"]["bad_share"] is None  # a refusing replica has no share to judge
    assert got["down"]["recovery"] is False  # never back is a failure


def test_the_p99_target_also_holds_against_the_runs_best_healthy_p99():
    """A noisy healthy run (100 ms) flatters its column; the run's best (60 ms) does not."""
    runs = {"healthy": _run(p99_after=100.0), "error_503": _run(p99_after=150.0)}
    got = fleet.targets(runs, best_healthy=60.0)["error_503"]
    assert got["p99_after"] is True
    assert got["p99_vs_best"] is False
    results = {"runs": {"a": runs, "b": {"healthy": _run(p99_after=60.0)}}}
    assert fleet.best_healthy(results) == 60.0


def test_section_renders_every_run_and_a_verdict_for_each_target():
    runs = {"healthy": _run(recovery=None), "error_503": _run(share=0.5)}
    figures = {
        name: {
            **f,
            "outcomes": {"200": 900},
            "p50_ms": 10.0,
            "p99_ms": 90.0,
            "breaker_opened": 0,
            "sender_lag": {"p99_ms": 1.0},
        }
        for name, f in runs.items()
    }
    results = {
        "machine": {"cpus": 2},
        "load": 1.0,
        "date": "2026-12-04",
        "wall_s": 600.0,
        "haproxy": "HAProxy version 2.6.12",
        "sizes": json.loads(json.dumps(fleet.Sizes().__dict__)),
        "path": fleet.PATH,
        "code": {"new": "abc1234", "today": "f2d95fa"},
        "columns": {"new_list": {"label": "new code, replicas listed (p2c)"}},
        "scenarios": {s.name: {"label": s.label} for s in fleet.SCENARIOS},
        "runs": {"new_list": figures},
        "targets": {"new_list": fleet.targets(figures)},
    }
    text = "\n".join(fleet.section(results, "fleet.png"))
    assert "## Several Users replicas" in text
    assert "![Orders with one bad Users replica of three](fleet.png)" in text
    assert "| new code, replicas listed (p2c) | 503 on every request | 100.0 % |" in text
    assert "| **new_list** | 503 on every request | PASS | PASS | PASS | **FAIL** | PASS |" in text
    assert "`f2d95fa`" in text


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ok_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("back_after", "sent"), [(0.0, (10, 13)), (None, (15, 15))])
def test_load_heals_on_time_and_runs_on_until_the_replica_is_back_or_the_tail_ends(
    ok_server, back_after, sent
):
    """1 s at 10/s, healed 0.5 s in; the tail (0.5 s at most) stops once ``back`` says so."""
    sizes = fleet.Sizes(rate=10.0, seconds=1.0, heal_at=0.5, settle=0.0, tail=0.5)
    healed = threading.Event()

    def back(healed_at: float) -> bool:
        assert healed.is_set()
        return back_after is not None

    samples, healed_at = asyncio.run(fleet._load(ok_server, sizes, "t", healed.set, back))
    assert healed_at == pytest.approx(0.5, abs=0.3)
    assert sent[0] <= len(samples) <= sent[1]
    assert {s.status for s in samples} == {200}
    assert [s.request_id for s in samples] == [f"t-{i}" for i in range(len(samples))]


def test_load_without_a_fault_sends_exactly_the_planned_requests(ok_server):
    sizes = fleet.Sizes(rate=20.0, seconds=0.5, tail=5.0)
    samples, healed_at = asyncio.run(fleet._load(ok_server, sizes, "t", None, lambda _: False))
    assert len(samples) == 10
    assert healed_at is None


def test_a_return_later_than_the_run_is_not_judged_when_the_ejection_outlasts_it():
    """Never seen back, but the ejection in force (30 s) is longer than the 20 s the run
    went on after the heal: no verdict. Within a shorter ejection: a failure."""
    runs = {
        "healthy": _run(),
        "slow": {**_run(recovery=None, period=30.0), "recovery_window_s": 20.0},
        "reset": {**_run(recovery=None, period=10.0), "recovery_window_s": 20.0},
    }
    got = fleet.targets(runs)
    assert got["slow"]["recovery"] is None
    assert got["reset"]["recovery"] is False


def test_figures_say_how_long_the_run_went_on_after_the_heal():
    samples = [sample(i / 10) for i in range(120)]  # the last due at 11.9 s, tail included
    got = fleet.figures(samples, [[], [], []], SIZES, healed_at=8.0)
    assert got["recovery_window_s"] == pytest.approx(3.9)
    assert fleet._back(got) == "> 3.9 s"
