"""The fault proxy (``users.fault_proxy``) against a tiny real upstream, over real sockets.

Each transport fault as a client sees it at the socket, what reached the upstream, the
connection bound, and the faults as ``simulate_outage`` stores them (hits, rate, the
``OUTAGE_SIMULATION`` switch). Nothing here waits for a timer the test set: conditions
are polled with a generous outer limit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from dashboard.faults import fault_start_from_form
from resilient_http import RetryManager, UpstreamConfig, UpstreamUnavailable
from users.fault_proxy import DatabaseFaults, Fault, FaultProxy, fault_proxies_sync
from users.models import FaultProxyControl, Outage
from users.outages import outage_clear

BODY = b'{"id": 1, "name": "Aaron Apple", "phone": "99"}\n'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
PATIENCE = 20.0  # outer limit for waiting on a condition; never the verdict itself


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)


class _Handler(socketserver.StreamRequestHandler):
    """HTTP/1.1 keep-alive, one canned answer per request; counts requests as they arrive."""

    def handle(self) -> None:
        server: Upstream = self.server  # type: ignore[assignment]
        while line := self.rfile.readline():
            length = 0
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.rfile.read(length)
            with server.lock:
                server.requests.append(line.strip().decode())
            self.wfile.write(RESPONSE)
            self.wfile.flush()


class Upstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[str] = []


class FakeFaults:
    """A fault source the test sets directly; counts the hits it hands out."""

    def __init__(self) -> None:
        self.fault: Fault | None = None
        self.down = False
        self.hits = 0

    def request_fault(self) -> Fault | None:
        if self.fault is not None:
            self.hits += 1
        return self.fault

    def is_down(self) -> bool:
        return self.down

    def announce(self, address: str, token: str) -> None:
        pass  # nobody to tell: the test sets the fault, the poll applies it

    def withdraw(self, address: str) -> None:
        pass


class Running:
    """A proxy serving on its own event loop in a thread, as ``manage.py fault_proxy`` does."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.port = proxy.bind()
        ready = threading.Event()
        self.thread = threading.Thread(
            target=lambda: asyncio.run(proxy.serve(on_ready=ready.set)), daemon=True
        )
        self.thread.start()
        assert ready.wait(PATIENCE), "the proxy did not start"

    def stop(self) -> None:
        if not self.thread.is_alive():
            return  # stopped by the test already
        self.proxy.stop()
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), "the proxy did not stop"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def start_proxy(upstream: Upstream) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(faults: object, **options: object) -> Running:
        options.setdefault("poll_interval", 0.05)
        proxy = FaultProxy(
            listen=("127.0.0.1", 0),
            upstream=upstream.server_address[:2],  # type: ignore[arg-type]
            faults=faults,  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )
        running = Running(proxy)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def faults() -> FakeFaults:
    return FakeFaults()


def request(port: int, path: str = "/users/1", request_id: str = "") -> bytes:
    extra = f"X-Request-ID: {request_id}\r\n" if request_id else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode()


