"""Reads of the Orders service."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound

from orders.data import seed_orders_for_user
from orders.models import Order
from orders.users_client import user_get
from resilient_http import Deadline


def orders_for_user(*, user_id: int) -> list[dict[str, Any]]:
    """The tutorial's orders and those created through the API, in id order.

    Created ids are all above the seed's, so the seed comes first; sorted anyway, so the
    order is the ids' whatever the lists hold."""
    created = [order.as_json() for order in Order.objects.filter(user_id=user_id)]
    return sorted(seed_orders_for_user(user_id=user_id) + created, key=lambda o: o["id"])


def order_list_for_user(*, user_id: int, deadline: Deadline | None = None) -> dict[str, Any]:
    """The tutorial's answer: ``{"user": {...}, "orders": [...]}``.

    Orders are looked up first: a user with none is a 404 without calling Users at all.
    """
    orders = orders_for_user(user_id=user_id)
    if not orders:
        raise NotFound("No orders found for this user ID", code="orders_not_found")
    return {"user": user_get(user_id=user_id, deadline=deadline), "orders": orders}
