"""Hostile and malformed input: no 500 for any input, and every error is problem+json.

schemathesis generates requests from each service's own OpenAPI schema (valid and
invalid ones); Hypothesis throws arbitrary strings at the query and the path.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from project.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """What Django's test client does around each request, for schemathesis' direct WSGI
    calls: without it, request_started/finished close the connection the test's transaction runs
    in (a no-op on SQLite's in-memory database, a closed connection on PostgreSQL)."""
    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (signals.request_started, signals.request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def users_refused(settings, closed_port, db, keep_test_connection) -> None:
    """Orders' Users calls are refused at once: outcomes do not depend on Users here."""
    settings.UPSTREAMS = {
        "users": {
            **settings.UPSTREAMS["users"],
            "base_url": f"http://127.0.0.1:{closed_port}",
            "retries": 0,
        }
    }


def assert_honest(status: int, content_type: str, body: bytes) -> None:
    assert status < 500 or status in (502, 503, 504), (status, body[:300])
    if status >= 400:
        assert content_type.startswith("application/problem+json"), (status, content_type)
        assert b"Traceback" not in body


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_schema_driven_requests_never_500(case, users_refused):
    response = case.call()
    content_type = next(
        (v[0] for k, v in response.headers.items() if k.lower() == "content-type"), ""
    )
    assert_honest(response.status_code, content_type, response.content)
    # 502/503/504 are documented, honest answers about Users; assert_honest forbids 500.
    case.validate_response(response, excluded_checks=[not_a_server_error])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(max_size=300))
def test_any_user_id_query_is_answered_honestly(client, users_refused, value):
    response = client.get(f"/orders/?user_id={quote(value)}")
    assert_honest(response.status_code, response["Content-Type"], response.content)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(min_size=1, max_size=100))
def test_any_users_path_is_answered_honestly(client, users_refused, value):
    response = client.get(f"/users/{quote(value, safe='')}")
    assert_honest(response.status_code, response["Content-Type"], response.content)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=500), key=st.one_of(st.none(), st.text(max_size=300)))
def test_any_order_body_and_key_are_answered_honestly(client, users_refused, body, key):
    headers = {} if key is None else {"Idempotency-Key": quote(key)}
    response = client.post("/orders/", body, content_type="application/json", headers=headers)
    assert_honest(response.status_code, response["Content-Type"], response.content)


def test_a_bug_is_a_500_problem_that_leaks_nothing(client, users_refused, monkeypatch, settings):
    """With DEBUG off, a real bug answers 500 problem+json: no traceback, no settings."""
    assert settings.DEBUG is False

    def broken(**kwargs: object) -> None:
        raise RuntimeError(f"bug near {settings.SECRET_KEY}")

    monkeypatch.setattr("orders.views.order_list_for_user", broken)
    client.raise_request_exception = False
    response = client.get("/orders/", {"user_id": 1})
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    for leak in (b"Traceback", b"RuntimeError", settings.SECRET_KEY.encode(), b"bug near"):
        assert leak not in response.content