def exchange(port: int, *, timeout: float = PATIENCE) -> tuple[bytes, str]:
    """Send one request on a new connection; everything received, and how it ended."""
    received = b""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionResetError:  # reset before connect() returned: a busy machine's timing
        return received, "reset"
    with sock:
        try:
            sock.sendall(request(port))  # a reset may come before the request is out
            while chunk := sock.recv(65536):
                received += chunk
                if received == RESPONSE:
                    return received, "complete"
        except (ConnectionResetError, BrokenPipeError):
            return received, "reset"
        except TimeoutError:
            return received, "timeout"
    return received, "closed"


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_healthy_requests_pass_unchanged_on_a_kept_alive_connection(start_proxy, faults, upstream):
    proxy = start_proxy(faults)
    with requests.Session() as session:
        answers = [session.get(f"http://127.0.0.1:{proxy.port}/users/{n}") for n in (1, 2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert all(a.content == BODY for a in answers)
    assert upstream.requests == ["GET /users/1 HTTP/1.1", "GET /users/2 HTTP/1.1"]
    assert faults.hits == 0


def test_client_connections_have_nagle_off(start_proxy, faults):
    """Users' runserver sends headers and body apart: with Nagle, ~40 ms stall a call."""
    proxy = start_proxy(faults)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=PATIENCE):
        wait_for(lambda: proxy.proxy.open_connections == 1, "the connection to be accepted")
        (conn,) = proxy.proxy._connections
        sock = conn.writer.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_reset_after_the_request_reached_the_upstream(start_proxy, faults, upstream):
    faults.fault = Fault("reset")
    received, ending = exchange(start_proxy(faults).port)
    assert (received, ending) == (b"", "reset")
    assert len(upstream.requests) == 1  # it arrived, was answered, the answer was lost


def test_reset_after_bytes_cuts_mid_response_with_an_rst(start_proxy, faults, upstream):
    faults.fault = Fault("reset", size=20)
    received, ending = exchange(start_proxy(faults).port)
    assert (received, ending) == (RESPONSE[:20], "reset")


@pytest.mark.parametrize("size", [0, 20, len(RESPONSE) - 5])
def test_truncate_passes_n_bytes_then_closes(start_proxy, faults, upstream, size):
    faults.fault = Fault("truncate", size=size)
    received, ending = exchange(start_proxy(faults).port)
    assert (received, ending) == (RESPONSE[:size], "closed")
    assert len(upstream.requests) == 1


def test_truncate_beyond_the_response_leaves_it_whole(start_proxy, faults):
    faults.fault = Fault("truncate", size=len(RESPONSE) + 100)
    assert exchange(start_proxy(faults).port) == (RESPONSE, "complete")


def test_hang_reads_the_request_and_never_answers(start_proxy, faults, upstream):
    faults.fault = Fault("hang")
    proxy = start_proxy(faults)
    received, ending = exchange(proxy.port, timeout=0.5)  # how long the client waits
    assert (received, ending) == (b"", "timeout")
    assert upstream.requests == []  # read, never forwarded
    assert faults.hits == 1
    wait_for(lambda: proxy.proxy.open_connections == 0, "the hung connection to be let go")


def test_slow_bytes_trickle_every_byte_status_line_included(start_proxy, faults):
    per_second = 100
    faults.fault = Fault("slow-bytes", size=per_second)
    proxy = start_proxy(faults)
    pieces, started = [], time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=PATIENCE) as sock:
        sock.sendall(request(proxy.port))
        while sum(map(len, pieces)) < len(RESPONSE):
            pieces.append(sock.recv(65536))
    elapsed = time.monotonic() - started
    assert b"".join(pieces) == RESPONSE
    assert len(pieces[0]) < len(b"HTTP/1.1 200 OK")  # the status line itself trickles
    # A lower bound only: a busy machine can make it slower, never faster.
    assert elapsed >= (len(RESPONSE) - per_second // 10) / per_second


def test_down_refuses_connections_closes_open_ones_and_recovers(start_proxy, faults):
    proxy = start_proxy(faults)
    idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=PATIENCE)
    wait_for(lambda: proxy.proxy.open_connections == 1, "the connection to be accepted")
    faults.down = True
    wait_for(lambda: refused(proxy.port), "connections to be refused")
    assert idle.recv(1) == b""  # closed, as a dying process's connections are
    idle.close()
    faults.down = False
    wait_for(lambda: not refused(proxy.port), "the proxy to listen again")
    assert exchange(proxy.port) == (RESPONSE, "complete")


def test_connections_beyond_the_limit_are_reset_and_the_limit_frees_up(start_proxy, faults):
    faults.fault = Fault("hang")
    proxy = start_proxy(faults, max_connections=2)
    held = [socket.create_connection(("127.0.0.1", proxy.port), timeout=PATIENCE) for _ in "ab"]
    for sock in held:
        sock.sendall(request(proxy.port))
    wait_for(lambda: faults.hits == 2, "both requests to be held")
    faults.fault = None
    received, ending = exchange(proxy.port)
    assert (received, ending) in {(b"", "reset"), (b"", "closed")}
    held.pop().close()
    wait_for(lambda: proxy.proxy.open_connections == 1, "a held connection to be let go")
    assert exchange(proxy.port) == (RESPONSE, "complete")
    held.pop().close()
    wait_for(lambda: proxy.proxy.open_connections == 0, "every connection to be let go")


def test_a_database_that_fails_means_forwarding_not_a_dead_proxy(start_proxy, faults):
    from django.db import DatabaseError

    class Failing(FakeFaults):
        def request_fault(self) -> Fault | None:
            raise DatabaseError("database is locked")

        def is_down(self) -> bool:
            raise DatabaseError("database is locked")

    proxy = start_proxy(Failing())
    assert exchange(proxy.port) == (RESPONSE, "complete")
    assert exchange(proxy.port) == (RESPONSE, "complete")


def test_upstream_gone_resets_the_client(start_proxy, faults, upstream):
    proxy = start_proxy(faults)
    upstream.shutdown()
    upstream.server_close()
    received, ending = exchange(proxy.port)
    assert (received, ending) in {(b"", "reset"), (b"", "closed")}


