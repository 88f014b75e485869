"""The healthy path takes no shared lock (docs/benchmarks.md, "What a healthy call costs"):
what it counts without one is still counted exactly, in order, and from many threads.

Each test would fail against a quick path that lost a count (a read-modify-write without
the lock), folded out of order, or forgot a permit; the threaded ones run a fixed number
of calls on a fake clock, so no verdict depends on how fast a thread runs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest

from resilient_http.breaker import State
from resilient_http.budget import RetryBudget
from resilient_http.bulkhead import Bulkhead
from resilient_http.config import UpstreamConfig
from resilient_http.hosts import HostSet
from resilient_http.outcome import Outcome
from resilient_http.window import FOLD_EVERY, SlidingCount, Tally

THREADS, CALLS = 8, 2_000


def together(work: Callable[[int], None]) -> None:
    """``work(k)`` in each of ``THREADS`` threads, started at once; fails on a failure in
    any. The interpreter switches threads every microsecond meanwhile (5 ms by default), so
    a step that is not atomic is interrupted often."""
    start, failures = threading.Barrier(THREADS), []

    def run(k: int) -> None:
        start.wait()
        try:
            work(k)
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures, failures


def test_a_tally_counts_every_add_from_many_threads(clock):
    count = SlidingCount(10, clock)
    tally = Tally(count)
    together(lambda k: [tally.add(clock()) for _ in range(CALLS)])
    assert tally.fold() == THREADS * CALLS
    assert count.total() == THREADS * CALLS


def test_a_tally_asks_to_be_folded_every_few_adds(clock):
    tally = Tally(SlidingCount(10, clock))
    for _ in range(FOLD_EVERY - 1):
        tally.add(clock())
    assert not tally.full
    tally.add(clock())
    assert tally.full


def test_a_late_add_goes_to_its_own_second_or_nowhere(clock):
    count = SlidingCount(3, clock)
    count.add(second=int(clock()) - 1)
    count.add(second=int(clock()) - 5)  # out of the window already: forgotten
    assert count.total() == 1


def test_quick_successes_count_in_the_window(make_breaker, clock):
    breaker = make_breaker(min_calls=5, failure_ratio=0.5, consecutive_failures=100)
    for _ in range(6):
        breaker.record(breaker.allow(), success=True)  # quick: no lock taken
    for _ in range(5):
        breaker.record(breaker.allow(), success=False)
    # 5 of 11 failed: under half. Without the six quick ones, 5 of 5 would open it.
    assert breaker.state is State.CLOSED
    assert breaker.counts() == (6, 5, 0)


def test_a_quick_success_ends_a_streak_of_failures(make_breaker):
    breaker = make_breaker(consecutive_failures=3, min_calls=1000)
    for _ in range(2):
        breaker.record(breaker.allow(), success=False)
    breaker.record(breaker.allow(), success=True)  # tallied, folded before the next
    for _ in range(2):
        breaker.record(breaker.allow(), success=False)
    assert breaker.state is State.CLOSED


def test_a_quick_success_from_before_the_breaker_opened_is_stale(make_breaker, clock):
    breaker = make_breaker(consecutive_failures=1, reset=5)
    early = breaker.allow()
    breaker.record(breaker.allow(), success=False)
    assert breaker.state is State.OPEN
    clock.advance(5)
    probe = breaker.allow()
    breaker.record(probe, success=True)
    assert breaker.state is State.CLOSED
    breaker.record(early, success=True)  # given by the first closed state: ignored
    assert breaker.counts() == (0, 0, 0)


def test_a_call_admitted_without_the_lock_is_still_counted_slow_in_flight(make_breaker, clock):
    breaker = make_breaker(slow_call=1.0, consecutive_failures=2)
    assert breaker.allow() is not None
    clock.advance(0.5)
    assert breaker.allow() is not None  # the first is not slow yet: admitted, no lock
    clock.advance(0.6)  # the first has waited 1.1 s, the second 0.6 s
    assert breaker.allow() is not None  # this one scans: the first is counted slow
    assert breaker.counts().slow == 1
    clock.advance(0.5)  # the second: 1.1 s. Two slow calls in a row, both still in flight
    assert breaker.allow() is None
    assert breaker.state is State.OPEN


def test_many_threads_through_a_closed_breaker_lose_no_count(make_breaker):
    breaker = make_breaker(min_calls=10**9, consecutive_failures=10**9, slow_call=60.0)

    def calls(k: int) -> None:
        for i in range(CALLS):
            permit = breaker.allow()
            assert permit is not None
            breaker.record(permit, success=(i % 10 != k))  # one in ten fails

    together(calls)
    assert breaker.counts() == (THREADS * CALLS * 9 // 10, THREADS * CALLS // 10, 0)
    assert breaker._state.in_flight == breaker._state.overdue == {}  # every permit forgotten


def test_many_threads_record_every_first_attempt_in_the_budget(clock):
    budget = RetryBudget(ratio=0.1, min_per_second=0, window=10, clock=clock)
    together(lambda k: [budget.record_request() for _ in range(CALLS)])
    assert budget.counts() == (THREADS * CALLS, 0)
    assert budget.available() == pytest.approx(THREADS * CALLS * 0.1)


def test_the_bulkhead_never_lets_more_than_its_limit_in_at_once():
    bulkhead, inside, most, lock = Bulkhead(3), [0], [0], threading.Lock()

    def calls(k: int) -> None:
        for _ in range(CALLS):
            if bulkhead.try_enter():
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                with lock:
                    inside[0] -= 1
                bulkhead.leave()

    together(calls)
    assert most[0] <= 3
    assert bulkhead.in_flight == 0


def test_many_threads_on_one_host_leave_nothing_in_flight_and_every_sample_observed(clock):
    hosts = HostSet(
        UpstreamConfig(name="users", base_url="http://a.test"), clock=clock, random=lambda: 0.5
    )
    host = hosts.hosts[0]

    def calls(k: int) -> None:
        for _ in range(CALLS):
            lease = hosts.pick()
            assert lease is not None
            clock.now += 0.0  # (the fake clock does not move: each sample is 0 s)
            hosts.done(lease, Outcome(200))

    together(calls)
    assert host.pending == {}
    [row] = hosts.snapshot()  # folds what was tallied
    assert not host.quick
    assert row["recent"] == ["200"] * 10


def test_a_failure_on_one_host_is_judged_after_the_quick_samples_before_it(clock):
    """The folded samples come first: the failure's cost is the last word."""
    hosts = HostSet(
        UpstreamConfig(name="users", base_url="http://a.test"), clock=clock, random=lambda: 0.5
    )
    host = hosts.hosts[0]
    for _ in range(3):
        lease = hosts.pick()
        clock.advance(0.01)
        hosts.done(lease, Outcome(200))
    assert len(host.quick) == 3  # tallied, not observed yet
    lease = hosts.pick()
    hosts.done(lease, Outcome(503))
    assert not host.quick
    assert host.latency(clock()) >= 0.25  # BAD_COST, taken at once
    assert host.consecutive == 1


