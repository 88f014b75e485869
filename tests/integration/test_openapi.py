"""The OpenAPI schema: valid, complete about errors, and served with its UI offline."""

from __future__ import annotations

from http import HTTPStatus

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/")
    assert response.status_code == HTTPStatus.OK
    return yaml.safe_load(response.content)


def test_schema_passes_drf_spectaculars_validation(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_orders_documents_every_status_and_its_problem_body(schema):
    responses = schema["paths"]["/orders/"]["get"]["responses"]
    assert set(responses) == {"200", "400", "404", "502", "503", "504"}
    for status in ("400", "404", "502", "503", "504"):
        assert PROBLEM in responses[status]["content"], status
    assert "Retry-After" in responses["503"]["headers"]
    assert "users_circuit_open" in responses["503"]["description"]


def test_users_documents_its_errors_and_the_deadline_header(schema):
    operation = schema["paths"]["/users/{user_id}"]["get"]
    assert {"200", "404", "503", "504"} <= set(operation["responses"])
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"X-Request-ID", "X-Request-Timeout-Ms"} <= headers


def test_the_problem_schema_has_the_rfc_9457_members(schema):
    problem = schema["components"]["schemas"]["Problem"]["properties"]
    assert {"type", "title", "status", "detail", "code", "instance"} <= set(problem)


def test_swagger_ui_is_served_from_local_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == HTTPStatus.OK
    assert b"drf_spectacular_sidecar/swagger-ui-dist" in response.content
    assert b"cdn.jsdelivr.net" not in response.content


def test_order_creation_documents_idempotency(schema):
    operation = schema["paths"]["/orders/"]["post"]
    assert {"201", "400", "409", "422", "502", "503", "504"} <= set(operation["responses"])
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in headers
    assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
