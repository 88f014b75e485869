"""bench/slow_users.py's arithmetic and its open-loop sender, against a server that stalls."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.slow_users import (
    HEALTHZ,
    USERS_BOUND,
    Sample,
    Stream,
    open_loop,
    plan,
    recovery,
    summary,
)

ROOT = Path(__file__).resolve().parent.parent.parent


def sample(due: float, status: int = 200, latency: float = 0.01, code: str = "") -> Sample:
    return Sample(USERS_BOUND.name, due, 0.0, latency, status, code, f"r-{due}")


def test_plan_sends_each_stream_on_its_own_fixed_schedule():
    """Request i of a stream is due at i/rate: 40/s and 10/s for 1 s, merged in due order."""
    requests = plan((USERS_BOUND, HEALTHZ), 1.0)
    bound = [due for due, stream, _ in requests if stream is USERS_BOUND]
    probes = [due for due, stream, _ in requests if stream is HEALTHZ]
    assert len(bound) == 40
    assert bound[1] == pytest.approx(0.025)
    assert probes == pytest.approx([i / 10 for i in range(10)])
    assert [due for due, _, _ in requests] == sorted(due for due, _, _ in requests)


def test_summary_counts_every_outcome_and_no_answer_apart():
    samples = [
        sample(0, 200),
        sample(0.1, 503, 0.01, "users_overloaded"),
        sample(0.2, 503, 2.0, "users_circuit_open"),
        sample(0.3, 0, 15.0, "TimeoutError"),
    ]
    got = summary(samples)
    assert got["requests"] == 4
    assert got["answered"] == 3
    assert got["fast_503"] == 1  # the slow 503 is not fast
    assert got["outcomes"] == {
        "200": 1,
        "503 users_overloaded": 1,
        "503 users_circuit_open": 1,
        "failed TimeoutError": 1,
    }


@pytest.mark.parametrize(
    ("after_clear", "expected"),
    [
        ([(10.5, 503), (11.0, 200), (12.0, 200)], 1.0),  # normal from 11.0, cleared at 10.0
        ([(10.5, 200), (11.0, 503), (12.0, 200)], 2.0),  # one late failure moves it
        ([(10.5, 200), (11.0, 200), (12.0, 503)], None),  # never settled
        ([(10.5, 200), (11.0, 200)], 0.5),
    ],
)
def test_recovery_is_when_every_later_users_bound_request_is_a_normal_200(after_clear, expected):
    samples = [sample(9.0, 503), *(sample(due, status) for due, status in after_clear)]
    assert recovery(samples, cleared=10.0, normal=0.25) == expected


def test_recovery_counts_a_slow_200_as_not_yet_normal():
    samples = [sample(10.5, 200, latency=3.0), sample(11.0, 200), sample(12.0, 200)]
    assert recovery(samples, cleared=10.0, normal=0.25) == 1.0


class _OneAtATime(socketserver.TCPServer):
    """Answers one connection at a time, each after ``stall`` seconds: every request that
    arrives meanwhile waits in the listen queue, as behind a saturated server."""

    allow_reuse_address = True
    request_queue_size = 64
    stall = 0.2


class _Stalling(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # the request's head
        time.sleep(self.server.stall)  # type: ignore[attr-defined]
        body = json.dumps({"code": "stalled"}).encode()
        self.wfile.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


@pytest.fixture
def stalling_server() -> Iterator[str]:
    server = _OneAtATime(("127.0.0.1", 0), _Stalling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_open_loop_sends_on_schedule_and_counts_the_queue_from_when_each_was_due(
    stalling_server,
):
    """A closed-loop caller would see 0.2 s a request; due every 20 ms, request i waits
    behind the i before it, and its latency says so (no coordinated omission)."""
    stream = Stream("s", "/x", 50)
    samples, _ = open_loop(stalling_server, plan((stream,), 0.2), tag="t", timeout=30)
    assert len(samples) == 10
    assert {(s.status, s.code) for s in samples} == {(503, "stalled")}
    last = max(samples, key=lambda s: s.due)
    # ten 0.2 s answers in a row: the last due (at 0.18 s) is answered at >= 2.0 s
    assert last.latency >= 10 * _OneAtATime.stall - last.due - 0.05
    assert sorted(s.request_id for s in samples) == sorted(f"t-s-{i}" for i in range(10))
    # Sent when due, not after the answer before it: a closed loop would send the last one
    # 9 stalls (>= 1.8 s) late. 0.9 s is slack for a loaded machine, not a promise.
    assert max(s.lag for s in samples) < 9 * _OneAtATime.stall / 2


def test_open_loop_counts_a_request_nobody_answers_as_a_failure(stalling_server):
    stream = Stream("s", "/x", 10)
    samples, _ = open_loop(stalling_server, plan((stream,), 0.3), tag="t", timeout=0.3)
    assert any(s.status == 0 and s.code == "TimeoutError" for s in samples)  # queued past 0.3 s


def test_committed_benchmark_figures_hold_no_raw_samples():
    """The raw samples stay in bench/out/ (git-ignored): what is committed is figures."""
    for name in ("results.json", "slow_users.json", "fleet.json"):
        path = ROOT / "bench" / name
        if not path.exists():
            continue
        text = path.read_text()
        assert len(text.splitlines()) < 2000, f"{name}: raw samples committed?"
        assert '"latency"' not in text  # the key of every raw sample, of both benchmarks
