"""Unit-test fixtures: Users mocked with ``responses``, its answers in the order given."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from responses.registries import OrderedRegistry


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """``mocked.add(...)`` in order: 503, 503, 200 answer the first, second, third call."""
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        yield rsps
