"""The retry policy's decisions, each a pure function: no server, no clock."""

from __future__ import annotations

import email.utils

import pytest
import responses
from requests.structures import CaseInsensitiveDict

from resilient_http import is_testing, policy, set_testing
from resilient_http.outcome import Outcome

STATUSES = frozenset({502, 503, 504})


def judge(outcome: Outcome, method: str = "GET", *, keyed: bool = False) -> policy.Decision:
    return policy.verdict(outcome, method=method, idempotency_key=keyed, retry_statuses=STATUSES)


@pytest.mark.parametrize(
    ("outcome", "method", "keyed", "expected"),
    [
        (Outcome(200), "GET", False, policy.ANSWER),
        (Outcome(404), "GET", False, policy.ANSWER),
        (Outcome(503), "GET", False, policy.RETRY),
        (Outcome(503), "POST", True, policy.RETRY),
        (Outcome(503), "POST", False, policy.give_up("503 is not retried for POST")),
        (Outcome(500), "GET", False, policy.give_up("500 is not retried for GET")),
        (Outcome(429), "GET", False, policy.give_up("429 is not retried for GET")),
        (Outcome(429, {"Retry-After": "1"}), "GET", False, policy.RETRY),
        (Outcome(error="connect_error"), "POST", False, policy.RETRY),  # never sent
        (Outcome(error="connect_timeout"), "POST", False, policy.RETRY),
        (Outcome(error="read_timeout"), "GET", False, policy.RETRY),
        (
            Outcome(error="read_timeout"),
            "POST",
            False,
            policy.give_up("read_timeout on POST without Idempotency-Key"),
        ),
        (
            Outcome(200, error="body_too_large"),
            "GET",
            False,
            policy.give_up("unusable response: body_too_large"),
        ),
    ],
)
def test_verdict(outcome, method, keyed, expected):
    assert judge(outcome, method, keyed=keyed) == expected


def test_the_retried_statuses_are_the_upstreams_own():
    outcome = Outcome(500)
    judged = policy.verdict(outcome, method="GET", idempotency_key=False, retry_statuses={500})
    assert judged.kind is policy.Kind.RETRY
    assert (
        policy.verdict(Outcome(503), method="GET", idempotency_key=False, retry_statuses={500}).kind
        is policy.Kind.GIVE_UP
    )


def test_backoff_without_jitter_is_urllib3s_schedule():
    """0, 2f, 4f, 8f ... capped: the tutorial's table."""
    waits = [policy.backoff(n, factor=0.5, cap=3.0, jitter=None) for n in range(1, 6)]
    assert waits == [0.0, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_is_a_fraction_of_the_ceiling():
    assert policy.backoff(1, factor=0.1, cap=2.0, jitter=0.5) == pytest.approx(0.05)
    assert policy.backoff(3, factor=0.1, cap=2.0, jitter=1.0) == pytest.approx(0.4)
    assert policy.backoff(9, factor=0.1, cap=2.0, jitter=1.0) == 2.0


def test_attempts_left_counts_retries():
    assert policy.attempts_left(1, retries=1)
    assert not policy.attempts_left(2, retries=1)
    assert not policy.attempts_left(1, retries=0)


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [
        (503, "3", 3.0),
        (429, " 7 ", 7.0),
        (503, " " * 20 + "1", 1.0),  # padding is not digits
        (503, "soon", None),
        (503, "-1", None),
        (502, "3", None),  # Retry-After means something on 429 and 503 only
    ],
)
def test_retry_after(status, value, expected):
    outcome = Outcome(status, CaseInsensitiveDict({"Retry-After": value}))
    assert policy.retry_after(outcome) == expected


@pytest.mark.parametrize("value", ["9" * 400, "9" * 30, "86400", " " * 15 + "99999"])
def test_a_huge_retry_after_is_capped_not_an_overflow(value):
    outcome = Outcome(503, {"Retry-After": value})
    assert policy.retry_after(outcome) == policy.RETRY_AFTER_MAX


