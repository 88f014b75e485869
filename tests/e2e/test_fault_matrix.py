"""The fault matrix: every kind of Users failure, end to end, against real processes.

Each row sets a fault with ``manage.py simulate_outage`` (or kills / restarts the Users
process), sends one ``GET /orders/?user_id=1``, and checks Orders' status and problem
code, how many requests Users' own access log shows, and the elapsed time. The breaker
is off here (each row is about one call); its behaviour has its own tests. Run by hand
for the report:

    .venv/bin/python -m tests.e2e.test_fault_matrix
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.stack import Stack, migrated_sqlite

pytestmark = pytest.mark.e2e

DEADLINE = 2.0  # short, so the slow rows are quick; the bounds scale with it
SLACK = 0.25
ORDERS_ENV = {"USERS_BREAKER": "0", "USERS_DEADLINE": str(DEADLINE), "USERS_READ_TIMEOUT": "1"}


@dataclass(frozen=True)
class Row:
    name: str
    setup: Callable[[Stack], None]
    status: int
    code: str = ""
    users_requests: tuple[int, int] = (1, 1)  # inclusive range
    seconds: float = 1.0  # upper bound on Orders' answer
    #: Another answer that is also right: a random fault can, rarely, beat every attempt.
    also: tuple[int, str] | None = None
    #: Users may never log these requests (it is still busy, or its answer hits a closed
    #: socket): count them as they arrive, with the fault's own counter.
    count_arrivals: bool = False


@dataclass
class Result:
    row: Row
    status: int = 0
    code: str = ""
    users_requests: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def fault(*args: str) -> Callable[[Stack], None]:
    return lambda stack: stack.manage("simulate_outage", *args)


def healthy(stack: Stack) -> None:
    stack.manage("simulate_outage", "clear")


def kill_users(stack: Stack) -> None:
    stack.manage("simulate_outage", "clear")
    stack.users.stop()


def restart_users(stack: Stack) -> None:
    stack.users.start()


WITHIN_DEADLINE = DEADLINE + SLACK
ROWS = [
    Row("healthy", healthy, 200),
    Row("error 502", fault("error", "--status", "502"), 503, "users_unavailable", (5, 5),
        WITHIN_DEADLINE),
    Row("error 503", fault("error", "--status", "503"), 503, "users_unavailable", (5, 5),
        WITHIN_DEADLINE),
    Row("error 504", fault("error", "--status", "504"), 503, "users_unavailable", (5, 5),
        WITHIN_DEADLINE),
    Row("error 500 (not retried)", fault("error", "--status", "500"), 503, "users_unavailable"),
    Row("error 429, no Retry-After", fault("error", "--status", "429"), 503,
        "users_unavailable"),
    Row("error 503, Retry-After 1 s", fault("error", "--status", "503", "--retry-after", "1"),
        503, "users_unavailable", (2, 2), WITHIN_DEADLINE),  # waits 1 s once; 2nd won't fit
    Row("error 503, Retry-After 30 s", fault("error", "--status", "503", "--retry-after", "30"),
        503, "users_unavailable", (1, 1), 0.5),
    Row("flaky: error 30 %", fault("error", "--rate", "0.3"), 200, "", (1, 5), WITHIN_DEADLINE,
        also=(503, "users_unavailable")),  # all 5 attempts hit: 0.3^5 = 0.24 %
    Row("fail-next 4 (retries 4)", fault("fail-next", "4"), 200, "", (5, 5), WITHIN_DEADLINE),
    Row("fail-next 5 (one too many)", fault("fail-next", "5"), 503, "users_unavailable", (5, 5),
        WITHIN_DEADLINE),
    Row("slow 0.5 s (< read timeout)", fault("slow", "--delay", "0.5"), 200, "", (1, 1), 1.0),
    Row("slow 3 s (> read timeout 1 s)", fault("slow", "--delay", "3"), 504, "users_timeout",
        (2, 2), WITHIN_DEADLINE, count_arrivals=True),
    # A piece 1 s apart races the 1 s read timeout: on a loaded machine it loses, and the
    # read timeout's retry (a GET) is the right answer: 1 or 2 requests, 504 at the deadline.
    Row("drip, 4 bytes/s", fault("drip", "--interval", "1"), 504, "users_timeout", (1, 2),
        WITHIN_DEADLINE, count_arrivals=True),
    Row("Users killed (refused)", kill_users, 503, "users_unavailable", (0, 0), 2.0),
    Row("Users restarted", restart_users, 200),
]  # fmt: skip


def run_matrix(stack: Stack) -> list[Result]:
    results = []
    for row in ROWS:
        row.setup(stack)  # a new fault starts its hit count at 0
        seen_before = len(stack.users.user_requests())
        response, elapsed = stack.get_orders(1)
        result = Result(row, response.status_code, seconds=elapsed)
        if response.status_code != 200:
            result.code = response.json().get("code", "")
        # Users logs a request when it has finished answering it: for a caller that gave up
        # that is after Orders answered, and a dripping answer may end in a broken pipe and
        # never be logged. The fault's own counter counts requests as they arrive.
        time.sleep(0.3)
        logged = len(stack.users.user_requests()) - seen_before
        result.users_requests = max(logged, stack.hits()) if row.count_arrivals else logged
        low, high = row.users_requests
        answer, expected = (result.status, result.code), {(row.status, row.code), row.also}
        if answer not in expected:
            result.problems.append(f"answered {answer}, expected {(row.status, row.code)}")
        if not low <= result.users_requests <= high:
            result.problems.append(f"Users saw {result.users_requests}, expected {low}..{high}")
        if elapsed > row.seconds:
            result.problems.append(f"took {elapsed:.2f} s, bound {row.seconds:.2f} s")
        results.append(result)
    stack.manage("simulate_outage", "clear")
    return results


def report(results: list[Result]) -> str:
    head = f"{'fault':<32} {'Orders':<24} {'Users saw':>9} {'seconds':>8}  verdict"
    lines = [head, "-" * len(head)]
    for r in results:
        low, high = r.row.users_requests
        expected = f"{low}" if low == high else f"{low}-{high}"
        answer = f"{r.status} {r.code}".strip()
        verdict = "ok" if not r.problems else "FAIL: " + "; ".join(r.problems)
        lines.append(
            f"{r.row.name:<32} {answer:<24} {r.users_requests:>4} ({expected:>3})"
            f" {r.seconds:>7.2f}  {verdict}"
        )
    return "\n".join(lines)


def test_fault_matrix(tmp_path, sqlite_template, capsys):
    stack = Stack(tmp_path, ORDERS_ENV, "runserver", sqlite_template)
    try:
        results = run_matrix(stack)
    finally:
        stack.stop()
    table = report(results)
    with capsys.disabled():
        print("\n" + table)
    assert all(not r.problems for r in results), "\n" + table


if __name__ == "__main__":
    directory = Path(tempfile.mkdtemp())
    stack = Stack(directory, ORDERS_ENV, "runserver", migrated_sqlite(directory))
    try:
        print(report(run_matrix(stack)))
    finally:
        stack.stop()
