"""A slow Users against real processes: the bulkhead keeps Orders' threads for the requests
that do not need Users, and calls still in flight open the breaker.

Users is made slow with ``simulate_outage slow``, for longer than any test runs: the held
calls stay in flight until the stack is stopped. Verdicts are counts and codes, taken once
an observable state is reached (the fault has counted the held requests), never "within".
"""

from __future__ import annotations

import contextlib
import threading
from http import HTTPStatus

import pytest
import requests

from bench.stack import Stack, wait_until

pytestmark = pytest.mark.e2e

#: Orders waits this long for Users, and Users (slow) takes this long: longer than a test.
LONG = {"USERS_DEADLINE": "300", "USERS_READ_TIMEOUT": "300"}


def hold_calls(s: Stack, count: int) -> list[threading.Thread]:
    """``count`` Orders requests that Users holds; returns once Users has them all."""
    before = s.hits()

    def call() -> None:
        with contextlib.suppress(requests.RequestException):  # the stack stops under it
            requests.get(f"{s.orders.url}/orders/", params={"user_id": 1}, timeout=600)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    wait_until(lambda: s.hits() >= before + count, f"Users holding {count} calls", 60)
    return threads


def problem_code(response: requests.Response) -> str | None:
    return response.json().get("code") if response.status_code >= 400 else None


def test_the_bulkhead_refuses_calls_over_the_limit_and_the_rest_still_answers(stack):
    """gunicorn as ``make serve`` runs it (threads), 2 calls allowed to Users: two held
    calls fill it; every further Users-bound request is a 503 users_overloaded with
    Retry-After and nothing sent, while /healthz and a user without orders still answer."""
    s = stack(
        "gunicorn",
        GUNICORN_THREADS="8",
        USERS_MAX_CONCURRENCY="2",
        USERS_SLOW_CALL="0",  # this test is about the bulkhead alone
        **LONG,
    )
    s.manage("simulate_outage", "slow", "--delay", "600")
    held = hold_calls(s, 2)
    for _ in range(5):
        response, _ = s.get_orders(1)
        assert (response.status_code, problem_code(response)) == (503, "users_overloaded")
        assert response.headers["Retry-After"] == "1"
    assert s.hits() == 2  # the refused requests sent nothing
    assert s.session.get(f"{s.orders.url}/healthz", timeout=30).status_code == HTTPStatus.OK
    response, _ = s.get_orders(99)
    assert (response.status_code, problem_code(response)) == (404, "orders_not_found")
    assert all(thread.is_alive() for thread in held)  # still holding their places
    assert "users bulkhead_rejected" in s.orders.log()


def test_calls_still_in_flight_open_the_breaker(stack):
    """Two calls hang in Users; none has returned when the breaker opens on them. Probe
    requests carry a 100 ms deadline of their own (under USERS_SLOW_CALL), so they are
    never slow themselves: the in-flight calls alone open it."""
    s = stack(USERS_SLOW_CALL="0.5", USERS_BREAKER_MIN_CALLS="2", **LONG)
    s.manage("simulate_outage", "slow", "--delay", "600")
    held = hold_calls(s, 2)

    def probe() -> str | None:
        response = s.session.get(
            f"{s.orders.url}/orders/",
            params={"user_id": 1},
            headers={"X-Request-Timeout-Ms": "100"},
            timeout=30,
        )
        return problem_code(response)

    wait_until(lambda: probe() == "users_circuit_open", "the breaker open", 60)
    assert all(thread.is_alive() for thread in held)  # neither has returned
    assert "2 of the last 2 calls took over 0.5 s" in s.orders.log()
