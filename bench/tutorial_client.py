"""The tutorial's client, faithfully, as the benchmarks' baseline (not for production).

Only what stops it from running on urllib3 2.x is changed (``allowed_methods`` for the
removed ``method_whitelist``), and 404 is left out of the status list as the benchmark
issue specifies. Everything else is the tutorial's: a new ``Session`` per call,
``Retry(total=5, backoff_factor=1)``, a 10 s per-read timeout, and every failure it
catches reported as "user not found".
Orders uses it when served by ``bench/tutorial_wsgi.py``.
"""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from rest_framework.exceptions import NotFound
from urllib3.util.retry import Retry


class UserNotFound(NotFound):
    """The tutorial's ``HTTPException(404)`` for every kind of failure."""


class RetryManager:
    def __init__(self, num_retries: int = 3) -> None:
        self.num_retries = num_retries

    def get_session(self) -> requests.Session:
        session = requests.Session()
        retries = Retry(
            total=self.num_retries,
            backoff_factor=1,  # 0, 2, 4, 8, 16 s on urllib3 2.x
            status_forcelist=[502, 503, 504],
            allowed_methods=frozenset(["GET", "POST", "OPTIONS"]),
        )
        adapter = HTTPAdapter(max_retries=retries)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


def call_api_with_retry(url: str, api_timeout_in_secs: int = 10) -> requests.Response:
    retry_session = RetryManager(num_retries=5).get_session()
    return retry_session.get(url=url, timeout=api_timeout_in_secs)


def user_get(*, user_id: int, deadline: object = None) -> dict[str, Any]:
    """The tutorial's ``get_user_data``; ``deadline`` is accepted and, like it, ignored."""
    base = settings.UPSTREAMS["users"]["base_url"]
    try:
        response = call_api_with_retry(
            url=f"{base}/users/{user_id}?fromService=order", api_timeout_in_secs=10
        )
    except requests.exceptions.ReadTimeout:
        raise UserNotFound("User not found: User API timed out") from None
    except requests.exceptions.RetryError:
        raise UserNotFound("User not found: User service may be down") from None
    if response.status_code == 200:
        return response.json()
    if response.status_code == 404:
        return {"id": user_id}
    raise UserNotFound("User not found: User API failed")
