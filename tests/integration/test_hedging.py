"""Hedging against a real socket server that holds the requests it is told to hold.

A held request is answered only when its client goes away: the server then records that
its connection was closed, which is how the tests see a losing attempt cancelled. No test
waits for a time it set itself to pass: ``hedge_after`` only has to elapse *before* a
request the server holds forever.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from resilient_http import (
    RetryManager,
    UpstreamConfig,
    UpstreamTimeout,
    UpstreamUnavailable,
    events,
)
from tests.conftest import USER, eventually

BODY = json.dumps(USER).encode()


class HoldingServer:
    """Answers 200 with a user, except the requests numbered in ``hold`` (1-based), which it
    holds until the client closes the connection. Keep-alive: many requests per connection."""

    def __init__(
        self,
        hold: set[int] | None = None,
        hold_all: bool = False,
        answers: dict[int, tuple[float, int]] | None = None,
    ) -> None:
        self.hold = hold or set()
        self.answers = answers or {}  # request number -> (delay, status)
        self.hold_all = hold_all
        self.requests = 0
        self.connections = 0
        self.closed_while_held: list[int] = []
        self.lines: list[str] = []  # each request line, in arrival order
        self.heads: list[dict[str, str]] = []  # each request's header fields (lower-case names)
        self.bodies: list[bytes] = []  # and its body (by Content-Length)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError), sock:  # a client that went away: nothing to do
            self._exchange(sock)

    def _exchange(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            line, *lines = head.decode("latin-1").split("\r\n")
            fields = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in lines)}
            length = int(fields.get("content-length", "0"))
            while len(buffer) < length and (chunk := sock.recv(65536)):
                buffer += chunk
            body, buffer = buffer[:length], buffer[length:]
            with self._lock:
                self.requests += 1
                number = self.requests
                self.lines.append(line)
                self.heads.append(fields)
                self.bodies.append(body)
            if self.hold_all or number in self.hold:
                self._hold(sock, number)
                return
            delay, status = self.answers.get(number, (0.0, 200))
            time.sleep(delay)
            head = (
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n".encode()
                + b"Content-Length: "
                + str(len(BODY)).encode()
                + b"\r\n\r\n"
            )
            sock.sendall(head + BODY)

    def _hold(self, sock: socket.socket, number: int) -> None:
        """Read (and drop) whatever comes, until the client closes: then record it."""
        end = time.monotonic() + 30
        while time.monotonic() < end:
            readable, _, _ = select.select([sock], [], [], 1)
            if readable and sock.recv(65536) == b"":
                with self._lock:
                    self.closed_while_held.append(number)
                return

    def close(self) -> None:
        self._stop = True
        self._listener.close()


def two_hosts(server: HoldingServer) -> list[str]:
    """Two host labels for the one server: a fleet of two, as the balancer sees it."""
    return [f"127.0.0.1:{server.port}", f"localhost:{server.port}"]


def base_url(hosts: list[str]) -> str:
    return ",".join(f"http://{h}" for h in hosts)


@pytest.fixture
def recorded() -> list[events.Event]:
    return []


@pytest.fixture
def make(recorded) -> Iterator:
    made: list[tuple[RetryManager, HoldingServer]] = []

    def build(server: HoldingServer, **overrides: object) -> RetryManager:
        config = UpstreamConfig(
            **{  # type: ignore[arg-type]
                "name": "users",
                "base_url": f"http://127.0.0.1:{server.port}",
                "hedge_after": 0.05,
                "deadline": 2.0,
                "read_timeout": 2.0,
                "backoff_jitter": False,
                **overrides,
            }
        )
        manager = RetryManager(config, listeners=[recorded.append])
        made.append((manager, server))
        return manager

    yield build
    for manager, server in made:
        manager.close()
        server.close()


def test_the_hedge_wins_and_the_held_attempt_is_cancelled(make, recorded):
    server = HoldingServer(hold={1})
    manager = make(server, deadline=60, read_timeout=60)  # only the cancel can shut it soon
    before = manager.budget.available()
    response = manager.get("/users/1")
    assert response.status == 200
    assert [(a.number, a.outcome) for a in response.history] == [(1, "hedge_lost"), (2, "200")]
    assert eventually(lambda: server.closed_while_held == [1])  # its connection shut
    assert server.requests == 2
    assert [e.name for e in recorded] == [events.HEDGE_SENT, events.CALL_SUCCEEDED]
    assert recorded[0].attempt == 2
    # The hedge took a retry from the budget (and the request earned 0.2 of one).
    assert manager.budget.available() == pytest.approx(before + 0.2 - 1)
    # The cancelled connection is shut, not pooled: the next call is served as usual.
    assert manager.get("/users/1").status == 200
    assert server.requests == 3


def test_no_hedge_for_a_post_without_an_idempotency_key(make, recorded):
    server = HoldingServer(hold={1})
    manager = make(server, deadline=0.5)
    with pytest.raises(UpstreamTimeout):
        manager.request("POST", "/users/1", json_body={})
    assert server.requests == 1
    assert events.HEDGE_SENT not in [e.name for e in recorded]


def test_a_keyed_post_is_hedged(make):
    server = HoldingServer(hold={1})
    manager = make(server)
    response = manager.request("POST", "/users/1", json_body={}, headers={"Idempotency-Key": "k"})
    assert response.status == 200
    assert server.requests == 2


def test_hedges_never_run_past_the_deadline(make, recorded):
    """Both attempts held: the call ends at its deadline, 504, both connections shut."""
    server = HoldingServer(hold_all=True)
    manager = make(server, deadline=0.5, retries=4)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        manager.get("/users/1")
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 1.0  # the promise, with slack for a loaded machine
    assert eventually(lambda: sorted(server.closed_while_held) == [1, 2])
    assert [e.name for e in recorded].count(events.HEDGE_SENT) == 1


def test_no_hedge_when_the_budget_is_spent(make, recorded):
    server = HoldingServer(hold={1})
    manager = make(server, deadline=0.5, retry_budget=0.0, budget_min_retries_per_second=0.0)
    with pytest.raises(UpstreamTimeout):
        manager.get("/users/1")
    assert server.requests == 1
    assert events.HEDGE_SENT not in [e.name for e in recorded]


def test_hedging_off_sends_one_attempt_at_a_time(make, recorded):
    server = HoldingServer(hold={1})
    manager = make(server, hedge_after=0.0, deadline=0.5, retries=0)
    with pytest.raises(UpstreamTimeout):
        manager.get("/users/1")
    assert server.requests == 1


def test_a_hedged_pair_counts_as_two_attempts(make, recorded):
    """retries=1: two attempts in all. The first is slow and fails, its hedge fails at
    once: the call is over, whichever failed last; no third request."""
    server = HoldingServer(answers={1: (0.3, 503), 2: (0.0, 503)})
    manager = make(server, retries=1)
    with pytest.raises(UpstreamUnavailable):
        manager.get("/users/1")
    assert server.requests == 2
    assert all(e.attempt is None or e.attempt <= 2 for e in recorded)


def test_an_attempt_stuck_out_of_the_watchdogs_reach_does_not_hold_the_call(make, monkeypatch):
    """A worker stuck where no socket can be shut (name resolution, say): the call still
    ends at its deadline, and the stuck attempt's answer is never used."""
    server = HoldingServer(hold_all=True)
    manager = make(server, deadline=0.5)
    stuck, send = threading.Event(), manager.transport.send
    calls = []

    def send_or_stick(request, guard, deadline, base_url):
        calls.append(1)
        if len(calls) == 2:
            stuck.wait(30)  # ignores the guard, as getaddrinfo would
        return send(request, guard, deadline, base_url)

    monkeypatch.setattr(manager.transport, "send", send_or_stick)
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout):
            manager.get("/users/1")
        assert time.monotonic() - started < 0.5 + 1.0  # the promise, with slack
    finally:
        stuck.set()


