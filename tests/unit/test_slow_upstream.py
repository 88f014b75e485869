"""A slow upstream: the bulkhead, and the breaker counting slow calls, in flight included."""

from __future__ import annotations

import threading

import pytest
import responses

from resilient_http import CircuitOpen, UpstreamOverloaded, events
from resilient_http.breaker import CircuitBreaker, State
from resilient_http.bulkhead import Bulkhead
from tests.conftest import URL, USER


@pytest.fixture
def breaker(make_breaker) -> CircuitBreaker:
    return make_breaker(slow_call=1.0, slow_call_ratio=0.5)


# -- bulkhead ------------------------------------------------------------------------------


def test_the_bulkhead_admits_up_to_its_limit_and_no_more():
    bulkhead = Bulkhead(2)
    assert bulkhead.try_enter()
    assert bulkhead.try_enter()
    assert not bulkhead.try_enter()
    assert bulkhead.in_flight == 2
    bulkhead.leave()
    assert bulkhead.try_enter()


def test_a_bulkhead_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Bulkhead(0)


def test_a_call_over_the_limit_fails_at_once_without_a_request(mocked, make_manager, events):
    """One call holds the only place (Users has not answered it); the next is refused at
    once: no request, 503 overloaded with Retry-After, an event; the first still succeeds."""
    manager = make_manager(max_concurrency=1)
    entered, release = threading.Event(), threading.Event()

    def slow_answer(request):
        entered.set()
        release.wait(10)
        return 200, {"Content-Type": "application/json"}, b'{"id": 1}'

    mocked.add_callback(responses.GET, URL, callback=slow_answer)
    first: list[object] = []
    thread = threading.Thread(target=lambda: first.append(manager.get("/users/1").status))
    thread.start()
    try:
        assert entered.wait(10)
        with pytest.raises(UpstreamOverloaded) as caught:
            manager.get("/users/1")
    finally:
        release.set()
        thread.join(10)
    assert first == [200]
    assert len(mocked.calls) == 1  # the refused call sent nothing
    assert caught.value.retry_after == 1.0
    assert caught.value.upstream == "users"
    rejected = [e for e in events if e.name == events_module.BULKHEAD_REJECTED]
    assert len(rejected) == 1
    assert rejected[0].cause == "bulkhead full: 1 calls in flight"
    assert manager.bulkhead.in_flight == 0


def test_a_refused_call_does_not_count_for_the_breaker_nor_keep_the_probe(
    mocked, make_manager, clock
):
    """In half-open the probe's place is handed on when the bulkhead refuses the call."""
    manager = make_manager(max_concurrency=1, breaker_consecutive_failures=1, retries=0)
    mocked.add(responses.GET, URL, status=502)
    with pytest.raises(Exception, match="502"):
        manager.get("/users/1")
    assert manager.breaker.state is State.OPEN
    clock.advance(5)
    assert manager.bulkhead.try_enter()  # someone else holds the only place
    with pytest.raises(UpstreamOverloaded):
        manager.get("/users/1")
    manager.bulkhead.leave()
    mocked.add(responses.GET, URL, json=USER)
    assert manager.get("/users/1").status == 200  # the probe went to this call
    assert manager.breaker.state is State.CLOSED


# -- slow calls ----------------------------------------------------------------------------


def test_calls_still_in_flight_past_the_threshold_open_the_breaker(
    make_breaker, clock, transitions
):
    """Ten calls hang; none has returned, yet a second later the eleventh is refused.
    resilience4j would wait for them to end (their timeouts) before counting them."""
    breaker = make_breaker(consecutive_failures=100, slow_call=1.0)  # the rate alone, here
    permits = [breaker.allow() for _ in range(10)]
    assert all(permits)
    clock.advance(0.99)
    assert breaker.allow() is not None  # not slow yet
    clock.advance(0.02)
    assert breaker.allow() is None
    assert breaker.state is State.OPEN
    assert transitions == [(State.OPEN, "10 of the last 10 calls took over 1 s")]


def test_a_slow_call_is_counted_once_even_when_it_ends_later(breaker, clock):
    """Counted while in flight, then it succeeds slowly: not a second call in the counts."""
    slow = breaker.allow()
    clock.advance(1.5)
    for _ in range(9):  # fast, successful: 1 slow in 10 calls
        permit = breaker.allow()
        breaker.record(permit, success=True)
    breaker.record(slow, success=True)
    assert breaker.state is State.CLOSED
    assert breaker.counts() == (10, 0, 1)


def test_slow_successes_open_the_breaker_at_the_ratio(breaker, clock, transitions):
    for i in range(10):
        permit = breaker.allow()
        clock.advance(1.2 if i % 2 else 0.01)  # every other call is slow
        breaker.record(permit, success=True)
    assert breaker.state is State.OPEN
    assert transitions[-1][1] == "5 of the last 10 calls took over 1 s"