def test_a_date_out_of_the_calendar_is_unreadable():
    outcome = Outcome(503, {"Retry-After": "Fri, 31 Dec 99999 23:59:59 GMT"})
    assert policy.retry_after(outcome) is None


def test_retry_after_as_an_http_date():
    when = email.utils.formatdate(1_000_030, usegmt=True)
    outcome = Outcome(503, {"Retry-After": when})
    assert policy.retry_after(outcome, now=lambda: 1_000_000.0) == pytest.approx(30.0)
    assert policy.retry_after(outcome, now=lambda: 2_000_000.0) == 0.0  # in the past


def test_fits():
    assert policy.fits(0.5, time_left=0.55, min_attempt=0.05)
    assert not policy.fits(0.5, time_left=0.54, min_attempt=0.05)


def test_hedges_only_what_may_be_repeated_with_attempts_and_time_left():
    args = {"retries": 2, "time_left": 1.0, "min_attempt": 0.05}
    assert policy.may_hedge("GET", idempotency_key=False, attempts=1, **args)
    assert not policy.may_hedge("POST", idempotency_key=False, attempts=1, **args)
    assert policy.may_hedge("POST", idempotency_key=True, attempts=1, **args)
    assert not policy.may_hedge("GET", idempotency_key=False, attempts=3, **args)
    args["time_left"] = 0.01
    assert not policy.may_hedge("GET", idempotency_key=False, attempts=1, **args)


def test_set_testing_skips_the_sleeps_and_takes_the_jitter_ceiling(mocked, make_manager, clock):
    """stamina's switch: waits are computed and reported, never slept; jitter deterministic."""
    manager = make_manager(backoff_jitter=True, retries=2, random=lambda: 0.123)
    for status in (503, 503, 200):
        mocked.add(responses.GET, "http://users.test/users/1", status=status, json={})
    set_testing(True)
    try:
        assert is_testing()
        response = manager.get("/users/1")
    finally:
        set_testing(False)
    assert not is_testing()
    assert clock.sleeps == []
    assert [a.wait for a in response.history] == [pytest.approx(0.1), pytest.approx(0.2), None]


def test_a_far_http_date_is_capped_like_seconds():
    outcome = Outcome(503, {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"})
    assert policy.retry_after(outcome, now=lambda: 1_000_000.0) == policy.RETRY_AFTER_MAX


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": policy.Kind.ANSWER, "reason": "why"},
        {"kind": policy.Kind.ANSWER, "wait": 1.0},
        {"kind": policy.Kind.ANSWER, "retry_after": 1.0},
        {"kind": policy.Kind.RETRY},
        {"kind": policy.Kind.GIVE_UP},
        {"kind": policy.Kind.RETRY, "reason": "503", "needed": 1.0},
        {"kind": policy.Kind.RETRY, "reason": "503", "callers_deadline": True},
        {"kind": policy.Kind.ANSWER, "callers_deadline": True},
    ],
)
def test_a_decision_cannot_contradict_itself(bad):
    with pytest.raises(ValueError, match=r"."):
        policy.Decision(**bad)


def state(**overrides) -> policy.RetryState:
    fields = {
        "method": "GET",
        "keyed": False,
        "retries": 2,
        "retry_statuses": STATUSES,
        "min_attempt": 0.05,
        **overrides,
    }
    return policy.RetryState(**fields)


def no_backoff(failures: int) -> float:
    return 0.1 * failures


def test_the_retry_state_is_a_value_and_counts_attempts_sent():
    first = state()
    after = first.sent().sent(2)  # an attempt, then a hedged pair
    assert (first.attempts, after.attempts) == (0, 3)


