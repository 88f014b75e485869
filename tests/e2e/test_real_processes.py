"""End to end, real processes on loopback: what a reader of the README and the docs sees."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from itertools import pairwise
from typing import TypeVar

import pytest

from bench.stack import ROOT
from resilient_http import UpstreamConfig

pytestmark = pytest.mark.e2e

T = TypeVar("T")


def wait_for(probe: Callable[[], T], *, until: Callable[[T], bool], seconds: float = 60) -> T:
    """Poll ``probe`` until ``until`` holds. The generous bound only stops a hung test:
    no verdict here depends on how fast a busy machine gets there."""
    give_up = time.monotonic() + seconds
    while not until(value := probe()):
        assert time.monotonic() < give_up, f"still {value!r} after {seconds} s"
        time.sleep(0.05)
    return value


def test_both_services_answer_the_tutorials_json(stack):
    s = stack()
    response, _ = s.get_orders(1)
    assert response.status_code == HTTPStatus.OK
    assert response.json()["user"] == {"id": 1, "name": "Aaron Apple", "phone": "99992222"}
    assert s.session.get(f"{s.orders.url}/users/1", timeout=5).status_code == 404  # Orders only


#: The line of docs/tutorial.md that reproduces the tutorial's table, e.g.
#: ``USERS_RETRIES=5 ... make run``.
TABLE_LINE = re.compile(r"^((?:USERS_[A-Z_]+=\S+ )+)make run$", re.MULTILINE)
#: Variables in seconds: all scaled by one factor, so the schedule keeps its shape.
SECONDS = {"CONNECT_TIMEOUT", "READ_TIMEOUT", "BACKOFF_FACTOR", "BACKOFF_MAX", "DEADLINE",
           "MIN_ATTEMPT", "BUDGET_WINDOW", "BREAKER_WINDOW", "BREAKER_RESET"}  # fmt: skip
UNITLESS = {"RETRIES", "BACKOFF_JITTER", "BREAKER"}
#: Every time is scaled by this; not smaller, so a 502 still beats the scaled read timeout.
FACTOR = 0.2


def readme_table_env() -> dict[str, str]:
    """The tutorial page's own command line with every time variable, those it leaves at their
    defaults included, scaled by ``FACTOR``: the same run, faster."""
    match = TABLE_LINE.search((ROOT / "docs" / "tutorial.md").read_text())
    assert match, "docs/tutorial.md lost its `USERS_... make run` line for the tutorial's table"
    line = dict(pair.split("=", 1) for pair in match[1].split())
    for name in line:
        assert name.removeprefix("USERS_") in SECONDS | UNITLESS, f"{name}: in seconds or not?"
    defaults = {f"USERS_{f.name.upper()}": f.default for f in dataclasses.fields(UpstreamConfig)}
    env = dict(line)
    for field in SECONDS:
        name = f"USERS_{field}"
        env[name] = str(float(line.get(name, defaults[name])) * FACTOR)
    return env


def test_users_log_reproduces_the_tutorials_table(stack):
    """The tutorial page's line, time scaled: 6 requests in Users' log, 0, 2, 4, 8, 16 s apart
    (scaled), and 503 after the 30 s (scaled) of sleeps. The breaker stays on: it counts the
    call, not its attempts, so the retries all go out."""
    env = readme_table_env()
    factor = float(env["USERS_BACKOFF_FACTOR"])
    s = stack(**env)
    s.manage("simulate_outage", "error", "--status", "502")
    response, elapsed = s.get_orders(1)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    expected = [0, 2 * factor, 4 * factor, 8 * factor, 16 * factor]
    assert elapsed >= sum(expected)
    orders_log = s.orders.log()
    assert all(f"attempt {n}/6: 502" in orders_log for n in range(1, 7))
    for wait in expected:  # the schedule Orders chose, exactly (no jitter)
        assert f"retry in {wait:.2f} s" in orders_log
    seen = wait_for(lambda: s.users.user_requests(), until=lambda seen: len(seen) >= 6)
    assert [status for _, status in seen] == [502] * 6
    gaps = [(b - a).total_seconds() for (a, _), (b, _) in pairwise(seen)]
    for gap, wait in zip(gaps, expected, strict=True):
        assert gap >= wait - 0.01, gaps  # Users saw every sleep (log times are to the ms)


def test_breaker_opens_and_then_answers_without_calling_users(stack):
    """5 failed calls open it; then Orders answers 503 users_circuit_open and Users sees
    nothing. The reset is long, so no step here races the breaker's clock."""
    s = stack(USERS_RETRIES="0", USERS_BREAKER_RESET="600")
    s.manage("simulate_outage", "error", "--status", "502")
    codes = [s.get_orders(1)[0].json()["code"] for _ in range(5)]
    assert codes == ["users_unavailable"] * 5
    hits_when_open = s.hits()
    for _ in range(3):
        response, _ = s.get_orders(1)
        assert response.json()["code"] == "users_circuit_open"
        assert 1 <= int(response.headers["Retry-After"]) <= 600
    assert s.hits() == hits_when_open == 5  # Users was not called


