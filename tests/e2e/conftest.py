"""Real processes for end-to-end tests (see ``bench/stack.py``, shared with the benchmarks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.stack import Stack, migrated_sqlite


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite(tmp_path_factory.mktemp("template"))


@pytest.fixture
def stack(tmp_path: Path, sqlite_template: Path) -> Iterator[Callable[..., Stack]]:
    """``stack(USERS_RETRIES="5", ...)``: start both services, Orders with that environment."""
    started: list[Stack] = []

    def start(server: str = "runserver", orders_app: str | None = None, **orders_env: str) -> Stack:
        s = Stack(tmp_path, orders_env, server, sqlite_template, orders_app=orders_app)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
