"""POST /orders/: validated, checked against Users, stored once per Idempotency-Key."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest
import requests

from orders.data import SEED_MAX_ID
from orders.models import IdempotencyRecord, Order
from tests.integration.conftest import outage

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "Idempotency-Key"


def post(client, body: object, key: str | None = None):
    headers = {KEY: key} if key else {}
    return client.post(
        "/orders/", json.dumps(body), content_type="application/json", headers=headers
    )


def problem_code(response) -> str:
    assert response["Content-Type"] == "application/problem+json"
    return response.json()["code"]


def test_creates_the_order_and_lists_it(users_upstream, orders_client):
    before = Order.objects.count()
    response = post(orders_client, {"user_id": 1, "product": "USB Cable"})
    assert response.status_code == HTTPStatus.CREATED
    created = response.json()
    assert created == {"id": created["id"], "user": 1, "product": "USB Cable"}
    assert created["id"] > SEED_MAX_ID
    assert Order.objects.count() == before + 1
    listed = orders_client.get("/orders/", {"user_id": 1}).json()["orders"]
    assert listed == [
        {"id": 1, "user": 1, "product": "Apple IPhone"},
        {"id": 3, "user": 1, "product": "Wireless Charger"},
        created,
    ]


def test_a_user_with_only_created_orders_lists_them_in_id_order(users_upstream, orders_client):
    ids = [post(orders_client, {"user_id": 2, "product": p}).json()["id"] for p in "ab"]
    listed = orders_client.get("/orders/", {"user_id": 2}).json()["orders"]
    assert [o["id"] for o in listed] == [2, 4, 5, 6, *ids]
    assert ids == sorted(ids)


def test_an_order_id_inside_the_seed_is_refused_by_the_database(db):
    """Should the id sequence ever go back (a flush, a restore), the database refuses a
    second order 7 instead of listing two."""
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        Order.objects.create(id=SEED_MAX_ID, user_id=1, product="collides")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 1}, "product"),
        ({"user_id": 1, "product": ""}, "product"),
        ({"user_id": 1, "product": "x" * 201}, "product"),
        ({"user_id": 1, "product": "a\x00b"}, "product"),  # found by Hypothesis
        ({"user_id": 1, "product": "\x85"}, "product"),  # whitespace to Python, not to ECMA
        ({"user_id": 1, "product": "Pen\n"}, "product"),
        ({"user_id": "one", "product": "x"}, "user_id"),
        ({"user_id": 0, "product": "x"}, "user_id"),
        ({"user_id": 2**40, "product": "x"}, "user_id"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_a_bad_body_is_400_naming_the_field_and_stores_nothing(orders_client, body, field, db):
    before = Order.objects.count()
    response = post(orders_client, body)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert field in [p["name"] for p in response.json()["invalid_params"]]
    assert Order.objects.count() == before


def test_malformed_json_is_400(orders_client, db):
    response = orders_client.post("/orders/", "{not json", content_type="application/json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert problem_code(response) == "parse_error"


def test_a_user_users_does_not_know_is_422(users_upstream, orders_client):
    before = Order.objects.count()
    response = post(orders_client, {"user_id": 3, "product": "x"})
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert problem_code(response) == "user_not_found"
    assert Order.objects.count() == before


def test_users_down_is_503_stores_nothing_and_frees_the_key(users_upstream, orders_client):
    users_upstream(retries=0, breaker=False)
    before = Order.objects.count()
    outage("error", "--status", "502")
    response = post(orders_client, {"user_id": 1, "product": "x"}, key="k-down")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "Retry-After" in response
    assert Order.objects.count() == before
    outage("clear")
    again = post(orders_client, {"user_id": 1, "product": "x"}, key="k-down")
    assert again.status_code == HTTPStatus.CREATED
    assert Order.objects.count() == before + 1


def test_same_key_same_body_replays_without_a_second_order(users_upstream, orders_client):
    before = Order.objects.count()
    first = post(orders_client, {"user_id": 1, "product": "Pen"}, key="k-1")
    second = post(orders_client, {"product": "Pen", "user_id": 1}, key="k-1")  # same, reordered
    assert first.status_code == second.status_code == HTTPStatus.CREATED
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Order.objects.count() == before + 1
    record = IdempotencyRecord.objects.get(key="k-1")
    assert (record.state, record.response_status) == ("completed", HTTPStatus.CREATED)
    assert record.response_body == first.json()


def test_same_key_other_body_is_422(users_upstream, orders_client):
    post(orders_client, {"user_id": 1, "product": "Pen"}, key="k-2")
    response = post(orders_client, {"user_id": 1, "product": "Ink"}, key="k-2")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert problem_code(response) == "idempotency_key_reused"


@pytest.mark.parametrize("key", ["x" * 256, "ключ", "tab\there"])
def test_a_malformed_key_is_400(orders_client, key, db):
    response = post(orders_client, {"user_id": 1, "product": "x"}, key=key)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert problem_code(response) == "invalid_idempotency_key"


def test_same_key_while_the_first_runs_is_409(users_upstream, live_server):
    users_upstream(read_timeout=2)  # Orders outwaits the slow Users
    outage("slow", "--delay", "0.6")
    url, body = f"{live_server.url}/orders/", {"user_id": 1, "product": "Slow"}
    first: list[requests.Response] = []
    runner = threading.Thread(
        target=lambda: first.append(requests.post(url, json=body, headers={KEY: "k-3"}, timeout=5))
    )
    runner.start()
    time.sleep(0.2)
    second = requests.post(url, json=body, headers={KEY: "k-3"}, timeout=5)
    runner.join()
    assert second.status_code == HTTPStatus.CONFLICT
    assert second.json()["code"] == "idempotency_key_in_use"
    assert first[0].status_code == HTTPStatus.CREATED


def test_50_concurrent_posts_with_one_key_create_exactly_one_order(users_upstream, live_server):
    before = Order.objects.count()
    url, body = f"{live_server.url}/orders/", {"user_id": 2, "product": "Once"}

    def send(_: int) -> requests.Response:
        # 50 connects at once overflow the test server's listen backlog; a client resends
        # after a reset, and with the same key that is exactly the safe retry this is for.
        for _attempt in range(10):
            try:
                return requests.post(url, json=body, headers={KEY: "k-50"}, timeout=10)
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("could not reach the server in 10 tries")

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(send, range(50)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {HTTPStatus.CREATED, HTTPStatus.CONFLICT}
    created = {r.json()["id"] for r in responses if r.status_code == HTTPStatus.CREATED}
    assert len(created) == 1
    assert Order.objects.count() == before + 1


def test_a_client_that_retries_after_a_timeout_creates_one_order(users_upstream, live_server):
    """The client gives up after 0.2 s while Orders still waits on a slow Users (0.6 s),
    then retries with the same key until it gets its answer: one order, not two."""
    users_upstream(read_timeout=2)  # Orders outwaits the slow Users; the client does not
    outage("slow", "--delay", "0.6")
    before = Order.objects.count()
    url, body = f"{live_server.url}/orders/", {"user_id": 1, "product": "Retried"}
    answer = None
    for _ in range(30):  # bounded: 30 tries, ~3 s at most
        try:
            answer = requests.post(url, json=body, headers={KEY: "k-retry"}, timeout=0.2)
        except requests.Timeout:
            continue
        if answer.status_code == HTTPStatus.CREATED:
            break
        time.sleep(0.1)  # 409 while the first is running
    assert answer is not None
    assert answer.status_code == HTTPStatus.CREATED
    assert Order.objects.count() == before + 1
