"""Shared fixtures: an injected clock and sleep, a RetryManager factory, a closed port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from resilient_http import RetryManager, UpstreamConfig, set_testing
from resilient_http.events import Event
from resilient_http.registry import reset_upstreams

BASE_URL = "http://users.test"
URL = f"{BASE_URL}/users/1"
USER = {"id": 1, "name": "Aaron Apple", "phone": "99992222"}


def eventually(condition: Callable[[], bool], patience: float = 10.0) -> bool:
    """Poll ``condition`` until it holds; ``False`` after ``patience`` seconds, an outer
    bound for what takes milliseconds on an idle machine (never a verdict on speed)."""
    ends = time.monotonic() + patience
    while not condition():
        if time.monotonic() > ends:
            return False
        time.sleep(0.005)
    return True


class FakeClock:
    """A monotonic clock that only moves when told to; ``sleep`` records and advances."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> list[Event]:
    return []


ManagerFactory = Callable[..., RetryManager]


@pytest.fixture
def make_manager(clock: FakeClock, events: list[Event]) -> Iterator[ManagerFactory]:
    """``make_manager(retries=5, ...)``: a RetryManager on ``BASE_URL`` with the fake clock,
    no jitter unless asked, and every event appended to ``events``.
    """
    made: list[RetryManager] = []

    def make(random: Callable[[], float] = lambda: 1.0, **overrides: object) -> RetryManager:
        fields: dict[str, object] = {
            "name": "users",
            "base_url": BASE_URL,
            "backoff_jitter": False,
            **overrides,
        }
        manager = RetryManager(
            UpstreamConfig(**fields),  # type: ignore[arg-type]
            clock=clock,
            sleep=clock.sleep,
            random=random,
            listeners=[events.append],
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Breaker and budget must not leak between tests. Created orders and idempotency
    keys are rows: pytest-django's database isolation rolls them back or flushes them."""
    reset_upstreams()
    yield
    reset_upstreams()
    set_testing(False)  # a test that turned it on cannot leave it on
