"""What a review of the reshaped loop found: RetryState and Decision misused, each event
kind's level and line."""

from __future__ import annotations

import pytest

from resilient_http import events as ev
from resilient_http.outcome import Outcome
from resilient_http.policy import Decision, Kind, RetryState


def test_a_hedge_cut_unfinished_is_not_a_failure_in_the_backoff():
    """A hedged pair where one attempt was cut before it ended (``hedge_lost``): two went
    out, one failed, and the backoff is after one failure, as before the refactor (the old
    ``failures`` skipped ``hedge_lost``). Reached only if a race ends early on an answer
    that is then retried; the loop's race does not today, the state keeps it right anyway."""
    retry = RetryState("GET", False, 4, frozenset({503}), 0.05).sent(2, cut=1)
    asked: list[int] = []
    retry.next(Outcome(503), time_left=5.0, backoff=lambda n: asked.append(n) or 0.1)
    assert (retry.attempts, retry.failures, asked) == (2, 1, [1])


@pytest.mark.parametrize(
    "decision",
    [
        lambda: Decision(Kind.GIVE_UP, "retries exhausted", wait=2.0),
        lambda: Decision(Kind.RETRY, "503", wait=-1.0),
        lambda: Decision(Kind.ANSWER).give_up("retry budget exhausted"),
    ],
    ids=["give-up-that-waits", "negative-wait", "answer-turned-give-up"],
)
def test_a_decision_that_means_nothing_is_refused(decision):
    """``__post_init__`` promises "what that kind needs and nothing else"."""
    with pytest.raises(ValueError, match=r"wait|refused"):
        decision()


#: Before the typed events (0fc252a): these four at INFO, "normal operation"; the rest WARNING.
QUIET = {ev.CALL_SUCCEEDED, ev.BREAKER_CLOSED, ev.HEDGE_SENT, ev.HOST_RETURNED}


@pytest.mark.parametrize("name", sorted(ev.KINDS))
def test_each_kind_logs_at_the_level_it_had_before(name):
    """Every kind's level pinned, not only the one ``test_events`` checks."""
    import logging

    assert ev.KINDS[name].level == (logging.INFO if name in QUIET else logging.WARNING)


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            ev.BreakerOpened(upstream="users", cause="5 consecutive failures"),
            "users breaker_opened: 5 consecutive failures",
        ),
        (
            ev.BreakerHalfOpen(upstream="users", cause="open for 5 s, probing"),
            "users breaker_half_open: open for 5 s, probing",
        ),
        (
            ev.BreakerClosed(upstream="users", cause="probe succeeded"),
            "users breaker_closed: probe succeeded",
        ),
        (
            ev.BreakerRejected(upstream="users", method="GET", path="/users/1"),
            "users breaker_rejected",
        ),
        (
            ev.BulkheadRejected(upstream="users", method="GET", path="/u", cause="bulkhead full"),
            "users bulkhead_rejected: bulkhead full",
        ),
        (
            ev.BudgetExhausted(
                upstream="users",
                method="GET",
                path="/u",
                attempt=1,
                max_attempts=4,
                outcome="503",
                elapsed=0.012,
                cause="retry budget exhausted",
            ),
            "users GET /u attempt 1/4: 503 in 12 ms: retry budget exhausted",
        ),
        (
            ev.HedgeSent(
                upstream="users",
                method="GET",
                path="/u",
                attempt=2,
                max_attempts=4,
                elapsed=0.05,
                host="b.test",
            ),
            "users GET /u attempt 2/4 on b.test: hedge sent, no answer after 50 ms",
        ),
        (
            ev.HostEjected(upstream="users", host="a.test", cause="5 consecutive failures"),
            "users host_ejected a.test: 5 consecutive failures",
        ),
        (
            ev.HostReturned(upstream="users", host="a.test", cause="ejection over"),
            "users host_returned a.test: ejection over",
        ),
    ],
    ids=lambda v: v.name if isinstance(v, ev.Event) else "",
)
def test_each_kind_reads_as_its_line(event, line):
    """The kinds ``test_events`` does not read back, line by line."""
    assert event.describe() == line
    assert event.fields()["event"] == event.name


@pytest.mark.parametrize(("attempt", "level"), [(1, "DEBUG"), (2, "INFO"), (None, "INFO")])
def test_a_first_attempts_answer_is_logged_at_debug_a_retried_ones_at_info(attempt, level):
    """A line per healthy call at INFO cost more than the call (docs/benchmarks.md); the
    line that says the retries worked stays at INFO."""
    import logging

    event = ev.CallSucceeded(upstream="users", attempt=attempt, max_attempts=5, outcome="200")
    assert event.log_level() == getattr(logging, level)


def test_the_log_listener_writes_a_first_attempts_answer_only_at_debug(caplog):
    import logging

    event = ev.CallSucceeded(
        upstream="users",
        method="GET",
        path="/users/1",
        attempt=1,
        max_attempts=5,
        outcome="200",
        elapsed=0.003,
    )
    ev.logger.addHandler(caplog.handler)  # the project's logging config does not propagate
    try:
        with caplog.at_level(logging.INFO, logger="resilient_http"):
            ev.log_event(event)
        assert not caplog.records
        with caplog.at_level(logging.DEBUG, logger="resilient_http"):
            ev.log_event(event)
    finally:
        ev.logger.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records] == [
        "users GET /users/1 attempt 1/5: 200 in 3 ms"
    ]
    assert caplog.records[0].levelno == logging.DEBUG
