"""End to end, real processes on loopback: what a user of the README sees."""

from __future__ import annotations

import threading
import time
from http import HTTPStatus
from itertools import pairwise

import pytest

pytestmark = pytest.mark.e2e


def test_both_services_answer_the_tutorials_json(stack):
    s = stack()
    response, _ = s.get_orders(1)
    assert response.status_code == HTTPStatus.OK
    assert response.json()["user"] == {"id": 1, "name": "Aaron Apple", "phone": "99992222"}
    assert s.session.get(f"{s.orders.url}/users/1", timeout=5).status_code == 404  # Orders only


def test_users_log_reproduces_the_tutorials_table(stack):
    """retries 5, no jitter: 6 requests in Users' log, gaps 0, 2f, 4f, 8f, 16f (f = 0.1 s).

    The breaker stays on: it counts the call, not its attempts, so the retries all go out."""
    s = stack(
        USERS_RETRIES="5",
        USERS_BACKOFF_FACTOR="0.1",
        USERS_BACKOFF_JITTER="0",
        USERS_DEADLINE="10",
    )
    s.manage("simulate_outage", "error", "--status", "502")
    response, _ = s.get_orders(1)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    seen = s.users.user_requests()
    assert [status for _, status in seen] == [502] * 6
    gaps = [(b - a).total_seconds() for (a, _), (b, _) in pairwise(seen)]
    for gap, expected in zip(gaps, [0, 0.2, 0.4, 0.8, 1.6], strict=True):
        assert expected - 0.02 <= gap <= expected + 0.15, gaps
    orders_log = s.orders.log()
    assert all(f"attempt {n}/6: 502" in orders_log for n in range(1, 7))
    assert "retry in 1.60 s" in orders_log


def test_breaker_opens_fails_fast_and_recovers_after_the_reset(stack):
    # 3 s open: the eight calls and ``hits()`` (a manage.py process, over 1 s on a loaded
    # machine) must fit in it before the next call checks that the breaker is still open.
    s = stack(USERS_RETRIES="0", USERS_BREAKER_RESET="3")
    s.manage("simulate_outage", "error", "--status", "502")
    codes = [s.get_orders(1)[0].json()["code"] for _ in range(8)]
    assert codes[:5] == ["users_unavailable"] * 5
    assert codes[5:] == ["users_circuit_open"] * 3
    hits_when_open = s.hits()
    response, elapsed = s.get_orders(1)
    assert response.json()["code"] == "users_circuit_open"
    assert 1 <= int(response.headers["Retry-After"]) <= 3
    assert elapsed < 0.2
    assert s.hits() == hits_when_open  # Users was not called

    s.manage("simulate_outage", "clear")
    cleared = time.monotonic()
    while s.get_orders(1)[0].status_code != HTTPStatus.OK:
        assert time.monotonic() - cleared <= 3 + 1, "not recovered within reset + 1 s"
        time.sleep(0.05)
    assert "breaker_closed" in s.orders.log() or "probe succeeded" in s.orders.log()


def test_users_killed_is_503_and_restarted_users_is_served_again(stack):
    s = stack(USERS_BREAKER_RESET="1")
    s.users.stop()
    response, elapsed = s.get_orders(1)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] in ("users_unavailable", "users_circuit_open")
    assert "Retry-After" in response.headers
    assert elapsed < 1.5 + 0.5  # at most the backoff ceilings 0.1 + 0.2 + 0.4 + 0.8 s
    s.users.start()
    restarted = time.monotonic()
    while s.get_orders(1)[0].status_code != HTTPStatus.OK:
        assert time.monotonic() - restarted <= 1 + 1
        time.sleep(0.05)


@pytest.mark.parametrize("breaker", ["1", "0"], ids=["breaker-and-budget", "budget-only"])
def test_hard_outage_with_16_callers_amplifies_at_most_1_25(stack, breaker):
    """Each caller loops for 3 s; Users' hit count over Orders' request count is the
    amplification. The floor of the retry budget is lowered so 3 s is 'sustained'."""
    s = stack(USERS_BREAKER=breaker, USERS_BUDGET_MIN_RETRIES_PER_SECOND="0.5")
    s.manage("simulate_outage", "error", "--status", "502")
    counts: list[int] = []
    stop_at = time.monotonic() + 3

    def caller() -> None:
        import requests

        n = 0
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                session.get(f"{s.orders.url}/orders/", params={"user_id": 1}, timeout=10)
                n += 1
        counts.append(n)

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    orders_requests, users_requests = sum(counts), s.hits()
    assert orders_requests > 100
    assert users_requests / orders_requests <= 1.25, (users_requests, orders_requests)
