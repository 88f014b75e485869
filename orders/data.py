"""The tutorial's seven orders: a module-level list, as in the tutorial.

Orders created through ``POST /orders/`` are rows of ``orders.models.Order`` in the
database every Orders process shares; their ids start after ``SEED_MAX_ID``, so the two
never collide. Order 7 belongs to user 3, who has no Users record: GET then answers with
the user stub ``{"id": 3}``, as the tutorial does.
"""

from __future__ import annotations

from typing import Any

ORDERS: list[dict[str, Any]] = [
    {"id": 1, "user": 1, "product": "Apple IPhone"},
    {"id": 2, "user": 2, "product": "Macbook"},
    {"id": 3, "user": 1, "product": "Wireless Charger"},
    {"id": 4, "user": 2, "product": "Book 1"},
    {"id": 5, "user": 2, "product": "Book 2"},
    {"id": 6, "user": 2, "product": "Book 3"},
    {"id": 7, "user": 3, "product": "Book 3"},
]

#: Created orders get ids above this (see ``orders/migrations/0002_reserve_seed_ids.py``).
SEED_MAX_ID: int = max(order["id"] for order in ORDERS)


def seed_orders_for_user(*, user_id: int) -> list[dict[str, Any]]:
    """The user's tutorial orders, as fresh dicts (callers may serialise or change them)."""
    return [dict(order) for order in ORDERS if order["user"] == user_id]
