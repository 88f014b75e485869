"""The resilience page's recorder: calls rebuilt from the events, bounded, thread-safe."""

from __future__ import annotations

import threading
from http import HTTPStatus

import pytest

from resilient_http import CircuitOpen, RetryManager, UpstreamConfig, UpstreamUnavailable
from resilient_http import events as ev
from resilient_http.live import CallRecorder
from tests.conftest import BASE_URL, URL, USER


@pytest.fixture
def recorder(clock) -> CallRecorder:
    return CallRecorder(size=5, clock=clock, wall=lambda: 1_700_000_000.0)


@pytest.fixture
def manager(clock, recorder):
    def make(**overrides) -> RetryManager:
        config = UpstreamConfig(name="users", base_url=BASE_URL, backoff_jitter=False, **overrides)
        return RetryManager(config, clock=clock, sleep=clock.sleep, listeners=[recorder])

    return make


def call(recorder: CallRecorder, manager: RetryManager, deadline: float = 5.0):
    with recorder.call("users", method="GET", path="/users/1", deadline=deadline):
        return manager.get("/users/1")


def add(mocked, *statuses: int) -> None:
    for status in statuses:
        mocked.add("GET", URL, status=status, json=USER if status == HTTPStatus.OK else {})


def test_a_call_is_one_row_with_one_mark_per_attempt_and_its_waits(mocked, manager, recorder):
    """502, 502, 200: three attempts in order, the two backoffs, the deadline, succeeded."""
    add(mocked, 502, 502, 200)
    call(recorder, manager(retries=4, backoff_factor=1))
    [row] = recorder.snapshot("users")["calls"]
    assert [a["outcome"] for a in row["attempts"]] == ["502", "502", "200"]
    assert [a["wait"] for a in row["attempts"]] == [0.0, 2.0, None]
    starts = [a["start"] for a in row["attempts"]]
    assert starts == sorted(starts)
    assert starts[2] >= 2.0  # the second wait (2 s on the fake clock) lies before attempt 3
    assert row["result"] == "succeeded"
    assert row["deadline"] == 5.0
    assert row["in_flight"] is False


def test_in_flight_counts_calls_while_they_run(mocked, manager, recorder):
    """The wrapper counts a call from its start, before any event says anything."""
    seen = []

    def answer(request):
        seen.append(recorder.snapshot("users"))
        return (200, {"Content-Type": "application/json"}, '{"id": 1}')

    mocked.add_callback("GET", URL, callback=answer)
    call(recorder, manager())
    assert seen[0]["in_flight"] == 1
    assert seen[0]["calls"][0]["in_flight"] is True
    assert seen[0]["calls"][0]["attempts"] == []
    assert recorder.snapshot("users")["in_flight"] == 0


def test_the_ring_keeps_only_the_last_calls(mocked, manager, recorder):
    """No unbounded memory: ``size`` calls per upstream, the newest first."""
    m = manager(retries=0)
    for _ in range(12):
        add(mocked, 200)
        call(recorder, m)
    calls = recorder.snapshot("users")["calls"]
    assert len(calls) == recorder.size == 5
    ids = [c["id"] for c in calls]
    assert ids == sorted(ids, reverse=True)
    assert ids[0] == 12


def test_the_breaker_opening_and_a_rejected_call_are_recorded(mocked, manager, recorder):
    """The call that opened the breaker says so; the next is a row of its own: rejected."""
    m = manager(retries=0, breaker_consecutive_failures=2)
    add(mocked, 502, 502)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            call(recorder, m)
    with pytest.raises(CircuitOpen):
        call(recorder, m)
    state = recorder.snapshot("users")
    rejected, opener, first = state["calls"]
    assert rejected["result"] == "rejected"
    assert rejected["attempts"] == []
    assert opener["result"] == "failed"
    assert opener["notes"] == ["breaker open: 2 consecutive failures"]
    assert first["notes"] == []
    assert [t["to"] for t in state["transitions"]] == ["open"]


