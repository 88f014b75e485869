"""CircuitBreaker transitions, driven by a fake clock."""

from __future__ import annotations

import threading

import pytest

from resilient_http.breaker import CircuitBreaker, State


@pytest.fixture
def breaker(make_breaker) -> CircuitBreaker:
    return make_breaker()


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record(success=False)


def test_opens_after_consecutive_failures(breaker, transitions):
    fail(breaker, 4)
    assert breaker.state is State.CLOSED
    fail(breaker, 1)
    assert breaker.state is State.OPEN
    assert transitions == [(State.OPEN, "5 consecutive failures")]
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_count(breaker):
    fail(breaker, 4)
    breaker.record(success=True)
    fail(breaker, 4)
    assert breaker.state is State.CLOSED


def test_opens_on_failure_ratio_once_there_are_enough_calls(breaker):
    """Alternating success/failure never makes 5 in a row, but half of 10 calls failed."""
    for i in range(9):
        breaker.record(success=i % 2 == 0)
    assert breaker.state is State.CLOSED  # 9 calls: below min_calls
    breaker.record(success=False)
    assert breaker.state is State.OPEN


def test_old_failures_slide_out_of_the_window(breaker, clock):
    for i in range(9):
        breaker.record(success=i % 2 == 0)
    clock.advance(11)
    breaker.record(success=False)
    assert breaker.state is State.CLOSED


def test_half_open_lets_exactly_one_probe_through(breaker, clock, transitions):
    fail(breaker, 5)
    clock.advance(4.9)
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow()
    assert breaker.state is State.HALF_OPEN
    assert not breaker.allow()  # a second caller waits for the probe's verdict
    assert transitions[-1][0] is State.HALF_OPEN


def test_probe_success_closes(breaker, clock):
    fail(breaker, 5)
    clock.advance(5)
    assert breaker.allow()
    breaker.record(success=True)
    assert breaker.state is State.CLOSED
    assert breaker.allow()


def test_probe_failure_reopens_for_another_reset_period(breaker, clock):
    fail(breaker, 5)
    clock.advance(5)
    assert breaker.allow()
    breaker.record(success=False)
    assert breaker.state is State.OPEN
    assert breaker.retry_after() == pytest.approx(5)


def test_a_lost_probe_is_replaced_after_the_reset_period(breaker, clock):
    """A probe whose thread died must not leave the breaker half-open forever."""
    fail(breaker, 5)
    clock.advance(5)
    assert breaker.allow()
    clock.advance(5)
    assert breaker.allow()


def test_reports_from_stragglers_while_open_are_ignored(breaker):
    fail(breaker, 5)
    breaker.record(success=True)
    assert breaker.state is State.OPEN


def test_retry_after_header_is_whole_seconds_at_least_one(breaker, clock):
    fail(breaker, 5)
    clock.advance(4.95)
    assert breaker.retry_after_header() == 1
    clock.advance(-4.95)
    assert breaker.retry_after_header() == 5


def test_concurrent_callers_in_half_open_get_one_probe(breaker, clock):
    fail(breaker, 5)
    clock.advance(5)
    allowed: list[bool] = []
    start = threading.Barrier(16)

    def call() -> None:
        start.wait()
        allowed.append(breaker.allow() is not None)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 1


def test_stays_closed_below_the_failure_ratio(breaker):
    """3 failures in 10 calls, never 5 in a row: under 50 %, the breaker stays closed."""
    for i in range(10):
        breaker.record(success=i % 3 != 0)  # fails at 0, 3, 6, 9
    assert breaker.state is State.CLOSED


def test_closing_starts_the_consecutive_count_afresh(breaker, clock):
    fail(breaker, 5)
    clock.advance(5)
    assert breaker.allow()
    breaker.record(success=True)  # the probe: closed
    fail(breaker, 4)
    assert breaker.state is State.CLOSED


def test_retry_after_is_zero_unless_open(breaker):
    assert breaker.retry_after() == 0.0


def test_each_transition_says_why(breaker, clock, transitions):
    for i in range(10):
        breaker.record(success=i % 2 == 0)  # 5 of 10 failed, never 5 in a row
    clock.advance(5)
    assert breaker.allow()
    breaker.record(success=False)  # the probe fails
    clock.advance(5)
    assert breaker.allow()
    breaker.record(success=True)  # the next one succeeds
    assert transitions == [
        (State.OPEN, "5 of the last 10 calls failed"),
        (State.HALF_OPEN, "open for 5 s, probing"),
        (State.OPEN, "probe failed"),
        (State.HALF_OPEN, "open for 5 s, probing"),
        (State.CLOSED, "probe succeeded"),
    ]


def test_closing_forgets_the_windows_failures(make_breaker, clock):
    """The window's failures from before the outage are forgotten when the probe closes
    the breaker: else the first failure after recovery would reopen it at once."""
    breaker = make_breaker(consecutive_failures=100, min_calls=4, failure_ratio=0.5)
    fail(breaker, 4)  # 4 of 4 failed: open
    assert breaker.state is State.OPEN
    clock.advance(5)
    assert breaker.allow()
    breaker.record(success=True)  # the probe: closed
    for _ in range(3):
        assert breaker.allow()
        breaker.record(success=True)
    fail(breaker, 1)  # 1 of 4: closed (with the old 4 failures kept: 5 of 8, open)
    assert breaker.state is State.CLOSED


def test_an_open_or_half_open_breaker_counts_nothing(make_breaker, clock):
    """``counts()`` is the closed state's window; opening drops it (zeros), so the page and
    a test never read an outage's failures as the next window's."""
    breaker = make_breaker(consecutive_failures=100, min_calls=4, failure_ratio=0.5)
    fail(breaker, 4)
    assert (breaker.state, breaker.counts()) == (State.OPEN, (0, 0, 0))
    clock.advance(5)
    assert breaker.allow()  # the probe goes out
    assert (breaker.state, breaker.counts()) == (State.HALF_OPEN, (0, 0, 0))


@pytest.mark.parametrize(
    ("slow_at", "cause"),
    [
        (None, "3 consecutive failures"),
        (0, "3 consecutive slow or failed calls"),  # a slow success began the streak
        (2, "3 consecutive slow or failed calls"),  # or ended it
    ],
)
def test_the_cause_says_whether_slow_calls_were_in_the_streak(
    make_breaker, clock, transitions, slow_at, cause
):
    breaker = make_breaker(consecutive_failures=3, slow_call=1.0)
    fail(breaker, 1)
    breaker.record(success=True)  # a quick success: the streak before it is forgotten
    for n in range(3):
        permit = breaker.allow()
        clock.advance(1.5 if n == slow_at else 0.01)
        breaker.record(permit, success=n == slow_at)  # slow calls succeed; the rest fail
    assert transitions == [(State.OPEN, cause)]
