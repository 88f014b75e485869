"""One bad replica among good ones, every way a reviewer attacking the change found:
its Retry-After or 429, hung attempts cancelled or cut by callers, leaked places, a
request's own 500, Users' 504 for a caller's passed deadline, configuration edge cases."""

from __future__ import annotations

import contextlib
import http.server
import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest
import requests
import responses

from resilient_http import Deadline, RetryManager, UpstreamConfig, UpstreamError, UpstreamOverloaded
from resilient_http import events as ev
from resilient_http.config import split_hosts
from tests.conftest import USER, eventually
from tests.unit.conftest import HOSTS, several


def pending(manager: RetryManager) -> dict[str, int]:
    return {h.label: len(h.pending) for h in manager.hosts.hosts if h.pending}


# -- one bad replica among good ones ------------------------------------------------------


def test_a_503_with_retry_after_from_one_replica_does_not_fail_the_call(fleet, make_manager):
    """simulate_outage --retry-after 30 on one replica of three: two are healthy, yet a
    call whose first attempt lands on it fails ("Retry-After 30 s exceeds the 5.00 s left")
    and the caller is told to come back in 30 s."""
    fleet.answers["http://a.test"] = (503, {"Retry-After": "30"})
    manager = several(make_manager, random=lambda: 0.0)  # a first
    assert manager.get("/users/1").status == HTTPStatus.OK


def test_a_short_retry_after_from_one_replica_does_not_delay_the_retry_elsewhere(
    fleet, make_manager, clock
):
    fleet.answers["http://a.test"] = (503, {"Retry-After": "2"})
    manager = several(make_manager, random=lambda: 0.0)
    assert manager.get("/users/1").status == HTTPStatus.OK
    assert clock.sleeps == [0.0]  # another replica has not seen this call: go at once


def test_a_replica_that_answers_429_costs_the_caller_nothing(fleet, make_manager):
    fleet.answers["http://a.test"] = (429, {})
    manager = several(make_manager, random=random.Random(7).random)
    failed = 0
    for _ in range(60):
        try:
            manager.get("/users/1")
        except UpstreamError:
            failed += 1
    share = fleet.seen.count("a.test") / len(fleet.seen)
    assert (failed, share < 0.1) == (0, True), (failed, share)


# -- leases ---------------------------------------------------------------------------------


def test_an_exception_in_the_transport_frees_the_hosts_place(fleet, make_manager):
    """classify() re-raises what is not a transport failure (a bug): the lease taken for
    that attempt must not stay in ``pending`` for ever (its age is the host's load, and
    ``host_max_concurrency`` of them take the host out of rotation for good)."""
    fleet.answers = dict.fromkeys(HOSTS, requests.exceptions.InvalidHeader("a bug"))
    manager = several(make_manager, host_max_concurrency=2)
    for _ in range(6):
        with pytest.raises(requests.exceptions.InvalidHeader):
            manager.get("/users/1")
    assert pending(manager) == {}
    fleet.answers = dict.fromkeys(HOSTS, (200, {}))
    assert manager.get("/users/1").status == HTTPStatus.OK  # not "every host ... in flight"


def test_a_hedge_cancelled_before_it_ran_frees_its_hosts_place(fleet, make_manager):
    """A hedge still queued for a worker when the race ends is cancelled and never sent,
    so ``_send`` never runs: its lease must be given back all the same."""
    manager = several(make_manager, hedge_after=0.01, max_concurrency=1, deadline=0.3)
    hedger = manager._hedger
    gate = threading.Event()
    # Both workers busy (losers of earlier races still unwinding, say).
    hedger.submit(lambda *_: gate.wait(5), None, None)
    hedger.submit(lambda *_: gate.wait(5), None, None)
    try:
        with pytest.raises(UpstreamError):
            manager.get("/users/1")
    finally:
        gate.set()
    assert eventually(lambda: pending(manager) == {}, patience=2), pending(manager)


# -- hedging against a replica that hangs, over real HTTP ---------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "ok"
    hits: list[float]

    def do_GET(self) -> None:
        self.hits.append(time.monotonic())
        if self.mode == "hang":
            time.sleep(1.0)
        body = json.dumps(USER).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[list[tuple[str, list[float], type]]]:
    """Three real servers on 127.0.0.1: (url, hits, handler class); set ``.mode``."""
    made = []
    for _ in range(3):
        handler = type("H", (_Handler,), {"hits": [], "mode": "ok"})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        made.append((server, handler))
    yield [(f"http://127.0.0.1:{s.server_port}", h.hits, h) for s, h in made]
    for server, _ in made:
        server.shutdown()
        server.server_close()


def real_manager(urls: list[str], **overrides: object) -> RetryManager:
    seen: list[ev.Event] = []
    manager = RetryManager(
        UpstreamConfig(name="users", base_url=",".join(urls), **overrides),  # type: ignore[arg-type]
        listeners=[seen.append],
    )
    manager.seen = seen  # type: ignore[attr-defined]
    return manager


