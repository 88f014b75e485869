"""The fault matrix: every kind of Users failure, end to end, against real processes.

Each row sets a fault with ``manage.py simulate_outage`` (or kills / restarts the Users
process), sends one ``GET /orders/?user_id=1``, and checks Orders' status and problem
code, how many requests Users' own access log shows, how many attempts Orders' log shows,
and the elapsed time. Orders calls Users through the fault proxy, as in ``make run``, so
the transport faults (down, reset, hang, truncate, slow-bytes) have their rows too. The
breaker is off here (each row is about one call); its behaviour has its own tests. Run by
hand for the report:

    .venv/bin/python -m tests.e2e.test_fault_matrix
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.stack import Stack, migrated_sqlite, wait_until

pytestmark = pytest.mark.e2e

DEADLINE = 2.0  # short, so the slow rows are quick; the bounds scale with it
SLACK = 0.25
# Each row is about one call's outcome, not the schedule, the breaker or the budget (they
# have their own tests): backoff 10x shorter, breaker off, budget out of the way.
ORDERS_ENV = {
    "USERS_BREAKER": "0",
    "USERS_DEADLINE": str(DEADLINE),
    "USERS_READ_TIMEOUT": "1",
    "USERS_BACKOFF_FACTOR": "0.01",
    # Rows come faster than the budget's 10 s window slides: each row gets its retries.
    "USERS_BUDGET_MIN_RETRIES_PER_SECOND": "100",
}


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
    #: Attempts Orders' log shows (inclusive range), where the row is about retrying.
    attempts: tuple[int, int] | None = None
    #: How every attempt ended, as Orders' log names it, where the row is about that.
    outcome: str = ""
    #: ``simulate_outage down``: wait until the proxy refuses (else until it listens).
    down: bool = False


@dataclass
class Result:
    row: Row
    status: int = 0
    code: str = ""
    users_requests: int = 0
    attempts: int = 0
    request_id: str = ""
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
ATTEMPT_LINE = re.compile(r"users GET /users/\d+ attempt \d+/\d+: (\w+)")
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
    # Each piece well inside the 1 s read timeout: the deadline ends the call. On a loaded
    # machine a piece can still come late, and the read timeout's retry (a GET) is right.
    Row("drip, 8 bytes/s", fault("drip", "--interval", "0.5"), 504, "users_timeout", (1, 2),
        WITHIN_DEADLINE, count_arrivals=True),
    # Transport faults, from the fault proxy between Orders and Users.
    Row("down (refused, retried)", fault("down"), 503, "users_unavailable", (0, 0),
        WITHIN_DEADLINE, attempts=(5, 5), outcome="connect_error", down=True),  # never arrived
    Row("reset after the request", fault("reset"), 503, "users_unavailable", (5, 5),
        WITHIN_DEADLINE, count_arrivals=True, attempts=(5, 5), outcome="connection_reset"),
    Row("reset mid-response (100 B)", fault("reset", "--after-bytes", "100"), 503,
        "users_unavailable", (5, 5), WITHIN_DEADLINE, count_arrivals=True, attempts=(5, 5),
        outcome="connection_reset"),  # a GET is idempotent: retried though it arrived
    Row("hang", fault("hang"), 504, "users_timeout", (0, 0), WITHIN_DEADLINE,
        attempts=(2, 3)),  # read, never forwarded: Users never sees it
    Row("truncate at 0 bytes", fault("truncate", "--bytes", "0"), 503, "users_unavailable",
        (5, 5), WITHIN_DEADLINE, count_arrivals=True, attempts=(5, 5)),
    # 20 bytes: a status line and half a header. urllib3 only warns about that: the attempt
    # is a 200 with no body, logged at DEBUG as a first attempt's answer is (so no line
    # here), and Orders' contract check turns the empty answer into a 502. Not retried.
    Row("truncate in the headers (20 B)", fault("truncate", "--bytes", "20"), 502,
        "users_bad_response", (1, 1), 1.0, count_arrivals=True, attempts=(0, 0)),
    # The status line and headers dripped byte by byte: each read is quick, so only the
    # call timeout (the watchdog) can end it, at the deadline.
    Row("slow-bytes, 100 B/s", fault("slow-bytes", "--bytes-per-second", "100"), 504,
        "users_timeout", (1, 1), WITHIN_DEADLINE, count_arrivals=True, attempts=(1, 1)),
    Row("Users killed (proxy resets)", kill_users, 503, "users_unavailable", (0, 0), 2.0),
    Row("Users restarted", restart_users, 200),
]  # fmt: skip


def run_matrix(stack: Stack) -> list[Result]:
    results = []
    for row in ROWS:
        row.setup(stack)  # a new fault starts its hit count at 0
        if stack.proxy is not None:
            stack.proxy_settle(down=row.down)
        attempts_before = len(ATTEMPT_LINE.findall(stack.orders.log()))
        response, elapsed = stack.get_orders(1)
        result = Result(row, response.status_code, seconds=elapsed)
        result.request_id = response.headers.get("X-Request-ID", "")
        if response.status_code != 200:
            result.code = response.json().get("code", "")
        # Users logs a request when it has finished answering it (tagged with Orders' request
        # ID): for a caller that gave up that is after Orders answered, and a dripping answer
        # may end in a broken pipe and never be logged. So wait for the lines the row expects
        # (no fixed sleep), recount them all at the end, and where the answer may never be
        # logged, count arrivals with the fault's own counter.
        if not row.count_arrivals:
            wait_until(
                lambda row=row, result=result: users_saw(stack, result) >= row.users_requests[0],
                "Users' log",
                timeout=60,
            )
        result.users_requests = users_saw(stack, result)
        if row.count_arrivals:
            result.users_requests = max(result.users_requests, stack.hits())
        outcomes = ATTEMPT_LINE.findall(stack.orders.log())[attempts_before:]
        result.attempts = len(outcomes)
        if row.attempts and not row.attempts[0] <= result.attempts <= row.attempts[1]:
            result.problems.append(f"{result.attempts} attempts, expected {row.attempts}")
        if row.outcome and set(outcomes) != {row.outcome}:
            result.problems.append(f"attempts ended {sorted(set(outcomes))}, not {row.outcome}")
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
    for result in results:  # lines written late: the upper bounds, checked once all are in
        low, high = result.row.users_requests
        late = users_saw(stack, result)
        if not result.row.count_arrivals and not low <= late <= high:
            result.problems.append(f"Users' log came to {late}, expected {low}..{high}")
    return results


def users_saw(stack: Stack, result: Result) -> int:
    return len(stack.users.user_requests(result.request_id))


def report(results: list[Result]) -> str:
    head = f"{'fault':<32} {'Orders':<24} {'Users saw':>9} {'tries':>5} {'seconds':>8}  verdict"
    lines = [head, "-" * len(head)]
    for r in results:
        low, high = r.row.users_requests
        expected = f"{low}" if low == high else f"{low}-{high}"
        answer = f"{r.status} {r.code}".strip()
        verdict = "ok" if not r.problems else "FAIL: " + "; ".join(r.problems)
        lines.append(
            f"{r.row.name:<32} {answer:<24} {r.users_requests:>4} ({expected:>3})"
            f" {r.attempts:>5} {r.seconds:>8.2f}  {verdict}"
        )
    return "\n".join(lines)


def test_fault_matrix(tmp_path, sqlite_template, capsys):
    stack = Stack(tmp_path, ORDERS_ENV, "runserver", sqlite_template, proxy=True)
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
    stack = Stack(directory, ORDERS_ENV, "runserver", migrated_sqlite(directory), proxy=True)
    try:
        print(report(run_matrix(stack)))
    finally:
        stack.stop()