def test_fast_calls_never_count_as_slow(breaker, clock):
    for _ in range(50):
        permit = breaker.allow()
        clock.advance(0.99)
        breaker.record(permit, success=True)
    assert breaker.state is State.CLOSED


def test_a_call_its_caller_cut_still_counts_when_it_was_slow(breaker, clock):
    """The hole issue 10 left: callers with deadlines below the read timeout, on a hanging
    upstream, are each released uncounted. Their slowness is the upstream's: it counts."""
    permits = [breaker.allow() for _ in range(10)]  # ten callers, each with a 1.1 s deadline
    clock.advance(1.1)
    for permit in permits:  # each cut by its own caller: released, not recorded
        breaker.release(permit)
    assert breaker.state is State.OPEN


def test_a_call_its_caller_cut_early_counts_nothing(breaker, clock):
    for _ in range(20):
        permit = breaker.allow()
        clock.advance(0.1)
        breaker.release(permit)
    assert breaker.state is State.CLOSED
    assert breaker.counts() == (0, 0, 0)


def test_a_slow_probe_reopens_the_breaker(breaker, clock, transitions):
    for _ in range(5):
        breaker.record(breaker.allow(), success=False)
    clock.advance(5)
    probe = breaker.allow()
    assert breaker.state is State.HALF_OPEN
    clock.advance(1.5)
    breaker.record(probe, success=True)
    assert breaker.state is State.OPEN
    assert transitions[-1] == (State.OPEN, "probe took over 1 s")


def test_slow_call_zero_turns_slowness_off(clock):
    breaker = CircuitBreaker(min_calls=2, slow_call=0.0, clock=clock)
    for _ in range(20):
        permit = breaker.allow()
        clock.advance(60)
        breaker.record(permit, success=True)
    assert breaker.state is State.CLOSED


def test_a_hanging_upstream_opens_the_breaker_for_the_next_caller(mocked, make_manager, clock):
    """Through the manager: calls in flight past slow_call make the next call a fast 503."""
    manager = make_manager(slow_call=1.0, breaker_min_calls=2)
    held = [manager.breaker.allow() for _ in range(2)]  # two calls hanging in flight
    assert all(held)
    clock.advance(1.0)
    with pytest.raises(CircuitOpen):
        manager.get("/users/1")
    assert len(mocked.calls) == 0


events_module = events


# -- what review found ---------------------------------------------------------------------


def test_a_slow_call_that_then_fails_is_one_failed_call(clock):
    breaker = CircuitBreaker(
        min_calls=50, consecutive_failures=50, slow_call=1.0, slow_call_ratio=1.0, clock=clock
    )
    permits = [breaker.allow() for _ in range(10)]
    clock.advance(1.1)
    breaker.allow()  # counts the ten as slow calls, in flight
    for permit in permits:
        breaker.record(permit, success=False)
    assert breaker.counts()[:2] == (0, 10)  # ten calls, ten failures: not 19 calls


def test_calls_from_before_the_breaker_opened_cannot_reopen_it(breaker, clock):
    """Five calls hang; the breaker opens on others, probes, closes; then the five old calls
    time out. Their news is from before: the breaker stays closed."""
    old = [breaker.allow() for _ in range(5)]
    for _ in range(5):
        breaker.record(breaker.allow(), success=False)
    assert breaker.state is State.OPEN
    clock.advance(5)
    breaker.record(breaker.allow(), success=True)  # the probe
    assert breaker.state is State.CLOSED
    for permit in old:
        breaker.record(permit, success=False)
    assert breaker.state is State.CLOSED


def test_an_old_call_ending_in_half_open_does_not_free_the_probes_place(breaker, clock):
    old = breaker.allow()
    for _ in range(5):
        breaker.record(breaker.allow(), success=False)
    clock.advance(5)
    probe = breaker.allow()
    assert probe is not None
    breaker.release(old)
    assert breaker.allow() is None  # still one probe at a time
    breaker.record(probe, success=True)
    assert breaker.state is State.CLOSED


def test_time_the_loop_spends_sleeping_does_not_make_a_call_slow(breaker, clock):
    """Users answered each attempt at once ("503, Retry-After: 1", then 200): the call
    took over a second, all of it the loop's own wait."""
    for _ in range(10):
        permit = breaker.allow()
        clock.advance(0.01)
        permit.pause(clock())
        clock.advance(1.0)
        permit.resume(clock())
        clock.advance(0.01)
        breaker.record(permit, success=True)
    assert breaker.state is State.CLOSED


