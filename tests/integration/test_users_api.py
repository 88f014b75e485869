"""The Users API contract, and what simulated outages may and may not touch."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from django.core.management import call_command

from resilient_http import DEADLINE_HEADER

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/users/1", "/users/1/"])
def test_get_user_with_or_without_slash(client, path):
    response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"id": 1, "name": "Aaron Apple", "phone": "99992222"}


@pytest.mark.parametrize("user_id", ["99", "0", "9" * 25])
def test_unknown_user_is_404_problem(client, user_id):
    response = client.get(f"/users/{user_id}")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["detail"] == "User not found"
    assert body["code"] == "user_not_found"


@pytest.mark.parametrize("path", ["/users/abc", "/nope", "/users/"])
def test_unknown_urls_are_404_problems_not_html(client, path):
    response = client.get(path)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == "application/problem+json"


def test_a_caller_already_out_of_time_gets_504_without_work(client):
    response = client.get("/users/1", headers={DEADLINE_HEADER: "0"})
    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT
    assert json.loads(response.content)["code"] == "deadline_exceeded"


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "9" * 40])
def test_an_unreadable_time_left_header_is_ignored(client, value):
    assert client.get("/users/1", headers={DEADLINE_HEADER: value}).status_code == HTTPStatus.OK


def test_simulated_errors_hit_the_users_api_only(client):
    call_command("simulate_outage", "error", "--status", "503", "--retry-after", "7")
    response = client.get("/users/1")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == "7"
    assert json.loads(response.content)["code"] == "simulated_outage"
    assert client.get("/admin/login/").status_code == HTTPStatus.OK


def test_simulation_switched_off_ignores_a_stored_fault(client, settings):
    call_command("simulate_outage", "error")
    settings.OUTAGE_SIMULATION = False
    assert client.get("/users/1").status_code == HTTPStatus.OK


def test_no_request_header_can_trigger_a_fault(client):
    for header in ("X-Simulate-Outage", "X-Fault", "X-Outage"):
        assert client.get("/users/1", headers={header: "error"}).status_code == HTTPStatus.OK


def test_flaky_rate_hits_about_that_fraction(client):
    call_command("simulate_outage", "error", "--rate", "0.3")
    statuses = [client.get("/users/1").status_code for _ in range(300)]
    failed = statuses.count(HTTPStatus.BAD_GATEWAY)
    assert 50 <= failed <= 130  # 90 expected; far outside 5 sigma either way
    assert statuses.count(HTTPStatus.OK) == 300 - failed


def test_drip_sends_the_same_user_in_pieces(client):
    call_command("simulate_outage", "drip", "--interval", "0.001")
    response = client.get("/users/1")
    assert response.streaming
    pieces = list(response.streaming_content)
    assert len(pieces) > 5
    assert json.loads(b"".join(pieces)) == {"id": 1, "name": "Aaron Apple", "phone": "99992222"}


def test_a_new_user_after_the_seed_gets_a_fresh_id():
    """The seed inserts ids 1 and 2; PostgreSQL's sequence must have moved past them."""
    from users.models import User

    assert User.objects.create(name="Cecil Cherry", phone="99994444").pk > 2
