"""The Orders service's in-memory orders list: the tutorial's, read-only here.

Order 7 belongs to user 3, who has no Users record: Orders then answers with the user
stub ``{"id": 3}``, as the tutorial does on a Users 404.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

ORDERS: tuple[MappingProxyType[str, Any], ...] = tuple(
    MappingProxyType({"id": pk, "user": user, "product": product})
    for pk, user, product in [
        (1, 1, "Apple IPhone"),
        (2, 2, "Macbook"),
        (3, 1, "Wireless Charger"),
        (4, 2, "Book 1"),
        (5, 2, "Book 2"),
        (6, 2, "Book 3"),
        (7, 3, "Book 3"),
    ]
)


def orders_for_user(*, user_id: int) -> list[dict[str, Any]]:
    """The user's orders, as fresh dicts (callers may serialise or change them)."""
    return [dict(order) for order in ORDERS if order["user"] == user_id]