def test_one_log_line_per_faulted_request_in_users_shape(start_proxy, faults, caplog):
    logger = logging.getLogger("users.fault_proxy")
    logger.addHandler(caplog.handler)
    try:
        faults.fault = Fault("reset")
        proxy = start_proxy(faults)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=PATIENCE) as sock:
            sock.sendall(request(proxy.port, "/users/7?fromService=order", "abc-123"))
            with pytest.raises(ConnectionResetError):
                sock.recv(1)
        faulted = lambda: [r for r in caplog.records if r.levelno == logging.WARNING]  # noqa: E731
        wait_for(faulted, "the log line")
    finally:
        logger.removeHandler(caplog.handler)
    (record,) = faulted()
    assert record.getMessage() == (
        '"GET /users/7?fromService=order HTTP/1.1" reset after 0 response byte(s) (simulated)'
    )
    assert record.levelname == "WARNING"
    assert record.request_id == "abc-123"


# -- what the retrying client makes of it ----------------------------------------------


def manager(port: int) -> RetryManager:
    config = UpstreamConfig(
        name="users",
        base_url=f"http://127.0.0.1:{port}",
        retries=2,
        backoff_factor=0,
        backoff_jitter=False,
        deadline=PATIENCE,
        breaker=False,
    )
    return RetryManager(config)


def test_reset_is_retried_for_get_and_not_for_a_post_without_a_key(start_proxy, faults, upstream):
    faults.fault = Fault("reset")
    client = manager(start_proxy(faults).port)
    try:
        with pytest.raises(UpstreamUnavailable):
            client.get("/users/1")
        assert len(upstream.requests) == 3  # 1 + 2 retries: GET is idempotent
        with pytest.raises(UpstreamUnavailable):
            client.request("POST", "/users/", json_body={"name": "x"})
        assert len(upstream.requests) == 4  # the POST may have been processed: sent once
    finally:
        client.close()


# -- the fault as simulate_outage stores it ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_hits_are_counted_in_the_fault_row_and_rate_hits_a_fraction(start_proxy, upstream):
    call_command("simulate_outage", "reset", "--rate", "0.5", verbosity=0)
    proxy = start_proxy(DatabaseFaults(rng=random.Random(11)))
    endings = [exchange(proxy.port)[1] for _ in range(40)]
    resets = endings.count("reset")
    assert set(endings) == {"reset", "complete"}
    assert 8 <= resets <= 32  # seeded: 50 % of 40, give or take
    assert Outage.objects.get().hits == resets
    assert len(upstream.requests) == 40  # a reset request still reached Users


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "mode"), [(["hang"], "hang"), (["truncate", "--bytes", "3"], "truncate")]
)
def test_transport_faults_come_from_the_row(start_proxy, upstream, args, mode):
    call_command("simulate_outage", *args, verbosity=0)
    fault = DatabaseFaults().request_fault()
    assert fault == Fault(mode, 3 if mode == "truncate" else 0)


@pytest.mark.django_db(transaction=True)
def test_http_faults_and_no_simulation_pass_through(settings):
    call_command("simulate_outage", "error", verbosity=0)
    assert DatabaseFaults().request_fault() is None  # Users' middleware serves it
    call_command("simulate_outage", "down", verbosity=0)
    assert DatabaseFaults().is_down()
    settings.OUTAGE_SIMULATION = False
    assert not DatabaseFaults().is_down()
    assert DatabaseFaults().request_fault() is None
    assert Outage.objects.get().hits == 0


@pytest.mark.django_db(transaction=True)
def test_down_from_the_row_refuses_and_clear_listens_again(start_proxy):
    call_command("simulate_outage", "down", verbosity=0)
    proxy = start_proxy(DatabaseFaults())
    wait_for(lambda: refused(proxy.port), "connections to be refused")
    call_command("simulate_outage", "clear", verbosity=0)
    wait_for(lambda: not refused(proxy.port), "the proxy to listen again")
    assert exchange(proxy.port) == (RESPONSE, "complete")


# -- in force when simulate_outage returns -------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("poll_interval", [0.25, 3600.0], ids=["deployed-poll", "no-poll"])
def test_each_fault_is_in_force_for_the_first_request_after_the_command(
    start_proxy, upstream, poll_interval
):
    """The tour (docs/tutorial.md) at a person's speed: ``down``, then ``reset``, then a
    request at once.

    With the fault learnt from a poll, the request right after ``reset`` was still refused
    (or one right after ``down`` still accepted). Repeated, so that a window shows up.
    """
    proxy = start_proxy(DatabaseFaults(), poll_interval=poll_interval)
    for attempt in range(15):
        kept = socket.create_connection(("127.0.0.1", proxy.port), timeout=PATIENCE)
        kept.sendall(request(proxy.port))
        assert kept.recv(len(RESPONSE), socket.MSG_WAITALL) == RESPONSE
        call_command("simulate_outage", "down", verbosity=0)
        assert refused(proxy.port), f"attempt {attempt}: down, yet a connection was accepted"
        assert kept.recv(1) == b"", "an open connection outlived down"
        kept.close()
        call_command("simulate_outage", "reset", verbosity=0)
        seen = len(upstream.requests)
        assert exchange(proxy.port) == (b"", "reset"), f"attempt {attempt}"
        assert len(upstream.requests) == seen + 1  # reached Users, then reset
        call_command("simulate_outage", "clear", verbosity=0)
        assert exchange(proxy.port) == (RESPONSE, "complete")


