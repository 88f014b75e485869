"""Every row of the outcome table, over real HTTP: Orders -> live Users server.

Users misbehaves through ``simulate_outage`` (run with ``call_command``), never a mock.
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus

import pytest
import requests

from resilient_http import DEADLINE_HEADER
from resilient_http.registry import upstream
from tests.integration.conftest import outage

pytestmark = pytest.mark.django_db(transaction=True)

TUTORIAL_ANSWER = {
    "user": {"id": 1, "name": "Aaron Apple", "phone": "99992222"},
    "orders": [
        {"id": 1, "user": 1, "product": "Apple IPhone"},
        {"id": 3, "user": 1, "product": "Wireless Charger"},
    ],
}


def get_orders(client, user_id: object = 1):
    started = time.monotonic()
    response = client.get("/orders/", {"user_id": user_id})
    return response, time.monotonic() - started


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    return body


def test_200_with_the_user_is_the_tutorials_answer(users_upstream, orders_client):
    response, _ = get_orders(orders_client, 1)
    assert response.status_code == HTTPStatus.OK
    assert response.json() == TUTORIAL_ANSWER


def test_a_database_that_refuses_is_a_503_problem_not_a_500(orders_client, monkeypatch, caplog):
    """What PostgreSQL answers when every connection slot is taken (CI's benchmarks once
    ran into it): an honest, retryable 503 and one log line, like an upstream's refusal."""
    from django.db import OperationalError

    def refused(**_):
        raise OperationalError("connection failed: FATAL:  sorry, too many clients already\n")

    monkeypatch.setattr("orders.views.order_list_for_user", refused)
    logger = logging.getLogger("resilient_http.problems")  # app loggers do not propagate to root
    logger.addHandler(caplog.handler)
    try:
        response, _ = get_orders(orders_client, 1)
    finally:
        logger.removeHandler(caplog.handler)
    body = assert_problem(response, 503, "database_unavailable")
    assert "too many clients" not in body["detail"]  # the database's words stay in the log
    assert int(response["Retry-After"]) >= 1
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable: connection failed: FATAL:  sorry, too many clients already"
    ]


def test_users_404_gives_the_user_stub(users_upstream, orders_client):
    """User 3 has an order but no Users record: the tutorial's ``{"id": 3}`` stub."""
    response, _ = get_orders(orders_client, 3)
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "user": {"id": 3},
        "orders": [{"id": 7, "user": 3, "product": "Book 3"}],
    }


def test_timeout_on_the_last_attempt_is_504(users_upstream, orders_client):
    users_upstream(read_timeout=0.2, retries=1)
    outage("slow", "--delay", "1")
    response, elapsed = get_orders(orders_client)
    assert_problem(response, 504, "users_timeout")
    assert elapsed < 1.5


def test_5xx_after_retries_is_503_with_retry_after(users_upstream, orders_client):
    users_upstream(retries=2, breaker=False)
    outage("error", "--status", "502")
    response, _ = get_orders(orders_client)
    assert_problem(response, 503, "users_unavailable")
    assert int(response["Retry-After"]) >= 1
    assert outage("status").hits == 3  # 1 request + 2 retries, as configured


def test_connection_refused_is_503(settings, orders_client, closed_port):
    settings.UPSTREAMS = {
        "users": {
            **settings.UPSTREAMS["users"],
            "base_url": f"http://127.0.0.1:{closed_port}",
            "backoff_factor": 0.01,
        }
    }
    response, elapsed = get_orders(orders_client)
    assert_problem(response, 503, "users_unavailable")
    assert "Retry-After" in response
    assert elapsed < 1


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"this is not json"),
        ("application/json", b'{"id": 1, "nom": "wrong shape"}'),
        ("application/json", b'{"id": 2, "name": "Bobby Brown", "phone": "99993333"}'),
        ("application/json", b"[1, 2, 3]"),
        ("text/html", b'{"id": 1, "name": "Aaron Apple", "phone": "99992222"}'),
    ],
    ids=["not-json", "wrong-shape", "wrong-user", "a-list", "wrong-content-type"],
)
def test_200_that_is_not_a_user_is_502(canned_users, orders_client, content_type, body):
    canned_users(content_type=content_type, body=body)
    response, _ = get_orders(orders_client)
    assert_problem(response, 502, "users_bad_response")


def test_a_redirect_is_not_followed(canned_users, orders_client):
    canned_users(status=302, location="http://example.com/users/1")
    response, _ = get_orders(orders_client)
    assert_problem(response, 502, "users_bad_response")


def test_a_body_over_the_cap_is_502(canned_users, orders_client, settings):
    canned_users(body=b'{"id": 1, "name": "' + b"a" * 4096 + b'", "phone": "1"}')
    settings.UPSTREAMS = {"users": {**settings.UPSTREAMS["users"], "max_body_bytes": 1024}}
    response, _ = get_orders(orders_client)
    assert_problem(response, 502, "users_bad_response")


def test_fail_next_within_the_retries_heals_to_200(users_upstream, orders_client):
    """fail-next 2 with 2 retries: the third attempt gets the user; Users saw 2 failures."""
    users_upstream(retries=2)
    outage("fail-next", "2")
    response, _ = get_orders(orders_client)
    assert response.status_code == HTTPStatus.OK
    assert response.json() == TUTORIAL_ANSWER
    assert outage("status").remaining == 0