def test_breaker_probes_after_the_reset_and_closes_when_users_heals(stack):
    """Open, heal Users, and keep asking: the first call after the reset is the probe, its
    success closes the breaker. How soon is the benchmark's business (recovery time);
    here only the order of events is checked, so a slow machine cannot fail it."""
    s = stack(USERS_RETRIES="0", USERS_BREAKER_RESET="0.5")
    s.manage("simulate_outage", "error", "--status", "502")
    for _ in range(5):
        s.get_orders(1)
    s.manage("simulate_outage", "clear")
    answers = wait_for(lambda: s.get_orders(1)[0], until=lambda r: r.status_code == 200)
    assert answers.json()["user"]["id"] == 1
    log = s.orders.log()
    events = ("breaker_opened", "breaker_half_open", "breaker_closed")
    opened, probing, closed = (log.find(f"users {event}") for event in events)
    assert 0 <= opened < probing < closed, log


def test_users_killed_is_503_and_restarted_users_is_served_again(stack):
    s = stack(USERS_BREAKER_RESET="0.5")
    s.users.stop()
    response, elapsed = s.get_orders(1)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] in ("users_unavailable", "users_circuit_open")
    assert "Retry-After" in response.headers
    assert elapsed < 5 + 1  # USERS_DEADLINE, with room for a busy machine
    assert s.users.user_requests() == []
    s.users.start()
    wait_for(lambda: s.get_orders(1)[0], until=lambda r: r.status_code == HTTPStatus.OK)


@pytest.mark.parametrize("breaker", ["1", "0"], ids=["breaker-and-budget", "budget-only"])
def test_hard_outage_with_16_callers_amplifies_at_most_1_25(stack, breaker):
    """16 callers send 30 requests each through a hard outage; Users' hit count over Orders'
    request count is the amplification. A count, not a time window, so a slow machine runs
    the same test. The budget's floor is lowered so 480 requests are 'sustained' load: the
    bound is 0.2 retries a request plus a floor of 0.5/s, 1.25 even at 20 s for the lot."""
    s = stack(USERS_BREAKER=breaker, USERS_BUDGET_MIN_RETRIES_PER_SECOND="0.5")
    s.manage("simulate_outage", "error", "--status", "502")
    counts: list[int] = []

    def caller() -> None:
        import requests

        with requests.Session() as session:
            for _ in range(30):
                session.get(f"{s.orders.url}/orders/", params={"user_id": 1}, timeout=60)
        counts.append(30)

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    orders_requests, users_requests = sum(counts), s.hits()
    assert orders_requests == 16 * 30
    assert users_requests / orders_requests <= 1.25, (users_requests, orders_requests)