def test_threads_and_hedges_leave_no_lease_behind(servers):
    """16 threads x 10 calls, hedging on, one replica hung: every place is given back."""
    (a, _, _), (b, _, _), (c, _, c_handler) = servers
    c_handler.mode = "hang"
    manager = real_manager([a, b, c], hedge_after=0.02, deadline=2.0, max_concurrency=16)
    try:

        def calls() -> None:
            for _ in range(10):
                with contextlib.suppress(UpstreamError):
                    manager.get("/users/1")

        with ThreadPoolExecutor(16) as pool:
            for future in [pool.submit(calls) for _ in range(16)]:
                future.result()
        assert eventually(lambda: pending(manager) == {}, patience=3), pending(manager)
    finally:
        manager.close()


# -- retries while an untried host is full --------------------------------------------------


def test_no_backoff_only_when_the_retry_can_go_elsewhere(fleet, make_manager, clock):
    """Two hosts, a at its per-host cap (held by other calls), b answers 503: the call's
    retries all go to b (a is full); ``untried()`` ignored the cap and said "a has not seen
    this call", so none of them backed off: 5 attempts on b back to back."""
    fleet.answers["http://b.test"] = (503, {})
    manager = make_manager(
        base_url="http://a.test,http://b.test", host_max_concurrency=1, backoff_factor=0.1
    )
    held = manager.hosts.pick([manager.hosts.hosts[1]])
    assert held.host.label == "a.test"
    with pytest.raises(UpstreamError):
        manager.get("/users/1")
    assert fleet.seen == ["b.test"] * 5
    assert sum(clock.sleeps) > 0, clock.sleeps


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["http://a?", "http://a#", "http://a,http://b?"])
def test_an_empty_query_or_fragment_is_refused(value):
    """``http://a?`` + ``/users/1`` is ``http://a?/users/1``: every call goes to ``/``."""
    with pytest.raises(ValueError, match="not a base URL"):
        split_hosts(value)


def test_the_last_host_in_rotation_is_never_ejected(fleet, make_manager):
    """Even with outlier_max_ejected_percent=100: with every host failing, calls still go
    to the last one, and the breaker decides (not a refusal saying hosts are busy)."""
    fleet.answers = dict.fromkeys(HOSTS, (503, {}))
    manager = several(
        make_manager, outlier_consecutive_failures=1, outlier_max_ejected_percent=100, breaker=False
    )
    for _ in range(5):
        with pytest.raises(UpstreamError) as raised:
            manager.get("/users/1")
        assert not isinstance(raised.value, UpstreamOverloaded)
    assert sum(host.out(manager._clock()) for host in manager.hosts.hosts) == 2


# -- hostile callers ---------------------------------------------------------------------------


def test_a_request_every_replica_answers_500_ejects_at_most_the_capped_share(make_manager):
    """A request (say one poisoned user id) that every replica answers with a 500 counts
    against the host it hit (5xx, as Envoy's consecutive_5xx; a replica whose database is
    gone answers 500 to everything and must go). A caller can reach that, so the damage is
    bounded: at most the capped share of hosts is out, and other requests still succeed."""
    seen: list[ev.Event] = []
    manager = make_manager(base_url=",".join(HOSTS), breaker=False)
    manager._listeners = (seen.append,)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        for host in HOSTS:
            mocked.add("GET", f"{host}/users/666", status=500, json={"detail": "bug"})
            mocked.add("GET", f"{host}/users/1", json=USER)
        for _ in range(30):
            with pytest.raises(UpstreamError):
                manager.get("/users/666")
        assert all(manager.get("/users/1").status == HTTPStatus.OK for _ in range(10))
    assert len({e.host for e in seen if e.name == ev.HOST_EJECTED}) <= 1


def test_users_504_for_a_callers_passed_deadline_ejects_nobody(fleet, make_manager, clock):
    """Users answers 504 ``deadline_exceeded`` when the X-Request-Timeout-Ms it was sent has
    passed on arrival (users/middleware.py). With the caller's own short deadline binding,
    that says nothing about the host; timeouts are excused in ``_send``, this 504 is not."""
    fleet.answers = dict.fromkeys(HOSTS, (504, {}))
    manager = several(make_manager, outlier_consecutive_failures=1, random=lambda: 0.0)
    seen: list[ev.Event] = []
    manager._listeners = (seen.append,)
    with pytest.raises(UpstreamError):
        manager.get(
            "/users/1",
            deadline=Deadline.after(0.2, clock),
        )
    assert not [e.host for e in seen if e.name == ev.HOST_EJECTED]


def hangs(clock, seconds: float):
    """An answer that takes ``seconds`` of the fake clock, then times out."""

    def answer():
        clock.advance(seconds)
        raise requests.ReadTimeout("cut")

    return answer


def test_callers_short_deadlines_do_not_steer_traffic_to_a_hung_replica(fleet, make_manager, clock):
    """Every caller sends X-Request-Timeout-Ms 300 (a gateway's default, say), tighter than
    read_timeout, and replica c hangs. Each attempt on c is cut by the caller's deadline,
    rightly not counted as c's failure; but the time it went unanswered still raises c's
    cost, or c would stay the cheapest and take its share of calls, each one a 504."""
    fleet.answers["http://c.test"] = hangs(clock, 0.3)
    manager = several(make_manager, random=random.Random(7).random)
    failed = 0
    for _ in range(20):
        try:
            manager.get("/users/1", deadline=Deadline.after(0.3, clock))
        except UpstreamError:
            failed += 1
    assert failed <= 1  # the first call on c, before anything is known of it
    assert fleet.seen.count("c.test") == 1
    assert not any(host.out(clock()) for host in manager.hosts.hosts)  # and nobody ejected
