"""Unit-test fixtures: Users mocked with ``responses``, its answers in the order given."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http import HTTPStatus

import pytest
import responses
from responses.registries import OrderedRegistry

from resilient_http import RetryManager
from resilient_http.breaker import CircuitBreaker, State
from tests.conftest import USER

#: Three mocked Users hosts (``fleet``).
HOSTS = ("http://a.test", "http://b.test", "http://c.test")


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """``mocked.add(...)`` in order: 503, 503, 200 answer the first, second, third call."""
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        yield rsps


@pytest.fixture
def transitions() -> list[tuple[State, str]]:
    return []


@pytest.fixture
def make_breaker(clock, transitions) -> Callable[..., CircuitBreaker]:
    """``make_breaker(slow_call=1.0, ...)``: the fake clock, every transition recorded."""

    def make(**overrides: object) -> CircuitBreaker:
        settings: dict[str, object] = {
            "failure_ratio": 0.5,
            "min_calls": 10,
            "consecutive_failures": 5,
            "window": 10,
            "reset": 5,
            **overrides,
        }
        return CircuitBreaker(
            **settings,  # type: ignore[arg-type]
            clock=clock,
            on_transition=lambda state, cause: transitions.append((state, cause)),
        )

    return make


class Fleet:
    """What ``fleet`` serves: ``answers[host]`` is a status, (status, headers), an
    exception to raise, or a function returning or raising one of those; ``seen`` the host
    of every request, in order."""

    def __init__(self) -> None:
        self.answers: dict[str, object] = dict.fromkeys(HOSTS, 200)
        self.seen: list[str] = []

    def answer(self, request: object) -> tuple[int, dict[str, str], str]:
        host = request.url.split("/users/")[0]  # type: ignore[attr-defined]
        self.seen.append(host.removeprefix("http://"))
        what = self.answers[host]
        if callable(what):  # a function: it may advance a fake clock, raise, or answer
            what = what()
        if isinstance(what, BaseException):
            raise what
        status, headers = what if isinstance(what, tuple) else (what, {})
        body = USER if status == HTTPStatus.OK else {"detail": "x"}
        return status, {"Content-Type": "application/json", **headers}, json.dumps(body)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """Three mocked hosts answering ``GET /users/1`` as ``fleet.answers`` says."""
    served = Fleet()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        for host in HOSTS:
            mocked.add_callback("GET", f"{host}/users/1", callback=served.answer)
        yield served


def several(make_manager: Callable[..., RetryManager], **overrides: object) -> RetryManager:
    """A manager over the three ``HOSTS``."""
    return make_manager(base_url=",".join(HOSTS), **overrides)