def test_a_breaker_open_when_the_retry_is_decided_stops_the_call_at_once(
    mocked, make_manager, clock
):
    """Other calls open the breaker while this one's attempt runs: no sleep, no token."""
    manager = make_manager(retries=3, backoff_factor=1)

    def failing_meanwhile(request):
        for _ in range(5):
            manager.breaker.record(success=False)
        return 503, {}, b""

    mocked.add_callback(responses.GET, URL, callback=failing_meanwhile)
    before = manager.budget.available()
    with pytest.raises(Exception, match="opened meanwhile"):
        manager.get("/users/1")
    assert clock.sleeps == []
    assert manager.budget.available() == pytest.approx(before + 0.2)  # its request only


def test_the_managers_backoff_and_retry_after_waits_are_not_slowness(mocked, make_manager, clock):
    manager = make_manager(slow_call=1.0, breaker_min_calls=2)
    for _ in range(10):
        mocked.add(responses.GET, URL, status=503, headers={"Retry-After": "2"})
        mocked.add(responses.GET, URL, json=USER)
        assert manager.get("/users/1").status == 200
    assert clock.sleeps == [2.0] * 10
    assert manager.breaker.state is State.CLOSED


def test_slow_calls_in_a_row_open_the_breaker_before_the_window_turns(breaker, clock, transitions):
    """Ten seconds of healthy traffic fill the window; then Users turns slow. Calls go slow
    one after another (as they arrived): five in a row open it, long before slow calls are
    half the window."""
    for _ in range(400):
        breaker.record(breaker.allow(), success=True)
    for i in range(5):  # five calls, 0.25 s apart, that Users holds
        breaker.allow()
        if i < 4:
            clock.advance(0.25)
    for _ in range(4):  # the first is 1 s old
        assert breaker.allow() is not None  # each finds one more call gone slow
        clock.advance(0.25)
    assert breaker.allow() is None
    assert transitions == [(State.OPEN, "5 consecutive slow or failed calls")]


def test_one_stall_of_the_upstream_is_not_a_streak(breaker, clock):
    """Five calls side by side, Users pauses once past the threshold: one bad moment."""
    for _ in range(400):
        breaker.record(breaker.allow(), success=True)
    hung = [breaker.allow() for _ in range(5)]
    clock.advance(1.05)
    assert breaker.allow() is not None
    for permit in hung:
        breaker.record(permit, success=True)
    assert breaker.state is State.CLOSED


def test_a_slow_probe_its_caller_cut_reopens_the_breaker(breaker, clock, transitions):
    for _ in range(5):
        breaker.record(breaker.allow(), success=False)
    clock.advance(5)
    probe = breaker.allow()
    clock.advance(1.5)
    breaker.release(probe)  # the caller's 1.5 s deadline ended it
    assert breaker.state is State.OPEN
    assert transitions[-1] == (State.OPEN, "probe took over 1 s")


def test_a_slow_call_that_fails_after_its_second_left_the_window(clock):
    """Counted slow at second 1001, failed at 1012: the correction is not applied to a
    second the window has forgotten (it would undercount the calls)."""
    breaker = CircuitBreaker(
        min_calls=50, consecutive_failures=50, slow_call=1.0, slow_call_ratio=1.0, clock=clock
    )
    permit = breaker.allow()
    clock.advance(1.1)
    breaker.allow()
    clock.advance(11)
    breaker.record(permit, success=False)
    assert breaker.counts()[:2] == (0, 1)


def test_a_quick_success_ends_the_streak(breaker, clock):
    for _ in range(4):
        permit = breaker.allow()
        clock.advance(1.0)
        breaker.record(permit, success=True)
        breaker.record(breaker.allow(), success=True)  # quick: the streak starts again
    assert breaker.state is State.CLOSED


def test_a_retry_the_breaker_stopped_during_its_backoff_gives_its_token_back(mocked, make_manager):
    manager = make_manager(retries=2)
    mocked.add(responses.GET, URL, status=503)
    before = manager.budget.available()

    def others_fail_meanwhile(seconds: float) -> None:
        for _ in range(5):
            manager.breaker.record(success=False)

    manager._sleep = others_fail_meanwhile
    with pytest.raises(Exception, match="opened meanwhile"):
        manager.get("/users/1")
    assert len(mocked.calls) == 1
    assert manager.budget.available() == pytest.approx(before + 0.2)  # the token came back


def test_a_listener_that_raises_fails_no_call(mocked, make_manager):
    manager = make_manager()

    def broken(event) -> None:
        raise OSError("disk full")

    manager._listeners = (*manager._listeners, broken)
    mocked.add(responses.GET, URL, json=USER)
    assert manager.get("/users/1").status == 200
