"""What a call's outcome says about the upstream: the breaker and the budget hear only that.

A caller controls its own deadline (``X-Request-Timeout-Ms``). A call that ended because
that deadline was tighter than the configured one says nothing about the upstream, so it
must not move state shared with every other caller.
"""

from __future__ import annotations

from http import HTTPStatus

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from resilient_http import (
    CircuitOpen,
    Deadline,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from resilient_http.transport import Request
from tests.conftest import BASE_URL, URL, USER


def slow(clock, seconds: float, status: int = 502):
    """A response that takes ``seconds`` of the fake clock."""

    def answer(request):
        clock.advance(seconds)
        return (status, {}, "{}")

    return answer


def test_five_one_ms_deadlines_do_not_open_the_breaker(mocked, make_manager, clock):
    """The attack: a caller's 1 ms deadline fails its own call, not everyone's."""
    mocked.add("GET", URL, json=USER)
    manager = make_manager(breaker_consecutive_failures=5)
    for _ in range(10):
        with pytest.raises(UpstreamTimeout) as caught:
            manager.get("/users/1", deadline=Deadline.after(0.001, clock))
        assert caught.value.callers_deadline
    assert manager.breaker.state.value == "closed"
    assert manager.get("/users/1").status == HTTPStatus.OK  # everyone else is still served


def test_a_call_out_of_the_configured_time_still_counts(mocked, make_manager, clock):
    """Users' own slowness under USERS_DEADLINE: the call counts, the breaker opens."""
    mocked.add_callback("GET", URL, callback=slow(clock, 0.3))
    manager = make_manager(deadline=0.32, retries=3, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.get("/users/1")
    assert "no time for another attempt" in caught.value.reason
    assert not caught.value.callers_deadline
    assert manager.breaker.state.value == "open"


def test_a_call_out_of_the_callers_time_is_not_counted(mocked, make_manager, clock):
    """The same call, its time cut by the caller instead: the breaker does not hear of it."""
    mocked.add_callback("GET", URL, callback=slow(clock, 0.3))
    manager = make_manager(deadline=5, retries=3, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.get("/users/1", deadline=Deadline.after(0.32, clock))
    assert caught.value.callers_deadline
    assert manager.breaker.state.value == "closed"


def test_retry_after_beyond_the_callers_time_is_not_counted(mocked, make_manager, clock):
    mocked.add("GET", URL, status=503, headers={"Retry-After": "2"}, json={})
    manager = make_manager(deadline=5, retries=3, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamUnavailable) as caught:
        manager.get("/users/1", deadline=Deadline.after(1, clock))
    assert caught.value.callers_deadline
    assert manager.breaker.state.value == "closed"


@pytest.mark.parametrize(
    ("caller", "counted"),
    [
        (None, True),  # the configured limits: Users was slow
        (4.0, True),  # the caller's deadline is tighter, but left the full read timeout
        (0.5, False),  # the read timeout was clipped to the caller's 0.5 s
    ],
)
def test_a_read_timeout_counts_unless_the_callers_deadline_shortened_it(
    mocked, make_manager, clock, caller, counted
):
    mocked.add("GET", URL, body=requests.exceptions.ReadTimeout("slow"))
    manager = make_manager(deadline=5, read_timeout=2, retries=0, breaker_consecutive_failures=1)
    deadline = None if caller is None else Deadline.after(caller, clock)
    with pytest.raises(UpstreamTimeout) as caught:
        manager.get("/users/1", deadline=deadline)
    assert caught.value.callers_deadline is not counted
    assert manager.breaker.state.value == ("open" if counted else "closed")


def test_a_connect_timeout_clipped_by_the_caller_is_not_counted(mocked, make_manager, clock):
    mocked.add("GET", URL, body=requests.exceptions.ConnectTimeout("no SYN-ACK"))
    manager = make_manager(connect_timeout=0.5, retries=0, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamTimeout):
        manager.get("/users/1", deadline=Deadline.after(0.2, clock))
    assert manager.breaker.state.value == "closed"


def test_a_neutral_probe_frees_the_half_open_place(mocked, make_manager, clock):
    """A caller with a 1 ms deadline takes the probe and gives it back at once."""
    mocked.add("GET", URL, status=502, json={})
    mocked.add("GET", URL, json=USER)
    manager = make_manager(retries=0, breaker_consecutive_failures=1, breaker_reset=5)
    with pytest.raises(UpstreamUnavailable):
        manager.get("/users/1")
    clock.advance(5)
    with pytest.raises(UpstreamTimeout):
        manager.get("/users/1", deadline=Deadline.after(0.001, clock))
    assert manager.breaker.state.value == "half_open"
    assert manager.get("/users/1").status == HTTPStatus.OK  # the next caller probes, now
    assert manager.breaker.state.value == "closed"


def test_hostile_callers_cannot_spend_the_retry_budget(mocked, make_manager, clock):
    """Short deadlines, with and without attempts sent: no retry is taken from the budget."""
    manager = make_manager(retries=3, retry_budget=0.0, budget_min_retries_per_second=0.1)
    before = manager.budget.available()
    for _ in range(5):
        with pytest.raises(UpstreamTimeout):
            manager.get("/users/1", deadline=Deadline.after(0.001, clock))
    for _ in range(5):
        mocked.add_callback("GET", URL, callback=slow(clock, 0.3))
        with pytest.raises(UpstreamUnavailable):
            manager.get("/users/1", deadline=Deadline.after(0.32, clock))
    assert manager.budget.available() == before
    mocked.add("GET", URL, status=502, json={})
    mocked.add("GET", URL, json=USER)
    assert manager.get("/users/1").status == HTTPStatus.OK  # an honest call still retries


def test_a_lower_case_idempotency_key_enables_retries(mocked, make_manager):
    """RFC 9110: header names are case-insensitive; ``idempotency-key`` is the same header."""
    mocked.add("POST", URL, status=503, json={})
    mocked.add("POST", URL, json=USER)
    response = make_manager(retries=3).request(
        "POST", "/users/1", json_body={"x": 1}, headers={"idempotency-key": "k-1"}
    )
    assert response.status == HTTPStatus.OK
    assert len(mocked.calls) == 2


def test_an_open_breaker_still_rejects_short_deadlines_at_once(mocked, make_manager, clock):
    mocked.add("GET", URL, status=502, json={})
    manager = make_manager(retries=0, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamUnavailable):
        manager.get("/users/1")
    with pytest.raises(CircuitOpen):
        manager.get("/users/1", deadline=Deadline.after(0.001, clock))


def test_an_attempt_whose_time_went_before_it_started_sends_nothing(mocked, make_manager, clock):
    """Checked with time to spare, then the thread waited for the CPU: no request, no
    ``ValueError`` from a zero timeout (which would be a 500), a timeout."""
    transport = make_manager().transport
    request = Request("GET", "/users/1", None, CaseInsensitiveDict())
    outcome = transport.send(request, transport.arm(0.0), Deadline.after(0, clock), BASE_URL)
    assert outcome.error == "deadline_exceeded"
    assert len(mocked.calls) == 0


def test_a_bad_answer_is_not_the_upstreams_failure(mocked, make_manager):
    """An unusable answer (over the body cap: a 502 to our caller) came from a server that
    answered: the breaker hears a success, or one bad payload would open it."""
    mocked.add("GET", URL, body=b"x" * 2048)
    manager = make_manager(max_body_bytes=1024, breaker_consecutive_failures=1)
    with pytest.raises(UpstreamBadResponse) as caught:
        manager.get("/users/1")
    assert (caught.value.upstream, caught.value.reason) == (
        "users",
        "unusable response: body_too_large",
    )
    assert caught.value.history
    assert manager.breaker.state.value == "closed"


def test_the_retry_after_our_caller_hears_is_the_upstreams_else_the_breakers(
    mocked, make_manager, clock
):
    """Retries exhausted on 503s, the last asking for 7 s: our caller is told 7 s. A call
    whose breaker opened meanwhile, Users having asked nothing: the time until the probe."""
    for _ in range(2):
        mocked.add("GET", URL, status=503, headers={"Retry-After": "1"}, json={})
    mocked.add("GET", URL, status=503, headers={"Retry-After": "7"}, json={})
    manager = make_manager(retries=2, deadline=30, breaker_consecutive_failures=2)
    with pytest.raises(UpstreamUnavailable) as asked:
        manager.get("/users/1")
    assert (asked.value.upstream, asked.value.retry_after) == ("users", 7.0)

    def others_fail_meanwhile(seconds: float) -> None:
        clock.sleep(seconds)
        for _ in range(2):
            manager.breaker.record(success=False)

    manager._sleep = others_fail_meanwhile
    mocked.add("GET", URL, status=502, json={})  # no Retry-After
    with pytest.raises(UpstreamUnavailable, match="opened meanwhile") as opened:
        manager.get("/users/1")
    assert opened.value.retry_after == manager.breaker.retry_after_header() > 0
