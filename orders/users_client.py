"""What Orders asks of Users: a user, or ``None`` when Users has no such user.

The resilience (deadline, retries, breaker, bulkhead, ...) is ``upstream("users")``'s; a
failed call raises its ``resilient_http`` error, which ``resilient_http.problems`` answers
(503/504/502). What is left here is Users' contract, Orders' own copy of it (``orders.contracts``):
which answers are a user.
"""

from __future__ import annotations

from typing import Any

from orders.contracts import UserAnswer
from resilient_http import Deadline, UpstreamBadResponse, UpstreamResponse, upstream


def user_get(*, user_id: int, deadline: Deadline | None = None) -> dict[str, Any]:
    """The user from Users, or the tutorial's stub ``{"id": user_id}`` when it has none."""
    return user_find(user_id=user_id, deadline=deadline) or {"id": user_id}


def user_find(*, user_id: int, deadline: Deadline | None = None) -> dict[str, Any] | None:
    """The user from Users, or ``None`` when Users says it has no such user.

    ``deadline``, Orders' own caller's, tightens the configured ``USERS_DEADLINE``.
    """
    response = upstream("users").get(
        f"/users/{user_id}", params={"fromService": "order"}, deadline=deadline
    )
    if response.status == 404 and _is_json(response):
        return None  # Users' own "no such user"
    return _user_from(response, user_id=user_id)


def _content_type(response: UpstreamResponse) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _is_json(response: UpstreamResponse) -> bool:
    """An answer from the API, not an HTML page: a 404 page from a wrong host or route must
    not quietly turn into "no such user" and a stub."""
    return _content_type(response) in ("application/json", "application/problem+json")


def _bad(answered: str) -> UpstreamBadResponse:
    """Users answered, with something that is not a user: a 502 ``users_bad_response``."""
    return UpstreamBadResponse(
        "users", f"answered {answered}", detail=f"The Users service answered {answered}."
    )


def _user_from(response: UpstreamResponse, *, user_id: int) -> dict[str, Any]:
    if response.status != 200:
        raise _bad(f"{response.status}, not a user")
    if _content_type(response) != "application/json":
        raise _bad(f"{_content_type(response) or 'no content type'}, not JSON")
    try:
        payload = response.json()
    except ValueError:
        raise _bad("with a body that is not JSON") from None
    user = UserAnswer(data=payload if isinstance(payload, dict) else {})  # Orders' copy
    if not user.is_valid() or user.validated_data["id"] != user_id:
        raise _bad("with JSON that is not this user")
    return dict(user.validated_data)
