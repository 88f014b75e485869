"""Review of issue 21's refactor: what the reshaped loop, RetryState and Decision let through."""

from __future__ import annotations

import itertools
import json
import threading
from http import HTTPStatus

import pytest
import responses

from project.resilience import events as ev
from project.resilience.policy import Decision, Kind
from tests.conftest import USER

HOSTS = ("http://a.test", "http://b.test", "http://c.test")


def test_a_hedge_cut_unfinished_is_not_a_failure_in_the_backoff(make_manager, events):
    """Attempt 1 hangs, its hedge (2) gets a 429 and wins, 1 is cut (hedge_lost); 3 goes to
    the untried host at once and gets a 503; the backoff before 4 is after 2 failures (2 x
    0.1 s), as before the refactor (``failures`` excluded hedge_lost), not 3 (0.4 s)."""
    count, release = itertools.count(1), threading.Event()

    def answer(request):
        n = next(count)
        if n == 1:
            release.wait(2)  # hangs until the race has ended
            return 503, {}, "{}"
        status = {2: 429, 3: 503}.get(n, 200)
        body = USER if status == HTTPStatus.OK else {"detail": "x"}
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        for host in HOSTS:
            mocked.add_callback("GET", f"{host}/users/1", callback=answer)
        manager = make_manager(
            base_url=",".join(HOSTS), hedge_after=0.05, retries=5, backoff_factor=0.1
        )
        try:
            response = manager.get("/users/1")
        finally:
            release.set()
    assert [(a.number, a.outcome) for a in response.history][:3] == [
        (1, "hedge_lost"),
        (2, "429"),
        (3, "503"),
    ]
    waits = [e.wait for e in events if isinstance(e, ev.RetryScheduled)]
    assert waits == [0.0, pytest.approx(0.2)], waits


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
