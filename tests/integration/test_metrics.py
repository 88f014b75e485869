"""Prometheus metrics: per view, and per upstream from the resilience events."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from prometheus_client import REGISTRY

from tests.integration.conftest import outage

pytestmark = pytest.mark.django_db(transaction=True)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_endpoint_serves_prometheus_text(client):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/plain")
    assert b"django_http_responses_total_by_status_view_method_total" in response.content


def test_upstream_attempts_retries_and_latency_are_counted(users_upstream, orders_client):
    users_upstream(retries=2, breaker=False)
    before = {
        "attempts": value("upstream_attempts_total", upstream="users", outcome="502"),
        "retries": value("upstream_retries_total", upstream="users"),
        "calls": value("upstream_call_duration_seconds_count", upstream="users", result="failure"),
    }
    outage("error", "--status", "502")
    assert orders_client.get("/orders/", {"user_id": 1}).status_code == 503
    assert (
        value("upstream_attempts_total", upstream="users", outcome="502") == before["attempts"] + 3
    )
    assert value("upstream_retries_total", upstream="users") == before["retries"] + 2
    assert (
        value("upstream_call_duration_seconds_count", upstream="users", result="failure")
        == before["calls"] + 1
    )


def test_breaker_state_and_transitions_are_exported(users_upstream, orders_client):
    users_upstream(retries=0, breaker_consecutive_failures=2, breaker_reset=30)
    opened = value("upstream_breaker_transitions_total", upstream="users", to="opened")
    outage("error")
    for _ in range(3):
        orders_client.get("/orders/", {"user_id": 1})
    assert value("upstream_breaker_state", upstream="users") == 2
    assert value("upstream_breaker_transitions_total", upstream="users", to="opened") == opened + 1
    assert value("upstream_breaker_rejections_total", upstream="users") >= 1


def test_simulated_errors_show_in_the_users_view_metrics(client):
    name = "django_http_responses_total_by_status_view_method_total"
    labels = {"status": "502", "view": "<unnamed view>", "method": "GET"}
    before = value(name, **labels)
    outage("error", "--status", "502")
    assert client.get("/users/1").status_code == 502
    assert value(name, **labels) == before + 1