def test_a_bulkhead_refusal_is_a_rejected_row_and_a_hedge_a_note(recorder):
    """What a slow Users looks like on the page: refused calls, and hedges kept in the budget."""
    with recorder.call("users", method="GET", path="/users/1"):
        recorder(ev.make(ev.BULKHEAD_REJECTED, "users", method="GET", path="/users/1"))
    with recorder.call("users", method="GET", path="/users/1"):
        recorder(ev.make(ev.HEDGE_SENT, "users", attempt=2, max_attempts=5, elapsed=0.05))
        recorder(
            ev.make(
                ev.CALL_SUCCEEDED, "users", attempt=2, max_attempts=5, outcome="200", elapsed=0.01
            )
        )
    state = recorder.snapshot("users")
    hedged, refused = state["calls"]
    assert (refused["result"], refused["cause"]) == ("rejected", "bulkhead full")
    assert hedged["notes"] == ["hedge sent after 50 ms"]
    assert hedged["result"] == "succeeded"


def test_the_budgets_own_counts_are_what_the_page_shows(mocked, manager, recorder):
    """Requests are first attempts; a retry that worked is refunded; a retry the breaker
    stopped during its backoff is refunded too. The page reads these from the budget
    itself (``RetryBudget.counts``), so it cannot drift from what the budget decides."""
    m = manager(retries=2, backoff_factor=0.01, breaker=False)
    add(mocked, 502, 200)  # one retry, refunded
    call(recorder, m)
    add(mocked, 502, 502, 502)  # two retries, kept
    with pytest.raises(UpstreamUnavailable):
        call(recorder, m)
    assert m.budget.counts() == (2, 2)


def test_calls_without_the_wrapper_still_show(mocked, manager, recorder):
    """A manager call outside ``recorder.call`` (no start event): a row from its events."""
    add(mocked, 502, 200)
    manager(retries=1).get("/users/1")
    [row] = recorder.snapshot("users")["calls"]
    assert [a["outcome"] for a in row["attempts"]] == ["502", "200"]
    assert row["result"] == "succeeded"
    assert row["deadline"] is None
    assert recorder._open == {}  # nothing left open: no leak per thread


def test_a_bug_inside_the_call_closes_its_row(recorder):
    with pytest.raises(ZeroDivisionError), recorder.call("users", method="GET", path="/x"):
        1 / 0  # noqa: B018
    [row] = recorder.snapshot("users")["calls"]
    assert (row["result"], row["cause"], row["in_flight"]) == ("failed", "ZeroDivisionError", False)


def test_concurrent_calls_keep_their_own_attempts(clock):
    """Threads interleave events; each call still gets exactly its own two attempts."""
    recorder = CallRecorder(size=1000, clock=clock)
    threads, calls = 8, 50
    start = threading.Barrier(threads)

    def run(n: int) -> None:
        start.wait()
        for _ in range(calls):
            with recorder.call("users", method="GET", path=f"/users/{n}", deadline=5.0):
                for attempt, name in ((1, ev.RETRY_SCHEDULED), (2, ev.CALL_SUCCEEDED)):
                    more = {"wait": 0.0} if attempt == 1 else {}
                    recorder(
                        ev.make(
                            name,
                            "users",
                            attempt=attempt,
                            max_attempts=2,
                            method="GET",
                            path=f"/users/{n}",
                            outcome="200" if attempt == 2 else "502",
                            elapsed=0.01,
                            **more,
                        )
                    )

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    state = recorder.snapshot("users")
    assert state["in_flight"] == 0
    assert len(state["calls"]) == threads * calls
    for row in state["calls"]:
        assert [a["number"] for a in row["attempts"]] == [1, 2]
        assert row["result"] == "succeeded"


def test_an_attempt_reported_twice_stays_one_mark_with_its_wait(mocked, clock, recorder):
    """The breaker opens during a backoff: ``call_failed`` repeats attempt 1 after the sleep;
    the mark keeps its place and its wait instead of moving past the sleep."""

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        for _ in range(2):  # other calls fail meanwhile: the breaker opens
            m.breaker.record(success=False)

    config = UpstreamConfig(
        name="users",
        base_url=BASE_URL,
        backoff_factor=1,  # with jitter drawn at 1.0: the first wait is 1 s
        breaker_consecutive_failures=2,
    )
    m = RetryManager(config, clock=clock, sleep=sleep, random=lambda: 1.0, listeners=[recorder])
    add(mocked, 502)
    with pytest.raises(UpstreamUnavailable):
        call(recorder, m)
    row = recorder.snapshot("users")["calls"][0]
    assert [(a["number"], a["start"], a["wait"]) for a in row["attempts"]] == [(1, 0.0, 1.0)]
    assert row["cause"] == "the circuit opened meanwhile (other calls failed)"
