"""Admin: login required; users listed; the simulated outage shown and ended."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.core.management import call_command

from users.models import Outage

pytestmark = pytest.mark.django_db


def test_admin_requires_login(client):
    response = client.get("/admin/users/user/")
    assert response.status_code == HTTPStatus.FOUND
    assert "/admin/login/" in response["Location"]


def test_users_are_listed(admin_client):
    response = admin_client.get("/admin/users/user/")
    assert response.status_code == HTTPStatus.OK
    assert b"Aaron Apple" in response.content


def test_the_active_outage_is_shown_and_can_be_ended(admin_client):
    call_command("simulate_outage", "error", "--status", "503", "--for", "60")
    page = admin_client.get("/admin/users/outage/")
    assert b"error 503" in page.content
    response = admin_client.post(
        "/admin/users/outage/",
        {"action": "end_outage", "_selected_action": [Outage.SINGLETON]},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert not Outage.objects.exists()


def test_faults_cannot_be_added_or_edited_by_hand(admin_client):
    call_command("simulate_outage", "error")
    assert admin_client.get("/admin/users/outage/add/").status_code == HTTPStatus.FORBIDDEN
    response = admin_client.post(
        f"/admin/users/outage/{Outage.SINGLETON}/change/", {"status": "200"}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert Outage.objects.get().status == 502


def test_created_orders_and_keys_are_listed_read_only(admin_client):
    from orders.models import IdempotencyRecord, Order

    order = Order.objects.create(user_id=1, product="Admin Pen")
    page = admin_client.get("/admin/orders/order/")
    assert page.status_code == HTTPStatus.OK
    assert b"Admin Pen" in page.content
    assert admin_client.get("/admin/orders/order/add/").status_code == HTTPStatus.FORBIDDEN
    assert admin_client.get("/admin/orders/idempotencyrecord/").status_code == HTTPStatus.OK
    response = admin_client.post(f"/admin/orders/order/{order.pk}/change/", {"product": "x"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not IdempotencyRecord.objects.exists()


def test_the_admin_index_names_each_thing_once(admin_client):
    """Shop users (the Users API's) and login accounts (contrib.auth) are not both "Users"."""
    page = admin_client.get("/admin/").content.decode()
    assert page.count(">Users</a>") == 1  # contrib.auth's accounts
    assert ">Shop users</a>" in page
    assert ">Simulated outages</a>" in page
