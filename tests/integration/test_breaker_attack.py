"""No caller can open Orders' breaker with a short deadline header; Users' own failures still do.

Over real HTTP: Orders' view, its Users client and the breaker, against the live Users
server (healthy) or the hostile raw-socket Users (never answers).
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

import pytest
from django.test import Client

from resilient_http import DEADLINE_HEADER
from resilient_http.registry import upstream
from tests.integration import hostile_server as hs

HEADER = f"HTTP_{DEADLINE_HEADER.upper().replace('-', '_')}"


def get_orders(client: Client, deadline_ms: int | None = None) -> tuple[int, str]:
    extra = {} if deadline_ms is None else {HEADER: str(deadline_ms)}
    response = client.get("/orders/", {"user_id": 1}, **extra)
    code = "" if response.status_code == HTTPStatus.OK else response.json()["code"]
    return response.status_code, code


@pytest.fixture
def hostile(settings) -> Iterator[hs.HostileUsers]:
    with hs.hostile_users() as server:
        server.mode = hs.never_answer
        settings.UPSTREAMS = {
            "users": {
                **settings.UPSTREAMS["users"],
                "base_url": server.url,
                "deadline": 0.3,
                "retries": 0,
                "breaker_consecutive_failures": 5,
                "breaker_reset": 30,
            }
        }
        yield server


@pytest.mark.django_db(transaction=True)
def test_five_one_ms_deadlines_do_not_cut_orders_off_from_users(users_upstream):
    """The attack from the issue: five requests with ``X-Request-Timeout-Ms: 1``."""
    users_upstream(breaker_consecutive_failures=5, breaker_reset=30)
    client = Client()
    for _ in range(10):
        assert get_orders(client, deadline_ms=1) == (HTTPStatus.GATEWAY_TIMEOUT, "users_timeout")
    assert upstream("users").breaker.state.value == "closed"
    assert get_orders(client) == (HTTPStatus.OK, "")


@pytest.mark.django_db
def test_calls_cut_by_the_callers_deadline_do_not_count(hostile):
    """Users never answers, but each call is cut by its caller's 100 ms, not USERS_DEADLINE."""
    client = Client()
    for _ in range(6):
        assert get_orders(client, deadline_ms=100) == (
            HTTPStatus.GATEWAY_TIMEOUT,
            "users_timeout",
        )
    assert upstream("users").breaker.state.value == "closed"


@pytest.mark.django_db
def test_calls_cut_by_users_slowness_under_the_configured_deadline_count(hostile):
    """The same Users, the calls cut by USERS_DEADLINE: five failures open the breaker."""
    client = Client()
    for _ in range(5):
        assert get_orders(client) == (HTTPStatus.GATEWAY_TIMEOUT, "users_timeout")
    assert upstream("users").breaker.state.value == "open"
    assert get_orders(client) == (HTTPStatus.SERVICE_UNAVAILABLE, "users_circuit_open")