def test_scans_for_slow_calls_while_other_threads_admit_without_the_lock(make_breaker, clock):
    """The scan walks the calls in flight while others come and go without the lock: it
    walks a copy (walking the dict itself raises "changed size during iteration")."""
    breaker = make_breaker(
        slow_call=0.001, slow_call_ratio=2.0, min_calls=10**9, consecutive_failures=10**9
    )

    def calls(k: int) -> None:
        for _ in range(CALLS):
            permit = breaker.allow()
            assert permit is not None
            clock.now += 0.0004  # calls overlap and go slow: allow() scans again and again
            breaker.record(permit, success=True)

    together(calls)
    assert breaker.state is State.CLOSED
    assert breaker.counts().successes == THREADS * CALLS  # each once, slow or not
    assert breaker._state.in_flight == breaker._state.overdue == {}


def test_the_live_recorder_takes_calls_and_snapshots_from_many_threads(clock):
    """Rows are written by their own thread only; the page's snapshot copies what it
    reads while calls go on (iterating a row's attempts as one is added would raise)."""
    from resilient_http import events as ev
    from resilient_http.live import CallRecorder

    recorder = CallRecorder(clock=clock)

    def calls(k: int) -> None:
        for i in range(CALLS // 4):
            with recorder.call("users", method="GET", path=f"/users/{k}"):
                for attempt in (1, 2):
                    kind = ev.RetryScheduled if attempt == 1 else ev.CallSucceeded
                    facts = {"method": "GET", "path": f"/users/{k}", "outcome": "200"}
                    recorder(kind(upstream="users", attempt=attempt, max_attempts=5, **facts))
                    if i % 5 == 0:
                        recorder.snapshot("users")

    together(calls)
    state = recorder.snapshot("users")
    assert state["in_flight"] == 0
    assert len(state["calls"]) == recorder.size
    assert all(c["result"] == "succeeded" and len(c["attempts"]) == 2 for c in state["calls"])
