"""``/orders/``: one view per method behind ``project.dispatch``, answering as one DRF view did.

The selector and the service are replaced by stand-ins that record their call: these tests
are about which view a request reaches and what it renders, not about Users.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client

from orders.idempotency import Stored
from orders.urls import OrdersEndpoint
from orders.views import OrderCreateApi, OrderListApi

pytestmark = pytest.mark.django_db

ALLOW = "GET, POST, HEAD, OPTIONS"
USER = {"id": 1, "name": "Aaron Apple", "phone": "99992222"}
ORDER = {"id": 8, "user": 1, "product": "Pen"}


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """``(which, kwargs)`` per selector/service call; each answers as the real one would,
    plus a key no response may show (``internal``)."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def order_list_for_user(**kwargs: Any) -> dict[str, Any]:
        seen.append(("list", kwargs))
        order = {**ORDER, "internal": "row 8"}
        return {"user": {**USER, "internal": "x"}, "orders": [order], "internal": True}

    def order_create(**kwargs: Any) -> Stored:
        seen.append(("create", kwargs))
        replayed = kwargs["idempotency_key"] == "r"
        return Stored(201, {**ORDER, "internal": "row 8"}, replayed=replayed)

    monkeypatch.setattr("orders.views.order_list_for_user", order_list_for_user)
    monkeypatch.setattr("orders.views.order_create", order_create)
    return seen


@pytest.fixture
def client() -> Client:
    """A browser-like client: CSRF enforced, as for a real caller with no token."""
    return Client(enforce_csrf_checks=True)


def problem(response) -> dict[str, Any]:
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


def test_get_reaches_the_list_view_and_renders_its_output_serializer(client, calls):
    response = client.get("/orders/", {"user_id": 1})
    assert response.status_code == HTTPStatus.OK
    assert [which for which, _ in calls] == ["list"]
    assert calls[0][1]["user_id"] == 1
    assert response.json() == {"user": USER, "orders": [ORDER]}  # no "internal", anywhere
    assert response["Allow"] == ALLOW


def test_the_user_stub_renders_as_the_id_alone(client, monkeypatch):
    stub = {"user": {"id": 3}, "orders": [{"id": 7, "user": 3, "product": "Book 3"}]}
    monkeypatch.setattr("orders.views.order_list_for_user", lambda **_: stub)
    assert client.get("/orders/", {"user_id": 3}).json() == stub


def test_post_reaches_the_create_view_and_renders_its_output_serializer(client, calls):
    """Also: no CSRF token and still no 403, as DRF's views are CSRF-exempt."""
    response = client.post(
        "/orders/", {"user_id": 1, "product": "Pen"}, content_type="application/json"
    )
    assert response.status_code == HTTPStatus.CREATED
    assert [which for which, _ in calls] == ["create"]
    assert calls[0][1]["product"] == "Pen"
    assert response.json() == ORDER
    assert "Idempotent-Replayed" not in response
    assert response["Allow"] == ALLOW


def test_a_replay_is_marked_and_rendered_the_same_way(client, calls):
    response = client.post(
        "/orders/",
        {"user_id": 1, "product": "Pen"},
        content_type="application/json",
        headers={"Idempotency-Key": "r"},
    )
    assert calls[0][1]["idempotency_key"] == "r"
    assert response.status_code == HTTPStatus.CREATED
    assert response["Idempotent-Replayed"] == "true"
    assert response.json() == ORDER


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE", "QUERY"])
def test_other_methods_are_drfs_405_problem_with_the_urls_allow(client, calls, method):
    response = client.generic(method, "/orders/", b"{}", content_type="application/json")
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == ALLOW
    assert problem(response) == {
        "type": "tag:resilient-django,2026:problem:method_not_allowed",
        "title": "Method Not Allowed",
        "status": 405,
        "detail": f'Method "{method}" not allowed.',
        "code": "method_not_allowed",
        "instance": "/orders/",
    }
    assert calls == []


def test_options_describes_the_url(client, calls):
    response = client.options("/orders/")
    assert response.status_code == HTTPStatus.OK
    assert response["Allow"] == ALLOW
    body = response.json()
    assert body["name"] == "Order List"
    assert body["description"].startswith("``GET /orders/?user_id=<id>``")
    assert body["renders"] == body["parses"] == ["application/json"]
    assert calls == []


def test_head_is_get_without_a_body(client, calls):
    response = client.head("/orders/", {"user_id": 1})
    assert response.status_code == HTTPStatus.OK
    assert response.content == b""
    rendered = json.dumps({"user": USER, "orders": [ORDER]}, separators=(",", ":"))
    assert int(response["Content-Length"]) == len(rendered)
    assert response["Allow"] == ALLOW
    assert [which for which, _ in calls] == ["list"]


def test_errors_of_either_view_keep_the_urls_allow(client, calls):
    bad_get = client.get("/orders/", {"user_id": "x"})
    bad_post = client.post("/orders/", b"{", content_type="application/json")
    for response in (bad_get, bad_post):
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert response["Allow"] == ALLOW
    assert problem(bad_get)["code"] == "invalid_request"
    assert problem(bad_post)["code"] == "parse_error"
    assert calls == []


def test_the_schema_reads_each_operation_from_its_own_view(client):
    """The preprocessing hook: both operations on /orders/, each from its view's schema."""
    schema = client.get("/api/schema/?format=json").json()
    operations = schema["paths"]["/orders/"]
    assert set(operations) == {"get", "post"}
    assert operations["get"]["operationId"] == "orders_for_user"
    assert operations["post"]["operationId"] == "order_create"
    assert {p["name"] for p in operations["get"]["parameters"]} >= {"user_id"}
    assert {p["name"] for p in operations["post"]["parameters"]} >= {"Idempotency-Key"}
    components = schema["components"]["schemas"]
    user = components["OrderUser"]
    assert user["required"] == ["id"]  # the stub: name and phone optional
    assert user["properties"] == components["User"]["properties"]  # Users' one shape
    assert components["User"]["required"] == ["id", "name", "phone"]


def test_the_dispatcher_names_one_view_per_method():
    assert OrdersEndpoint.views == {"GET": OrderListApi, "POST": OrderCreateApi}
    assert not hasattr(OrderListApi, "post")
    assert not hasattr(OrderCreateApi, "get")