def test_the_retry_state_decides_a_wait_then_gives_up_when_attempts_run_out():
    retry = state(retries=1).sent()
    decision = retry.next(Outcome(503), time_left=5.0, backoff=no_backoff)
    assert (decision.kind, decision.wait) == (policy.Kind.RETRY, pytest.approx(0.1))
    decision = retry.sent().next(Outcome(503), time_left=5.0, backoff=no_backoff)
    assert decision == policy.give_up("retries exhausted")


def test_the_retry_state_honours_retry_after_or_says_it_does_not_fit():
    asks = Outcome(503, {"Retry-After": "2"})
    assert state().sent().next(asks, time_left=5.0, backoff=no_backoff).wait == 2.0
    decision = state().sent().next(asks, time_left=1.0, backoff=no_backoff)
    assert decision == policy.give_up(
        "Retry-After 2 s exceeds the 1.00 s left", retry_after=2.0, needed=2.05
    )


def test_a_refused_retry_keeps_the_upstreams_retry_after():
    decision = (
        state().sent().next(Outcome(503, {"Retry-After": "1"}), time_left=5.0, backoff=no_backoff)
    )
    assert decision.give_up("budget") == policy.give_up("budget", retry_after=1.0)


def test_a_give_up_says_whose_deadline_ended_the_call():
    """The caller's own deadline ended it if it cut the last attempt short, or if it
    lacked time the configured deadline (``configured_left``) would have given."""
    timed_out = Outcome(error="read_timeout")
    last = state(retries=1).sent().sent()
    assert not last.next(timed_out, time_left=5.0, backoff=no_backoff).callers_deadline
    cut = last.next(timed_out, time_left=5.0, backoff=no_backoff, cut_short=True)
    assert cut == policy.give_up("retries exhausted", callers_deadline=True)

    lacking = state().sent()  # needs 0.1 s of backoff and 0.05 s of attempt; has 0.1 s
    ours = lacking.next(Outcome(503), time_left=0.1, backoff=no_backoff)
    theirs = lacking.next(Outcome(503), time_left=0.1, backoff=no_backoff, configured_left=4.0)
    too_short = lacking.next(Outcome(503), time_left=0.1, backoff=no_backoff, configured_left=0.12)
    assert (ours.needed, ours.callers_deadline) == (pytest.approx(0.15), False)
    assert (theirs.callers_deadline, too_short.callers_deadline) == (True, False)


def test_a_retry_refused_for_the_budget_keeps_whose_deadline_cut_the_attempt():
    retry = state().sent().next(Outcome(error="read_timeout"), time_left=5.0, backoff=no_backoff)
    assert retry.kind is policy.Kind.RETRY
    assert retry.give_up("budget", cut_short=True).callers_deadline
    assert not retry.give_up("budget").callers_deadline


@pytest.mark.parametrize(
    ("error", "left", "cut"),
    [
        ("deadline_exceeded", 0.5, True),  # the watchdog, at the caller's 0.5 s
        ("read_timeout", 0.5, True),  # the 2 s read timeout, shortened to 0.5 s
        ("read_timeout", 2.0, False),  # the caller left it the whole read timeout
        ("connect_timeout", 1.0, False),  # and the whole connect timeout
        ("connect_timeout", 0.9, True),
        ("connect_refused", 0.5, False),  # not a timeout: no deadline cut it
        (None, 0.5, False),
    ],
)
def test_an_attempt_is_cut_short_by_a_timeout_the_callers_deadline_shortened(error, left, cut):
    outcome = Outcome(error=error) if error else Outcome(503)
    limits = {"connect_timeout": 1.0, "read_timeout": 2.0}
    assert policy.cut_short(outcome, left=left, configured_left=5.0, **limits) is cut


def test_the_callers_deadline_lacked_the_time_only_if_the_configured_one_had_it():
    assert policy.callers_time(1.0, configured_left=1.0)  # exactly enough: theirs lacked it
    assert not policy.callers_time(1.0, configured_left=0.99)
    assert not policy.callers_time(1.0, configured_left=None)  # the configured one binds
