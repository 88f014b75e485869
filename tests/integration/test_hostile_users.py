"""Orders against a Users that misbehaves at the byte level: every answer comes in time.

Each row points Orders at ``HostileUsers`` (a raw TCP server, one mode per misbehaviour)
and sends ``GET /orders/?user_id=1`` through Orders' real view, middleware and exception
handler (Django's test client), then checks: Orders' status and problem code; the answer
within ``USERS_DEADLINE`` + 0.25 s; never a 500; no thread and no socket left behind in
the process (connections still in Orders' pool are counted, and a connection cut by the
deadline must not be one of them); bounded memory (tracemalloc's peak during the call).
Run by hand for the table:

    .venv/bin/python -m tests.integration.test_hostile_users
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.integration import hostile_server as hs

DEADLINE = 1.0
#: The promise: answered within the deadline plus this. The hand-run table checks it.
SLACK = 0.25
#: What pytest allows on top of the deadline: the promise's 0.25 s plus room for a loaded
#: 2-core CI machine (four suites at once here). A broken deadline misses it by seconds
#: (the modes drip for 30 s), so this looser bound still catches every regression.
TEST_SLACK = 1.0
#: tracemalloc's peak during one call: the body cap is 1 MiB; the bombs expand to 128 MiB.
MEMORY_BOUND = 16 * 1024 * 1024
#: Thread names that are not Orders' leftovers: the hostile server's, the shared watchdog.
NOT_ORDERS = ("hostile-", "call-watchdog")


@dataclass(frozen=True)
class Row:
    mode: hs.Mode
    status: int
    code: str = ""

    @property
    def name(self) -> str:
        return self.mode.__name__


TIMEOUT = (HTTPStatus.GATEWAY_TIMEOUT, "users_timeout")
UNAVAILABLE = (HTTPStatus.SERVICE_UNAVAILABLE, "users_unavailable")
BAD = (HTTPStatus.BAD_GATEWAY, "users_bad_response")

ROWS = [
    Row(hs.healthy, HTTPStatus.OK),
    Row(hs.headers_byte_at_a_time, *TIMEOUT),
    Row(hs.slow_header_lines, *TIMEOUT),
    Row(hs.endless_100_continue, *TIMEOUT),
    Row(hs.endless_chunk_size_line, *TIMEOUT),
    Row(hs.trailers_byte_at_a_time, *TIMEOUT),
    Row(hs.drip_chunked, *TIMEOUT),
    Row(hs.drip_content_length, *TIMEOUT),
    Row(hs.never_answer, *TIMEOUT),
    Row(hs.close_before_status, *UNAVAILABLE),
    Row(hs.reset_after_request, *UNAVAILABLE),
    Row(hs.short_body, *UNAVAILABLE),
    Row(hs.content_length_not_ascii, *BAD),  # a length that is not one: 502, not a 500
    Row(hs.content_length_negative, *BAD),
    Row(hs.not_http, *BAD),  # not HTTP: 502, not retried
    Row(hs.too_many_headers, *BAD),  # not HTTP: 502, not retried
    Row(hs.header_line_over_64k, *BAD),  # not HTTP: 502, not retried
    Row(hs.gzip_bomb, *BAD),
    Row(hs.deflate_bomb, *BAD),
    Row(hs.stacked_encoding_bomb, *BAD),
    Row(hs.over_cap_with_content_length, *BAD),
    Row(hs.over_cap_chunked, *BAD),
    Row(hs.over_cap_until_close, *BAD),
    Row(hs.redirect_other_host, *BAD),
]


@dataclass
class Result:
    row: Row
    status: int = 0
    code: str = ""
    seconds: float = 0.0
    threads_left: int = 0
    sockets_left: int = 0
    pooled: int = 0
    peak_bytes: int = 0
    problems: list[str] = field(default_factory=list)


def _orders_threads() -> int:
    return sum(not t.name.startswith(NOT_ORDERS) for t in threading.enumerate())


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _pooled_sockets() -> int:
    """Connected sockets waiting in Orders' pool for Users (kept alive, legitimately)."""
    from resilient_http.registry import upstream

    count = 0
    adapters = {id(a): a for a in upstream("users").session.adapters.values()}  # http, https
    for adapter in adapters.values():
        for key in list(adapter.poolmanager.pools.keys()):
            pool: Any = adapter.poolmanager.pools[key]
            count += sum(conn is not None and conn.sock is not None for conn in pool.pool.queue)
    return count