def test_fail_next_beyond_the_retries_is_503(users_upstream, orders_client):
    """fail-next 3 with 2 retries: one failure too many, and one left over for the next call."""
    users_upstream(retries=2, breaker=False)
    outage("fail-next", "3")
    response, _ = get_orders(orders_client)
    assert_problem(response, 503, "users_unavailable")
    assert outage("status").remaining == 0
    response, _ = get_orders(orders_client)
    assert response.status_code == HTTPStatus.OK


def test_retry_after_longer_than_the_deadline_fails_fast_and_is_passed_on(
    users_upstream, orders_client
):
    users_upstream(retries=3, deadline=2)
    outage("error", "--status", "503", "--retry-after", "30")
    response, elapsed = get_orders(orders_client)
    assert_problem(response, 503, "users_unavailable")
    assert response["Retry-After"] == "30"
    assert elapsed < 0.5
    assert outage("status").hits == 1


def test_retry_after_within_the_deadline_is_waited_for(users_upstream, orders_client):
    """Users' ``Retry-After: 1`` is the wait before the retry (recorded, not slept)."""
    users_upstream(retries=1, deadline=3)
    waits: list[float] = []
    upstream("users")._sleep = waits.append  # the injected sleep: no real second in the suite
    outage("fail-next", "1", "--status", "503", "--retry-after", "1")
    response, _ = get_orders(orders_client)
    assert response.status_code == HTTPStatus.OK
    assert waits == [1.0]
    assert outage("status").hits == 1


def test_open_breaker_answers_at_once_without_calling_users(users_upstream, orders_client):
    users_upstream(retries=0, breaker_consecutive_failures=2, breaker_reset=30)
    outage("error", "--status", "502")
    for _ in range(2):
        assert_problem(get_orders(orders_client)[0], 503, "users_unavailable")
    response, elapsed = get_orders(orders_client)
    assert_problem(response, 503, "users_circuit_open")
    assert 1 <= int(response["Retry-After"]) <= 30
    assert outage("status").hits == 2  # the proof that Users was not called
    assert elapsed < 0.5  # at once: no attempt, no backoff (loose, for a busy machine)


def test_dripping_body_is_cut_off_at_the_deadline(users_upstream, orders_client):
    users_upstream(deadline=0.8, read_timeout=0.5)
    outage("drip", "--interval", "0.1")
    response, elapsed = get_orders(orders_client)
    assert_problem(response, 504, "users_timeout")
    assert elapsed < 0.8 + 0.25


def test_slow_users_stops_when_the_caller_gives_up(live_server, tutorial_users):
    """Users reads the caller's time left: a 5 s simulated delay ends after 0.3 s."""
    outage("slow", "--delay", "5")
    started = time.monotonic()
    response = requests.get(
        f"{live_server.url}/users/1", headers={DEADLINE_HEADER: "300"}, timeout=5
    )
    elapsed = time.monotonic() - started
    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT
    assert response.json()["code"] == "deadline_exceeded"
    assert 0.3 <= elapsed < 1.0


@pytest.mark.parametrize(
    "user_id",
    ["", "abc", "1.5", "0", "-1", "99999999999999999999999", "1e3", " "],
)
def test_bad_user_id_is_400_naming_the_parameter(orders_client, user_id, db):
    response, _ = get_orders(orders_client, user_id)
    body = assert_problem(response, 400, "invalid_request")
    assert body["invalid_params"][0]["name"] == "user_id"
    assert "user_id" in body["detail"]


def test_missing_user_id_is_400(orders_client, db):
    response = orders_client.get("/orders/")
    body = assert_problem(response, 400, "invalid_request")
    assert body["invalid_params"] == [{"name": "user_id", "reason": "This field is required."}]


def test_user_without_orders_is_404_without_calling_users(orders_client, settings, closed_port, db):
    settings.UPSTREAMS = {
        "users": {**settings.UPSTREAMS["users"], "base_url": f"http://127.0.0.1:{closed_port}"}
    }
    response, _ = get_orders(orders_client, 9)
    body = assert_problem(response, 404, "orders_not_found")
    assert body["detail"] == "No orders found for this user ID"


def test_orders_callers_time_left_bounds_the_users_call(users_upstream, orders_client):
    """A caller with 0.4 s left gets its answer in about 0.4 s, not after the 3 s deadline."""
    users_upstream(deadline=3, read_timeout=2, retries=3)
    outage("slow", "--delay", "5")
    started = time.monotonic()
    response = orders_client.get("/orders/", {"user_id": 1}, headers={DEADLINE_HEADER: "400"})
    elapsed = time.monotonic() - started
    assert_problem(response, 504, "users_timeout")
    assert elapsed < 0.4 + 0.25


def test_a_404_page_that_is_not_the_api_is_502_not_a_stub(canned_users, orders_client):
    """A wrong host or route answers 404 in HTML: a misconfiguration, not "no such user"."""
    canned_users(status=404, content_type="text/html", body=b"<h1>Not Found</h1>")
    response, _ = get_orders(orders_client, 3)
    assert_problem(response, 502, "users_bad_response")


def test_a_json_404_from_the_api_is_the_stub(canned_users, orders_client):
    canned_users(status=404, content_type="application/problem+json", body=b'{"status": 404}')
    response, _ = get_orders(orders_client, 3)
    assert response.status_code == HTTPStatus.OK
    assert response.json()["user"] == {"id": 3}
