"""Writes of the Orders service."""

from __future__ import annotations

from typing import Any

from orders.idempotency import IdempotencyKeys, Stored, fingerprint
from orders.models import Order
from orders.users_client import user_find
from resilient_http import Deadline
from resilient_http.problems import ServiceProblem


class UnknownUser(ServiceProblem):
    status_code = 422
    default_code = "user_not_found"
    default_detail = "No such user: the Users service has no record of this user_id."


def order_user_check(*, user_id: int, deadline: Deadline | None = None) -> None:
    """Users must know the user; if Users cannot say, this raises (503/504/502)."""
    if user_find(user_id=user_id, deadline=deadline) is None:
        raise UnknownUser


def order_insert(*, user_id: int, product: str) -> dict[str, Any]:
    """The row, in the tutorial's JSON shape."""
    return Order.objects.create(user_id=user_id, product=product).as_json()


def order_create(
    *,
    user_id: int,
    product: str,
    deadline: Deadline | None = None,
    idempotency_key: str | None = None,
) -> Stored:
    """Create an order for a user Users knows; if Users cannot say, nothing is stored.

    The Users check raises before anything is written, so a failed create leaves no
    trace and can be retried. With a key, at most one order per key and body, in any
    process: the order and the key's stored 201 commit together.
    """

    def check() -> None:
        order_user_check(user_id=user_id, deadline=deadline)

    def insert(_: None) -> tuple[int, dict[str, Any]]:
        return 201, order_insert(user_id=user_id, product=product)

    if idempotency_key is None:
        check()
        return Stored(*insert(None), replayed=False)
    body_fingerprint = fingerprint({"user_id": user_id, "product": product})
    keys = IdempotencyKeys.from_settings()
    return keys.run_once(idempotency_key, body_fingerprint, check, insert)