def _upstream(url: str) -> dict[str, Any]:
    return {
        **settings.UPSTREAMS["users"],
        "base_url": url,
        "deadline": DEADLINE,
        "connect_timeout": 0.5,
        "read_timeout": 2.0,  # longer than the deadline: only the deadline can end the drips
        "retries": 4,
        "backoff_factor": 0.01,
        "breaker": False,  # each row is about one call; the breaker has its own tests
    }


def run_row(row: Row, server: hs.HostileUsers, slack: float) -> Result:
    server.mode = row.mode
    result = Result(row)
    with override_settings(UPSTREAMS={"users": _upstream(server.url)}):
        client = Client()
        threads, fds = _orders_threads(), _open_fds()
        tracemalloc.start()
        started = time.monotonic()
        response = client.get("/orders/", {"user_id": 1})
        result.seconds = time.monotonic() - started
        result.peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        result.status = response.status_code
        if response.status_code != HTTPStatus.OK:
            result.code = response.json().get("code", "")
        if not server.wait_idle():
            result.problems.append("the hostile server is still serving a connection")
        result.pooled = _pooled_sockets()
        result.threads_left = _orders_threads() - threads
        result.sockets_left = _open_fds() - fds - result.pooled
    if (result.status, result.code) != (row.status, row.code):
        result.problems.append(f"answered {result.status} {result.code}")
    if result.status == HTTPStatus.INTERNAL_SERVER_ERROR:
        result.problems.append("a 500")
    if result.seconds > DEADLINE + slack:
        result.problems.append(f"took {result.seconds:.2f} s > {DEADLINE + slack:.2f} s")
    if result.threads_left or result.sockets_left:
        result.problems.append(f"left {result.threads_left} threads, {result.sockets_left} fds")
    if row.status == HTTPStatus.GATEWAY_TIMEOUT and result.pooled:
        result.problems.append("a connection cut by the deadline went back to the pool")
    if result.peak_bytes > MEMORY_BOUND:
        result.problems.append(f"peak memory {result.peak_bytes / 2**20:.1f} MiB")
    return result


def report(results: list[Result]) -> str:
    head = (
        f"{'Users does':<30} {'Orders answers':<24} {'seconds':>7} {'pooled':>6} "
        f"{'left':>9} {'peak MiB':>8}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        answer = f"{r.status} {r.code}".strip()
        left = f"{r.threads_left}t {r.sockets_left}fd"
        verdict = "ok" if not r.problems else "FAIL: " + "; ".join(r.problems)
        lines.append(
            f"{r.row.name:<30} {answer:<24} {r.seconds:>7.2f} {r.pooled:>6} {left:>9} "
            f"{r.peak_bytes / 2**20:>8.2f}  {verdict}"
        )
    return "\n".join(lines)


def warm_up(server: hs.HostileUsers) -> None:
    """Import and build what the first request and the first error would, untimed."""
    for row in (ROWS[0], Row(hs.close_before_status, *UNAVAILABLE)):
        run_row(row, server, SLACK)


@pytest.fixture(scope="module")
def server(django_db_setup: None, django_db_blocker: Any) -> Any:
    with hs.hostile_users() as hostile:
        with django_db_blocker.unblock():  # GET /orders/ reads the created orders
            warm_up(hostile)
        yield hostile


@pytest.mark.django_db
@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_orders_answers_a_hostile_users_in_time(row: Row, server: hs.HostileUsers) -> None:
    result = run_row(row, server, TEST_SLACK)
    assert not result.problems, report([result])


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()
    from django.test.utils import setup_databases, teardown_databases

    databases = setup_databases(verbosity=0, interactive=False)  # a migrated test database
    try:
        with hs.hostile_users() as hostile:
            warm_up(hostile)
            print(f"USERS_DEADLINE={DEADLINE:g} s, bound {DEADLINE + SLACK:g} s")
            print(report([run_row(row, hostile, SLACK) for row in ROWS]))
    finally:
        teardown_databases(databases, verbosity=0)


def test_a_callers_tighter_deadline_arms_the_watchdog(server: hs.HostileUsers) -> None:
    """The watchdog is armed with the deadline that binds, the caller's 0.5 s, not the
    configured 5 s: a Users dripping its headers holds the call 0.5 s, not 5."""
    from resilient_http import Deadline, RetryManager, UpstreamConfig, UpstreamTimeout

    server.mode = hs.headers_byte_at_a_time
    config = UpstreamConfig(name="users", base_url=server.url, deadline=5.0, read_timeout=5.0)
    manager = RetryManager(config, listeners=[])
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout):
            manager.get("/users/1", deadline=Deadline.after(0.5))
    finally:
        manager.close()
    assert time.monotonic() - started < 0.5 + 2.0  # the promise with slack; the bug took 5 s
