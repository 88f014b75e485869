"""RetryManager against mocked responses: what is retried, how long it waits, what it raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus

import pytest
import requests

from resilient_http import (
    DEADLINE_HEADER,
    CircuitOpen,
    Deadline,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from resilient_http import events as ev
from tests.conftest import URL, USER


def add(mocked, *statuses: int, method: str = "GET", **kwargs) -> None:
    for status in statuses:
        body = {"json": USER} if status == HTTPStatus.OK else {"json": {"detail": "x"}}
        mocked.add(method, URL, status=status, **body, **kwargs)


def test_502_502_200_succeeds_on_the_third_attempt(mocked, make_manager, clock):
    """Two gateway errors, then the user: three calls, the user, two sleeps."""
    add(mocked, 502, 502, 200)
    response = make_manager(retries=5, backoff_factor=1).get("/users/1")
    assert response.status == HTTPStatus.OK
    assert response.json() == USER
    assert len(mocked.calls) == 3
    assert [a.outcome for a in response.history] == ["502", "502", "200"]
    assert clock.sleeps == [0.0, 2.0]


def test_404_is_returned_not_retried(mocked, make_manager):
    """A 404 is an answer, not a failure: one call, the response handed back."""
    add(mocked, 404)
    response = make_manager(retries=5).get("/users/1")
    assert response.status == HTTPStatus.NOT_FOUND
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422])
def test_other_4xx_are_never_retried(mocked, make_manager, status):
    add(mocked, status)
    assert make_manager(retries=5).get("/users/1").status == status
    assert len(mocked.calls) == 1


def test_500_is_not_retried_and_is_unavailable(mocked, make_manager):
    """500 says "bug", not "try again": no retry, but still an honest 'unavailable'."""
    add(mocked, 500)
    with pytest.raises(UpstreamUnavailable):
        make_manager(retries=5).get("/users/1")
    assert len(mocked.calls) == 1


def test_the_tutorial_schedule_without_jitter(mocked, make_manager, clock):
    """retries=5, factor=1, no jitter: 6 attempts, sleeps 0, 2, 4, 8, 16 (the tutorial's table)."""
    add(mocked, *[502] * 6)
    manager = make_manager(retries=5, backoff_factor=1, backoff_max=120, deadline=60, breaker=False)
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.get("/users/1")
    assert len(mocked.calls) == 6
    assert clock.sleeps == [0, 2, 4, 8, 16]
    assert [a.outcome for a in caught.value.history] == ["502"] * 6
    assert caught.value.reason == "retries exhausted"


def test_full_jitter_draws_below_the_exponential_ceiling(mocked, make_manager, clock):
    """With jitter: sleep = random() x min(cap, factor x 2^(n-1)), here random() = 0.5."""
    add(mocked, *[503] * 5)
    manager = make_manager(
        retries=4,
        backoff_factor=1,
        backoff_max=3,
        backoff_jitter=True,
        deadline=60,
        random=lambda: 0.5,
    )
    with pytest.raises(UpstreamUnavailable):
        manager.get("/users/1")
    assert clock.sleeps == [0.5, 1.0, 1.5, 1.5]


def test_read_timeout_on_every_attempt_becomes_timeout(mocked, make_manager):
    for _ in range(3):
        mocked.add("GET", URL, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout) as caught:
        make_manager(retries=2).get("/users/1")
    assert [a.outcome for a in caught.value.history] == ["read_timeout"] * 3


def test_timeout_then_502_on_last_attempt_is_unavailable(mocked, make_manager):
    """The last attempt decides: a timeout followed by a 502 is 'unavailable', not 'timeout'."""
    mocked.add("GET", URL, body=requests.exceptions.ReadTimeout("slow"))
    add(mocked, 502)
    with pytest.raises(UpstreamUnavailable):
        make_manager(retries=1).get("/users/1")


def test_connect_timeout_is_a_timeout(mocked, make_manager):
    for _ in range(2):
        mocked.add("GET", URL, body=requests.exceptions.ConnectTimeout("no SYN-ACK"))
    with pytest.raises(UpstreamTimeout):
        make_manager(retries=1).get("/users/1")
    assert len(mocked.calls) == 2


def test_retry_after_seconds_is_honoured(mocked, make_manager, clock):
    add(mocked, 503, headers={"Retry-After": "2"})
    add(mocked, 200)
    assert make_manager(retries=3, deadline=5).get("/users/1").status == HTTPStatus.OK
    assert clock.sleeps == [2.0]


def test_retry_after_http_date_is_honoured(mocked, make_manager, clock):
    when = datetime.now(UTC) + timedelta(seconds=3)
    add(mocked, 429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    add(mocked, 200)
    assert make_manager(retries=3, deadline=10).get("/users/1").status == HTTPStatus.OK
    assert len(clock.sleeps) == 1
    assert 1.0 <= clock.sleeps[0] <= 3.0


def test_retry_after_beyond_the_deadline_fails_at_once_and_passes_it_on(
    mocked, make_manager, clock
):
    """Waiting 30 s inside a 5 s deadline is pointless: fail now, tell the caller when."""
    add(mocked, 503, headers={"Retry-After": "30"})
    with pytest.raises(UpstreamUnavailable) as caught:
        make_manager(retries=3, deadline=5).get("/users/1")
    assert caught.value.retry_after == 30
    assert clock.sleeps == []
    assert len(mocked.calls) == 1


def test_429_without_retry_after_is_not_retried(mocked, make_manager):
    add(mocked, 429)
    with pytest.raises(UpstreamUnavailable):
        make_manager(retries=3).get("/users/1")
    assert len(mocked.calls) == 1


def test_post_is_not_retried_on_5xx_without_an_idempotency_key(mocked, make_manager):
    add(mocked, 503, method="POST")
    with pytest.raises(UpstreamUnavailable):
        make_manager(retries=3).request("POST", "/users/1", json_body={"x": 1})
    assert len(mocked.calls) == 1


def test_post_with_an_idempotency_key_is_retried(mocked, make_manager):
    add(mocked, 503, 200, method="POST")
    response = make_manager(retries=3).request(
        "POST", "/users/1", json_body={"x": 1}, headers={"Idempotency-Key": "k-1"}
    )
    assert response.status == HTTPStatus.OK
    assert len(mocked.calls) == 2
    assert all(c.request.headers["Idempotency-Key"] == "k-1" for c in mocked.calls)


def test_post_read_timeout_is_not_retried_without_a_key(mocked, make_manager):
    """A read timeout means Users may have acted: repeating a POST could do it twice."""
    mocked.add("POST", URL, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        make_manager(retries=3).request("POST", "/users/1")
    assert len(mocked.calls) == 1


def test_time_left_is_sent_to_the_upstream_in_milliseconds(mocked, make_manager):
    add(mocked, 200)
    make_manager(deadline=2.5).get("/users/1")
    assert mocked.calls[0].request.headers[DEADLINE_HEADER] == "2500"


def test_a_callers_tighter_deadline_wins(mocked, make_manager, clock):
    add(mocked, 200)
    make_manager(deadline=5).get("/users/1", deadline=Deadline.after(0.75, clock))
    assert mocked.calls[0].request.headers[DEADLINE_HEADER] == "750"


def test_no_retry_starts_that_cannot_finish_before_the_deadline(mocked, make_manager, clock):
    """Each failed attempt takes 1 s of a 2.5 s deadline with 1 s backoff: 2 attempts, not 4."""

    def slow_502(request):
        clock.advance(1.0)
        return (502, {}, "")

    for _ in range(4):
        mocked.add_callback("GET", URL, callback=slow_502)
    manager = make_manager(retries=3, backoff_factor=0.5, deadline=2.5, breaker=False)
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.get("/users/1")
    assert len(caught.value.history) == 2
    assert "no time for another attempt" in caught.value.reason
    assert clock.now - 1_000.0 <= 2.5
    mocked.reset()  # the unused responses are the point of this test


def test_body_larger_than_the_cap_is_a_bad_response(mocked, make_manager):
    mocked.add("GET", URL, body=b"x" * 2048, status=200)
    with pytest.raises(UpstreamBadResponse):
        make_manager(max_body_bytes=1024).get("/users/1")
    assert len(mocked.calls) == 1


def test_every_attempt_is_one_event_with_the_facts(mocked, make_manager, events):
    add(mocked, 502, 200)
    make_manager(retries=2, backoff_factor=1).get("/users/1")
    names = [e.name for e in events]
    assert names == [ev.RETRY_SCHEDULED, ev.CALL_SUCCEEDED]
    first = events[0]
    assert (first.attempt, first.max_attempts, first.outcome, first.wait) == (1, 3, "502", 0.0)
    assert first.time_left == pytest.approx(5.0)


def test_budget_exhausted_fails_at_once_instead_of_retrying(mocked, make_manager, events):
    add(mocked, 502)
    manager = make_manager(retries=3, retry_budget=0.0, budget_min_retries_per_second=0.0)
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.get("/users/1")
    assert caught.value.reason == "retry budget exhausted"
    assert len(mocked.calls) == 1
    assert ev.BUDGET_EXHAUSTED in [e.name for e in events]


def test_open_breaker_rejects_without_calling(mocked, make_manager, clock):
    add(mocked, *[502] * 2)
    manager = make_manager(retries=0, breaker_consecutive_failures=2, breaker_reset=5)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            manager.get("/users/1")
    clock.advance(1.2)
    with pytest.raises(CircuitOpen) as caught:
        manager.get("/users/1")
    assert caught.value.retry_after == 4  # ceil(5 - 1.2)
    assert len(mocked.calls) == 2


def test_breaker_probe_after_reset_closes_it_on_success(mocked, make_manager, clock, events):
    add(mocked, 502, 502, 200, 200)
    manager = make_manager(retries=0, breaker_consecutive_failures=2, breaker_reset=5)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            manager.get("/users/1")
    clock.advance(5)
    assert manager.get("/users/1").status == HTTPStatus.OK
    assert manager.get("/users/1").status == HTTPStatus.OK
    transitions = [e.name for e in events if e.name.startswith("breaker_")]
    assert transitions == [ev.BREAKER_OPENED, ev.BREAKER_HALF_OPEN, ev.BREAKER_CLOSED]


def test_404_does_not_count_against_the_breaker(mocked, make_manager):
    add(mocked, *[404] * 6)
    manager = make_manager(retries=0, breaker_consecutive_failures=2)
    for _ in range(6):
        assert manager.get("/users/1").status == HTTPStatus.NOT_FOUND
    assert len(mocked.calls) == 6


def test_connection_refused_is_retried_for_any_method(make_manager, closed_port, clock):
    """A real closed port: the request never left, so even a POST is retried."""
    manager = make_manager(base_url=f"http://127.0.0.1:{closed_port}", retries=2, breaker=False)
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.request("POST", "/users/1")
    assert [a.outcome for a in caught.value.history] == ["connect_error"] * 3
    assert len(clock.sleeps) == 2


def test_a_call_saved_by_its_retries_is_a_success_for_the_breaker(mocked, make_manager):
    """Flakiness the retries absorb is not an outage: the breaker stays closed."""
    for _ in range(4):
        add(mocked, 502, 200)
    manager = make_manager(retries=1, breaker_consecutive_failures=2)
    for _ in range(4):
        assert manager.get("/users/1").status == HTTPStatus.OK
    assert manager.breaker.state.value == "closed"


def test_retries_stop_when_other_calls_open_the_breaker(mocked, make_manager, events):
    """While this call backs off, the breaker opens: its next retry is not sent (and would
    have succeeded: only the check after the sleep stops it)."""
    add(mocked, 502, 200)
    manager = make_manager(retries=3, backoff_factor=1, breaker_consecutive_failures=1)

    def others_fail(seconds: float) -> None:
        manager.breaker.record(success=False)  # another thread's call failed meanwhile

    manager._sleep = others_fail
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.get("/users/1")
    assert "circuit opened meanwhile" in caught.value.reason
    assert len(mocked.calls) == 1
    mocked.reset()  # the 200 is the retry that must not be sent


def test_a_retry_that_succeeds_refunds_the_budget(mocked, make_manager):
    add(mocked, 502, 200, 502, 200)
    manager = make_manager(retries=1, retry_budget=0.0, budget_min_retries_per_second=0.1)
    assert manager.get("/users/1").status == HTTPStatus.OK  # floor of 1 retry: used, refunded
    assert manager.get("/users/1").status == HTTPStatus.OK  # so the next call may retry too


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1500", 1.5),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("9" * 13, None),
    ],
)
def test_deadline_from_header(clock, value, seconds):
    deadline = Deadline.from_header(value, clock)
    assert (None if deadline is None else deadline.remaining()) == seconds


def test_a_callers_looser_deadline_is_clipped_to_the_configured_one(mocked, make_manager, clock):
    add(mocked, 200)
    make_manager(deadline=2).get("/users/1", deadline=Deadline.after(60, clock))
    assert mocked.calls[0].request.headers[DEADLINE_HEADER] == "2000"


def test_a_reset_connection_is_retried_and_unavailable(mocked, make_manager):
    for _ in range(3):
        mocked.add("GET", URL, body=requests.exceptions.ConnectionError("reset by peer"))
    with pytest.raises(UpstreamUnavailable) as caught:
        make_manager(retries=2).get("/users/1")
    assert [a.outcome for a in caught.value.history] == ["connection_reset"] * 3


def test_breaker_events_name_the_upstream_and_the_cause(mocked, make_manager, events):
    add(mocked, 502)
    manager = make_manager(retries=0, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamUnavailable):
        manager.get("/users/1")
    opened = next(e for e in events if e.name == ev.BREAKER_OPENED)
    assert (opened.upstream, opened.cause) == ("users", "1 consecutive failures")


@pytest.mark.parametrize("path", ["users/1", "@evil.test/x", "//evil.test/x", ""])
def test_a_path_that_could_leave_the_upstream_is_refused(make_manager, path):
    """Glued to the base URL, "@host/x" or "//host/x" would send the call elsewhere."""
    with pytest.raises(ValueError, match="single '/'"):
        make_manager().get(path)
