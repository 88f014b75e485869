"""The Orders service's in-memory orders: the tutorial's, plus those created by POST.

In memory as in the tutorial, so per process: with several Orders processes each has its
own list (a real service would use its database). Order 7 belongs to user 3, who has no
Users record: GET then answers with the user stub ``{"id": 3}``, as the tutorial does.
"""

from __future__ import annotations

import threading
from typing import Any

SEED: tuple[tuple[int, int, str], ...] = (
    (1, 1, "Apple IPhone"),
    (2, 2, "Macbook"),
    (3, 1, "Wireless Charger"),
    (4, 2, "Book 1"),
    (5, 2, "Book 2"),
    (6, 2, "Book 3"),
    (7, 3, "Book 3"),
)


class OrderStore:
    """A list of orders behind a lock: appends are atomic, ids never repeat."""

    def __init__(self, seed: tuple[tuple[int, int, str], ...] = SEED) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to the seed (tests)."""
        with self._lock:
            self._orders = [{"id": i, "user": u, "product": p} for i, u, p in self._seed]

    def for_user(self, user_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(order) for order in self._orders if order["user"] == user_id]

    def add(self, *, user_id: int, product: str) -> dict[str, Any]:
        with self._lock:
            order = {"id": self._orders[-1]["id"] + 1, "user": user_id, "product": product}
            self._orders.append(order)
            return dict(order)

    def count(self) -> int:
        with self._lock:
            return len(self._orders)


ORDERS = OrderStore()


def orders_for_user(*, user_id: int) -> list[dict[str, Any]]:
    """The user's orders, as fresh dicts (callers may serialise or change them)."""
    return ORDERS.for_user(user_id)
