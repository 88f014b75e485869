"""Liveness and readiness: cheap, honest, and independent of Users."""

from __future__ import annotations

from http import HTTPStatus
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_ok(client, path):
    response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    assert response.json()["status"] == "ok"
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_503_problem_when_the_database_is_down(client):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError):
        response = client.get("/readyz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Content-Type"] == "application/problem+json"


def test_orders_is_ready_while_users_is_down(client, settings, closed_port):
    settings.UPSTREAMS = {
        "users": {**settings.UPSTREAMS["users"], "base_url": f"http://127.0.0.1:{closed_port}"}
    }
    assert client.get("/orders/", {"user_id": 1}).status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert client.get("/readyz").status_code == HTTPStatus.OK


def test_simulated_outages_never_touch_health(client):
    call_command("simulate_outage", "error", "--status", "503")
    assert client.get("/healthz").status_code == HTTPStatus.OK
    assert client.get("/readyz").status_code == HTTPStatus.OK


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_refuses_writes_with_a_problem(client, path):
    response = client.post(path)
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET, HEAD"
