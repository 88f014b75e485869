"""Reads of the Users service."""

from __future__ import annotations

from rest_framework.exceptions import NotFound

from users.models import User

#: Largest id the database column can hold: bigger ids cannot exist, so they are not found.
MAX_ID = 2**63 - 1


def user_get(*, user_id: int) -> User:
    if not 1 <= user_id <= MAX_ID:
        raise NotFound("User not found", code="user_not_found")
    try:
        return User.objects.get(pk=user_id)
    except User.DoesNotExist:
        raise NotFound("User not found", code="user_not_found") from None
