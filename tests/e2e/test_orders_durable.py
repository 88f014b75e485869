"""An accepted order is never lost or duplicated: across processes, instances and crashes.

Real Orders processes on one database (SQLite by default, PostgreSQL with
``E2E_DATABASE_URL``, as ``make test-postgres`` runs them), real ``kill -9``. Keys and
products are unique per test, so a shared PostgreSQL database needs no cleaning.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest
import requests

from bench.stack import Service, Stack
from orders.data import SEED_MAX_ID

pytestmark = pytest.mark.e2e

KEY = "Idempotency-Key"
FRESH_SQLITE = not os.environ.get("E2E_DATABASE_URL")  # each stack starts from the template


def post(url: str, body: dict, key: str, timeout: float = 30) -> requests.Response:
    """POST, resending after a refused or reset connection (a full listen backlog): with
    the same key that is exactly the safe retry the key is for. Bounded: 20 tries."""
    for _ in range(20):
        try:
            return requests.post(f"{url}/orders/", json=body, headers={KEY: key}, timeout=timeout)
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError(f"could not reach {url} in 20 tries")


def listed(service: Service, user_id: int) -> list[dict]:
    response = requests.get(f"{service.url}/orders/", params={"user_id": user_id}, timeout=30)
    assert response.status_code == HTTPStatus.OK, response.text
    return response.json()["orders"]


def record(stack: Stack, key: str, expression: str = "r.state if r else None") -> str:
    """Read the key's record from another process, as an operator's shell would."""
    code = (
        "from datetime import timedelta; from orders.models import IdempotencyRecord as R; "
        f"r = R.objects.filter(key={key!r}).first(); print({expression})"
    )
    return stack.manage("shell", "-v0", "-c", code).strip()


def wait_for(predicate, what: str, timeout: float = 60) -> None:
    """Poll an observable state; the generous bound only turns a hang into a failure."""
    give_up = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < give_up, f"never saw {what}"
        time.sleep(0.1)


def test_one_key_over_two_instances_creates_one_order_that_both_list(stack):
    """50 concurrent POSTs with one key, alternately to a runserver and to a gunicorn with
    4 worker processes: one order, every answer that 201 or a 409, every process lists it."""
    s = stack()
    other = s.add_orders(server="gunicorn", GUNICORN_WORKERS="4", GUNICORN_THREADS="8")
    key, body = f"k-{uuid.uuid4()}", {"user_id": 2, "product": f"Once {uuid.uuid4()}"}
    urls = [s.orders.url, other.url] * 25

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda url: post(url, body, key), urls))

    statuses = {r.status_code for r in responses}
    assert statuses <= {HTTPStatus.CREATED, HTTPStatus.CONFLICT}, [r.text for r in responses]
    created = [r.json() for r in responses if r.status_code == HTTPStatus.CREATED]
    assert created, "no request created the order"
    assert all(c == created[0] for c in created)
    order = created[0]
    assert all(
        r.json()["code"] == "idempotency_key_in_use"
        for r in responses
        if r.status_code == HTTPStatus.CONFLICT
    )
    for service in (s.orders, *[other] * 8):  # gunicorn: 8 reads, whichever workers answer
        mine = [o for o in listed(service, 2) if o["product"] == body["product"]]
        assert mine == [order]
    for url in (s.orders.url, other.url):
        again = post(url, body, key)
        assert again.status_code == HTTPStatus.CREATED
        assert again.json() == order
        assert again.headers["Idempotent-Replayed"] == "true"


def test_kill_9_after_a_201_loses_nothing_and_the_key_replays(stack):
    s = stack()
    key, body = f"k-{uuid.uuid4()}", {"user_id": 1, "product": f"Durable {uuid.uuid4()}"}
    first = post(s.orders.url, body, key)
    assert first.status_code == HTTPStatus.CREATED
    order = first.json()
    if FRESH_SQLITE:
        assert order["id"] == SEED_MAX_ID + 1  # the first created id follows the tutorial's

    s.orders.kill()
    s.orders.start()

    assert order in listed(s.orders, 1)
    assert listed(s.orders, 1)[:2] == [
        {"id": 1, "user": 1, "product": "Apple IPhone"},
        {"id": 3, "user": 1, "product": "Wireless Charger"},
    ]
    again = post(s.orders.url, body, key)
    assert again.status_code == HTTPStatus.CREATED
    assert again.json() == order
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [o for o in listed(s.orders, 1) if o["product"] == body["product"]] == [order]


def test_a_request_killed_mid_way_blocks_its_key_only_until_the_lock_timeout(stack):
    """Orders is killed while its request waits on Users: the key's record stays in
    progress. A retry gets 409 while the claim is younger than the lock timeout (an hour
    here, so no timing decides it); once the claim is older (its ``locked_at`` moved back
    two hours, what the clock would show by then), the retry reclaims it: one order."""
    s = stack(IDEMPOTENCY_LOCK_TIMEOUT="3600", USERS_READ_TIMEOUT="60", USERS_DEADLINE="60")
    key, body = f"k-{uuid.uuid4()}", {"user_id": 1, "product": f"Crash {uuid.uuid4()}"}
    s.manage("simulate_outage", "slow", "--delay", "60")
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(post_once(s.orders.url, body, key))
        except requests.ConnectionError as exc:  # the process died under the request
            outcome.append(exc)

    in_flight = threading.Thread(target=send)
    in_flight.start()
    wait_for(lambda: record(s, key) == "in_progress", "the request's in-progress record")

    s.orders.kill()
    in_flight.join(timeout=60)
    assert len(outcome) == 1
    assert isinstance(outcome[0], requests.ConnectionError)
    s.manage("simulate_outage", "clear")
    s.orders.start()

    blocked = post(s.orders.url, body, key)
    assert blocked.status_code == HTTPStatus.CONFLICT
    assert blocked.json()["code"] == "idempotency_key_in_use"
    assert not [o for o in listed(s.orders, 1) if o["product"] == body["product"]]

    moved = record(
        s, key, "R.objects.filter(pk=r.pk).update(locked_at=r.locked_at - timedelta(hours=2))"
    )
    assert moved == "1"
    retried = post(s.orders.url, body, key)
    assert retried.status_code == HTTPStatus.CREATED
    assert "Idempotent-Replayed" not in retried.headers
    assert [o for o in listed(s.orders, 1) if o["product"] == body["product"]] == [retried.json()]
    assert post(s.orders.url, body, key).headers["Idempotent-Replayed"] == "true"


def post_once(url: str, body: dict, key: str) -> requests.Response:
    return requests.post(f"{url}/orders/", json=body, headers={KEY: key}, timeout=120)
