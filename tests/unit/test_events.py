"""Each event carries the facts the logs and metrics key on, and reads as one line."""

from __future__ import annotations

import logging

import pytest

from resilient_http import CircuitOpen, UpstreamUnavailable, set_testing
from resilient_http import events as ev
from resilient_http.events import describe, log_event
from tests.conftest import URL


def test_a_failed_call_reports_each_fact(mocked, make_manager, events, clock):
    def slow_502(request):
        clock.advance(0.25)
        return (502, {}, "{}")

    mocked.add_callback("GET", URL, callback=slow_502)
    mocked.add_callback("GET", URL, callback=slow_502)
    with pytest.raises(UpstreamUnavailable) as caught:
        make_manager(retries=1, backoff_factor=1).get("/users/1")
    retry, failed = events
    assert retry.fields() == {
        "event": ev.RETRY_SCHEDULED,
        "upstream": "users",
        "method": "GET",
        "path": "/users/1",
        "attempt": 1,
        "max_attempts": 2,
        "outcome": "502",
        "elapsed": 0.25,
        "cause": "502",
        "wait": 0.0,
        "time_left": 4.75,
    }
    assert failed.fields() == {
        "event": ev.CALL_FAILED,
        "upstream": "users",
        "method": "GET",
        "path": "/users/1",
        "attempt": 2,
        "max_attempts": 2,
        "outcome": "502",
        "elapsed": 0.25,
        "cause": "retries exhausted",
        "duration": 0.5,
        "waited": 0.0,  # backoff 0 (jitter at its floor)
    }
    error = caught.value
    assert (error.upstream, error.reason) == ("users", "retries exhausted")
    assert [(a.number, a.outcome, a.elapsed, a.wait) for a in error.history] == [
        (1, "502", 0.25, 0.0),
        (2, "502", 0.25, None),
    ]
    assert str(error) == "users: retries exhausted (attempts: 502, 502)"
    assert describe(failed) == (
        "users GET /users/1 attempt 2/2: 502 in 250 ms; giving up: retries exhausted"
    )


def test_a_call_that_never_started_says_so(make_manager, events, clock):
    from resilient_http import Deadline, UpstreamTimeout

    with pytest.raises(UpstreamTimeout) as caught:
        make_manager().get("/users/1", deadline=Deadline.after(0.01, clock))
    assert str(caught.value) == (
        "users: deadline exceeded before an attempt could start (attempts: no attempt)"
    )
    assert events[0].fields() == {
        "event": ev.CALL_FAILED,
        "upstream": "users",
        "method": "GET",
        "path": "/users/1",
        "cause": "deadline exceeded before an attempt could start",
        "duration": 0.0,
        "waited": 0.0,
    }


def test_a_rejected_call_names_what_was_not_sent(mocked, make_manager, events):
    mocked.add("GET", URL, status=502, json={})
    manager = make_manager(retries=0, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamUnavailable):
        manager.get("/users/1")
    with pytest.raises(CircuitOpen) as caught:
        manager.get("/users/1")
    assert caught.value.reason == "circuit open"
    assert events[-1].fields() == {
        "event": ev.BREAKER_REJECTED,
        "upstream": "users",
        "method": "GET",
        "path": "/users/1",
    }


def test_the_default_listener_logs_one_line_with_the_fields(caplog):
    event = ev.make(ev.CALL_SUCCEEDED, "users", attempt=2, max_attempts=5, method="GET",
                     path="/users/1", outcome="200", elapsed=0.004, duration=0.004)  # fmt: skip
    ev.logger.addHandler(caplog.handler)  # the project's logging config does not propagate
    try:
        with caplog.at_level(logging.INFO, logger="resilient_http"):
            log_event(event)
    finally:
        ev.logger.removeHandler(caplog.handler)
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == "users GET /users/1 attempt 2/5: 200 in 4 ms"
    assert record.event == ev.CALL_SUCCEEDED
    assert record.outcome == "200"


def test_an_outage_logs_a_line_per_window_not_per_refusal(caplog, monkeypatch, clock):
    """1,000 refusals in 5 s: one line; the next window's first says how many it hid; the
    breaker closing tells the rest. Each is still an event (the metrics count them all)."""
    monkeypatch.setattr(ev, "REFUSALS", ev.QuietRefusals(window=10, clock=clock))
    refused = ev.make(ev.BREAKER_REJECTED, "users", method="GET", path="/users/1")
    ev.logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="resilient_http"):
            for _ in range(1000):
                log_event(refused)
                clock.advance(0.005)
            clock.advance(5.1)  # over 10 s since the first line
            for _ in range(3):
                log_event(refused)
            log_event(ev.make(ev.BREAKER_CLOSED, "users", cause="probe succeeded"))
    finally:
        ev.logger.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        refused.describe(),
        f"{refused.describe()} (999 more refused in the 10 s before)",
        "users breaker_rejected: 2 more refused",
        ev.make(ev.BREAKER_CLOSED, "users", cause="probe succeeded").describe(),
    ]


def test_the_testing_switch_forgets_the_refusals_an_earlier_test_made(caplog, monkeypatch, clock):
    """A user's test that asserts a refusal's line must not depend on the tests before it."""
    monkeypatch.setattr(ev, "REFUSALS", ev.QuietRefusals(window=10, clock=clock))
    refused = ev.make(ev.BREAKER_REJECTED, "users", method="GET", path="/users/1")
    ev.logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="resilient_http"):
            log_event(refused)  # an earlier test's
            set_testing(False)
            log_event(refused)  # this test's: its own line, at once
    finally:
        ev.logger.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records] == [refused.describe()] * 2