def test_a_hedges_429_does_not_end_the_race_while_the_first_may_still_answer(make):
    """The hedge is told 429 (that server is rate-limiting us); the first attempt, slower,
    answers 200: the call gets the 200, not a 503 for the 429."""
    server = HoldingServer(answers={1: (0.3, 200), 2: (0.0, 429)})
    manager = make(server)
    assert manager.get("/users/1").status == 200
    assert server.requests == 2


def test_a_hedge_is_the_same_request_and_says_so(make, recorded):
    """The hedge carries the query string and headers of the first attempt (a hedge of
    another request would be a bug no status shows), and its event names the attempt."""
    server = HoldingServer(hold={1})
    manager = make(server)
    response = manager.request("GET", "/users/1", params={"fromService": "order"})
    assert response.status == 200
    assert server.lines == ["GET /users/1?fromService=order HTTP/1.1"] * 2
    (hedge,) = [e for e in recorded if isinstance(e, events.HedgeSent)]
    assert (hedge.method, hedge.path, hedge.attempt, hedge.max_attempts) == (
        "GET",
        "/users/1",
        2,
        5,
    )
    assert 0.05 <= hedge.elapsed < 2.0
    assert hedge.describe().startswith(
        "users GET /users/1 attempt 2/5: hedge sent, no answer after"
    )