@pytest.mark.django_db(transaction=True)
def test_the_page_and_a_plain_clear_wait_for_the_proxy_too(start_proxy):
    proxy = start_proxy(DatabaseFaults(), poll_interval=3600.0)
    for _ in range(5):
        assert fault_start_from_form({"mode": "down"})[1] == []
        assert refused(proxy.port)
        outage_clear()
        assert not refused(proxy.port)


@pytest.mark.django_db(transaction=True)
def test_a_proxy_registers_while_it_runs_and_a_dead_ones_registration_is_dropped(
    start_proxy, closed_port
):
    proxy = start_proxy(DatabaseFaults())
    assert FaultProxyControl.objects.count() == 1
    FaultProxyControl.objects.create(address=f"127.0.0.1:{closed_port}", token="gone")  # noqa: S106
    assert fault_proxies_sync() == []
    assert FaultProxyControl.objects.count() == 1  # the live proxy's, answered
    proxy.stop()
    assert not FaultProxyControl.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_wrong_token_gets_no_answer_and_changes_nothing(start_proxy):
    proxy = start_proxy(DatabaseFaults(), poll_interval=3600.0)
    control = FaultProxyControl.objects.get()
    Outage.objects.create(mode="down", started_at=timezone.now())  # written, not announced
    host, _, port = control.address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=PATIENCE) as sock:
        sock.sendall(b"not-the-token\n")
        assert sock.recv(16) == b""
    assert not refused(proxy.port)


# -- several Users replicas ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_proxy_obeys_its_replicas_fault_else_the_one_for_all():
    call_command("simulate_outage", "truncate", "--bytes", "5", verbosity=0)
    call_command("simulate_outage", "--replica", "2", "hang", verbosity=0)
    call_command("simulate_outage", "--replica", "3", "down", verbosity=0)
    assert DatabaseFaults(replica=1).request_fault() == Fault("truncate", 5)
    assert DatabaseFaults(replica=2).request_fault() == Fault("hang")
    assert [DatabaseFaults(replica=r).is_down() for r in (1, 2, 3)] == [False, False, True]
    call_command("simulate_outage", "--replica", "2", "clear", verbosity=0)
    assert DatabaseFaults(replica=2).request_fault() == Fault("truncate", 5)


@pytest.mark.django_db(transaction=True)
def test_down_for_one_replica_refuses_at_its_proxy_only_the_moment_the_command_returns(
    start_proxy,
):
    first, second = (start_proxy(DatabaseFaults(replica=r), poll_interval=3600.0) for r in (1, 2))
    call_command("simulate_outage", "--replica", "2", "down", verbosity=0)
    assert refused(second.port)
    assert exchange(first.port) == (RESPONSE, "complete")
    call_command("simulate_outage", "--replica", "1", "reset", verbosity=0)
    assert exchange(first.port) == (b"", "reset")
    assert refused(second.port)
    call_command("simulate_outage", "clear", verbosity=0)
    assert exchange(second.port) == (RESPONSE, "complete")
    assert exchange(first.port) == (RESPONSE, "complete")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replica", "0"], "--replica must be 1..99; got 0"),
        (["--replica", "\u00b2"], "argument --replica: invalid int value: '\u00b2'"),
        (["--max-connections", "\u0661\u0662"], "argument --max-connections: invalid int"),
        (["--listen", "127.0.0.1:\u00b2"], "'127.0.0.1:\u00b2' is not HOST:PORT"),
    ],
)
def test_the_commands_bad_arguments_are_one_line(argv, message):
    with pytest.raises(CommandError, match=re.escape(message)) as raised:
        call_command("fault_proxy", *argv)
    assert "\n" not in str(raised.value)


@pytest.mark.django_db(transaction=True)
def test_a_proxy_that_does_not_answer_is_named_and_kept(monkeypatch, caplog):
    """A stalled proxy (here: a listener that never answers) costs the command a bounded
    wait and a warning; its registration stays, since it may yet be alive.
    """
    monkeypatch.setattr("users.fault_proxy.SYNC_TIMEOUT", 0.2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        FaultProxyControl.objects.create(address=address, token="t")  # noqa: S106
        logger = logging.getLogger("users.fault_proxy")  # it does not propagate
        logger.addHandler(caplog.handler)
        try:
            assert fault_proxies_sync() == [address]
        finally:
            logger.removeHandler(caplog.handler)
    assert f"fault proxy at {address} did not confirm" in caplog.text
    assert FaultProxyControl.objects.filter(address=address).exists()
