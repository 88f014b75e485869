"""Everything Orders knows about talking to Users: base URL, session, timeouts, errors.

One ``RetryManager`` per process (its pooled session, breaker and budget are shared by
every request thread); built from ``settings.UPSTREAMS["users"]`` on first use and
rebuilt when that setting changes (tests). Nothing about HTTP leaks out of this module:
callers get a user dict or one of the ``orders.exceptions``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework import serializers

from orders.exceptions import UsersBadResponse, UsersCircuitOpen, UsersTimeout, UsersUnavailable
from project.live import RECORDER, register_manager
from project.metrics import record_event
from project.request_id import REQUEST_ID_HEADER, current_request_id
from project.resilience import (
    CircuitOpen,
    Deadline,
    RetryManager,
    UpstreamBadResponse,
    UpstreamConfig,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
    log_event,
)

#: Retry-After sent to our callers when Users gave none and no breaker says when.
DEFAULT_RETRY_AFTER = 1

_manager: RetryManager | None = None
_lock = threading.Lock()


def users_manager() -> RetryManager:
    """The process-wide client for Users, created once (thread-safe)."""
    global _manager
    if _manager is None:
        with _lock:
            if _manager is None:
                _manager = RetryManager(
                    UpstreamConfig(**settings.UPSTREAMS["users"]),
                    listeners=(log_event, record_event, RECORDER),
                )
    return _manager


register_manager("users", users_manager)  # for the resilience page


def users_manager_reset() -> None:
    """Forget the client (and its breaker and budget state); the next call builds a new one."""
    global _manager
    with _lock:
        if _manager is not None:
            _manager.close()
        _manager = None


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "UPSTREAMS":
        users_manager_reset()


class _UserPayload(serializers.Serializer):
    """What a Users 200 must hold to count as a user."""

    id = serializers.IntegerField(min_value=1)
    name = serializers.CharField(allow_blank=True, max_length=1000)
    phone = serializers.CharField(allow_blank=True, max_length=100)


def user_get(*, user_id: int, deadline: Deadline | None = None) -> dict[str, Any]:
    """The user from Users, or the tutorial's stub ``{"id": user_id}`` when it has none."""
    return user_find(user_id=user_id, deadline=deadline) or {"id": user_id}


def user_find(*, user_id: int, deadline: Deadline | None = None) -> dict[str, Any] | None:
    """The user from Users, or ``None`` when Users says it has no such user.

    ``deadline``, Orders' own caller's, tightens the configured ``USERS_DEADLINE``.

    Raises ``UsersTimeout`` (504), ``UsersUnavailable``/``UsersCircuitOpen`` (503) or
    ``UsersBadResponse`` (502): the honest mapping of how the call ended.
    """
    manager = users_manager()
    path = f"/users/{user_id}"
    allowed = manager.config.deadline
    if deadline is not None:
        allowed = min(allowed, deadline.remaining())
    try:
        with RECORDER.call("users", method="GET", path=path, deadline=allowed):
            response = manager.get(
                path,
                params={"fromService": "order"},
                headers=_forwarded_headers(),
                deadline=deadline,
            )
    except CircuitOpen as exc:
        raise UsersCircuitOpen(retry_after=exc.retry_after) from exc
    except UpstreamTimeout as exc:
        raise UsersTimeout(f"The Users service did not answer in time ({exc.reason}).") from exc
    except UpstreamUnavailable as exc:
        raise UsersUnavailable(
            f"The Users service is unavailable ({exc.reason}); try again later.",
            retry_after=exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER,
        ) from exc
    except UpstreamBadResponse as exc:
        raise UsersBadResponse(f"The Users service answered badly ({exc.reason}).") from exc
    if response.status == 404 and _is_json(response):
        return None  # Users' own "no such user"
    return _user_from(response, user_id=user_id)


def _forwarded_headers() -> dict[str, str]:
    """The request ID, so Users logs its side of this request under the same ID."""
    request_id = current_request_id()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


def _content_type(response: UpstreamResponse) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _is_json(response: UpstreamResponse) -> bool:
    """An answer from the API, not an HTML page: a 404 page from a wrong host or route must
    not quietly turn into "no such user" and a stub."""
    return _content_type(response) in ("application/json", "application/problem+json")


def _user_from(response: UpstreamResponse, *, user_id: int) -> dict[str, Any]:
    if response.status != 200:
        raise UsersBadResponse(f"The Users service answered {response.status}, not a user.")
    if _content_type(response) != "application/json":
        found = _content_type(response) or "no content type"
        raise UsersBadResponse(f"The Users service answered {found}, not JSON.")
    try:
        payload = response.json()
    except ValueError:
        raise UsersBadResponse("The Users service answered with a body that is not JSON.") from None
    user = _UserPayload(data=payload if isinstance(payload, dict) else {})
    if not user.is_valid() or user.validated_data["id"] != user_id:
        raise UsersBadResponse("The Users service answered with JSON that is not this user.")
    return dict(user.validated_data)