def test_a_hedged_post_carries_the_same_body_and_headers(make, recorded):
    """A keyed POST's hedge is the same request: its body, its Idempotency-Key and the
    caller's headers (without them the upstream would create a second order)."""
    server = HoldingServer(hold={1})
    hosts = two_hosts(server)
    manager = make(server, base_url=base_url(hosts))
    response = manager.request(
        "POST",
        "/orders/",
        json_body={"user": 1, "product": "Pen"},
        headers={"Idempotency-Key": "k-1", "X-Request-ID": "r-1"},
    )
    assert response.status == 200
    assert server.bodies == [b'{"user": 1, "product": "Pen"}'] * 2
    assert [h["idempotency-key"] for h in server.heads] == ["k-1", "k-1"]
    assert [h["x-request-id"] for h in server.heads] == ["r-1", "r-1"]
    (hedge,) = [e for e in recorded if isinstance(e, events.HedgeSent)]
    assert hedge.host in hosts  # the host it went to, named
    lost = response.history[0]
    assert (lost.number, lost.outcome) == (1, "hedge_lost")
    assert 0.05 <= lost.elapsed < 2.0  # held from its start until the hedge won


def test_a_hedged_calls_failed_attempt_still_counts_for_its_host(make):
    """An attempt of a race that failed on its own (not cancelled by the race's end) tells
    its host, so outlier detection sees a bad replica behind hedged calls too."""
    server = HoldingServer(answers={1: (0.0, 503)})
    manager = make(server, base_url=base_url(two_hosts(server)))
    response = manager.get("/users/1")
    assert [a.outcome for a in response.history] == ["503", "200"]
    seen = {h["label"]: h["recent"] for h in manager.hosts.snapshot()}
    assert sorted(seen.values()) == [["200"], ["503"]]


def test_a_hedge_that_lost_counts_against_no_host(make):
    """The attempt the race cancelled says nothing of its host's health: no failure."""
    server = HoldingServer(hold={1})
    manager = make(server, base_url=base_url(two_hosts(server)))
    assert manager.get("/users/1").status == 200
    assert eventually(lambda: server.closed_while_held == [1])
    assert [h.consecutive for h in manager.hosts.hosts] == [0, 0]
    assert sorted(h["recent"] for h in manager.hosts.snapshot()) == [[], ["200"]]


def test_after_a_hedged_call_has_tried_every_host_the_retry_backs_off(make):
    """Each attempt of a race is a host tried: once both hosts failed, the third attempt
    waits its backoff instead of going "elsewhere" at once (there is no elsewhere left)."""
    server = HoldingServer(answers={1: (0.0, 503), 2: (0.0, 503)})
    manager = make(server, base_url=base_url(two_hosts(server)), backoff_factor=0.01)
    response = manager.get("/users/1")
    assert [a.outcome for a in response.history] == ["503", "503", "200"]
    first, second, _ = (a.wait for a in response.history)
    assert first == 0.0  # another host had not seen the call: at once
    assert second is not None
    assert second > 0  # both had: the backoff
