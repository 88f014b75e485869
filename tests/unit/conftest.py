"""Unit-test fixtures: Users mocked with ``responses``, its answers in the order given."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import responses
from responses.registries import OrderedRegistry

from project.resilience import CircuitBreaker, State


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
