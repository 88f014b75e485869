"""Writes of the Orders service."""

from __future__ import annotations

from typing import Any

from orders.data import ORDERS
from orders.users_client import user_find
from project.problems import ServiceProblem
from project.resilience import Deadline


class UnknownUser(ServiceProblem):
    status_code = 422
    default_code = "user_not_found"
    default_detail = "No such user: the Users service has no record of this user_id."


def order_create(*, user_id: int, product: str, deadline: Deadline | None = None) -> dict[str, Any]:
    """Create an order for a user Users knows; if Users cannot say, nothing is stored.

    The Users check raises (503/504/502) before anything is written, so a failed create
    leaves no trace and can be retried.
    """
    if user_find(user_id=user_id, deadline=deadline) is None:
        raise UnknownUser
    return ORDERS.add(user_id=user_id, product=product)
