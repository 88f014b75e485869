"""Hostile callers against both services as ``make serve`` runs them: nginx in front of each
gunicorn (1 worker x 32 threads), production settings, real sockets on loopback.

One test per row of issue 19's table. While the attack is in force a prober sends, one at a
time on fresh connections, ``/healthz`` to both services and an Orders call that goes to
Users; every answer must come back, correct, within ``PROBE_BOUND`` (generous: the exact
figures are ``bench/front_door.py``'s). Then the attack stops sending but keeps its sockets
open, and the server must close every one of them itself: nothing hostile keeps holding a
connection. ``HOSTILE_FRONT=0`` runs the same suite against gunicorn alone (today's ``make
serve`` before the front server): the attack rows then fail, as they should.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import pytest
import requests

from bench.hostile import SLOWLORIS, Hostile
from bench.stack import Service, Stack, free_port
from project.front import CONN_PER_CLIENT, front_command, nginx_binary
from tests.conftest import eventually
from tests.integration.hostile_server import HostileUsers, content_length_not_ascii

pytestmark = pytest.mark.e2e

FRONT = os.environ.get("HOSTILE_FRONT", "1") == "1"
#: Every probe answered within this: an idle machine answers in milliseconds; gunicorn alone
#: under these attacks answers after tens of seconds, or never.
PROBE_BOUND = 5.0
#: The prober's own limit: a probe unanswered by then counts as not answered.
PROBE_TIMEOUT = 15.0
#: How long the prober runs while an attack is in force (shorter than nginx's header timeout,
#: so the attack's first connections are all still open as it probes).
PROBE_SECONDS = 4.0
#: How long the server may take to close every hostile socket once the attack stops sending:
#: nginx's header (5 s) and body (10 s) timeouts, and room for a busy machine.
CLOSE_PATIENCE = 40.0

try:
    nginx_binary()
except FileNotFoundError:
    if os.environ.get("CI"):
        raise RuntimeError(
            "CI must have nginx: scripts/debian_server.sh did not install it"
        ) from None
    pytest.skip("nginx is not installed (make nginx, as root)", allow_module_level=True)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Stack]:
    """Users and Orders as ``make serve`` runs them, shared by the module's tests."""
    s = Stack(tmp_path_factory.mktemp("serve"), {}, "gunicorn", sqlite_template, front=FRONT)
    try:
        yield s
    finally:
        s.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass(frozen=True)
class Probe:
    url: str
    status: int  # 0: no answer
    seconds: float


class Prober:
    """Probes sent one after another, each on a fresh connection, for ``run_for`` seconds."""

    def __init__(self, urls: list[str]) -> None:
        self.urls, self.probes = urls, list[Probe]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for url in self.urls:
                started = time.monotonic()
                try:
                    status = requests.get(url, timeout=PROBE_TIMEOUT).status_code
                except requests.RequestException:
                    status = 0
                self.probes.append(Probe(url, status, time.monotonic() - started))
            self._stop.wait(0.1)

    def run_for(self, seconds: float) -> list[Probe]:
        self._thread.start()
        time.sleep(seconds)
        self._stop.set()
        self._thread.join()
        return self.probes


def probe(serve: Stack, seconds: float = PROBE_SECONDS) -> None:
    """Probe both services while an attack is in force: every probe answered, 200, in time."""
    urls = [
        f"{serve.orders_url}/healthz",
        f"{serve.users_url}/healthz",
        f"{serve.orders_url}/orders/?user_id=1",  # Orders calls Users
    ]
    probes = Prober(urls).run_for(seconds)
    bad = [p for p in probes if p.status != HTTPStatus.OK or p.seconds > PROBE_BOUND]
    assert not bad, f"{len(bad)} of {len(probes)} probes failed or were late: {bad[:6]}"
    assert {p.url for p in probes} == set(urls)


def attack(serve: Stack, port: int, count: int, opening: bytes, drip: bytes = b"") -> None:
    """The row's attack on ``port`` while the prober runs; then every hostile socket must
    be closed by the server, the attack having stopped sending but not left."""
    hostile = Hostile(port, count, opening, drip)
    try:
        probe(serve)
        hostile.stop_sending()
        assert eventually(lambda: hostile.open_count() == 0, CLOSE_PATIENCE), (
            f"{hostile.open_count()} of {count} hostile connections still held"
        )
    finally:
        hostile.close()


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def exchange(port: int, data: bytes, timeout: float = PROBE_TIMEOUT) -> tuple[int, str, bytes]:
    """Send raw ``data``, read the answer; (status, content type, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(fields.get("Content-Length", "0"))
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    return int(lines[0].split()[1]), fields.get("Content-Type", ""), body


def problem_code(content_type: str, body: bytes) -> str | None:
    assert content_type == "application/problem+json", (content_type, body[:200])
    return json.loads(body).get("code")


# --- the rows of issue 19 ------------------------------------------------------------------


def test_sockets_that_send_one_byte_and_stop_do_not_hold_orders(serve):
    """32 sockets, one byte each, then nothing: every other request still answered."""
    attack(serve, port_of(serve.orders_url), 32, b"G")


def test_dripping_headers_do_not_delay_healthz(serve):
    """200 connections dripping a header byte a second: the probes are answered in time."""
    attack(serve, port_of(serve.orders_url), 200, *SLOWLORIS)


def test_dripping_headers_at_users_do_not_fail_orders_calls(serve):
    """The same against Users: Orders' calls to Users are still answered, 200."""
    attack(serve, port_of(serve.users_url), 200, *SLOWLORIS)


def test_posts_with_a_content_length_and_no_body_do_not_hold_orders(serve):
    """32 POSTs announcing 1000 bytes and sending none: every other request answered."""
    head = request_head(
        "POST", "/orders/", "Content-Type: application/json", "Content-Length: 1000"
    )
    attack(serve, port_of(serve.orders_url), 32, head)


def test_a_large_body_is_refused_before_it_is_read(serve):
    """300 MB announced: 413 problem+json from the headers alone, not a byte of it read."""
    head = request_head(
        "POST", "/orders/", "Content-Type: application/json", f"Content-Length: {300 * 2**20}"
    )
    status, content_type, body = exchange(port_of(serve.orders_url), head)
    assert status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert problem_code(content_type, body) == "body_too_large"


def test_an_escape_sequence_in_the_request_line_is_not_logged_raw(serve):
    """ESC bytes in a request line: answered (not a 500), and no log holds them raw."""
    marker = uuid.uuid4().hex
    head = request_head("GET", f"/healthz-{marker}\x1b[2J")
    status, _, _ = exchange(port_of(serve.orders_url), head)
    assert status < HTTPStatus.INTERNAL_SERVER_ERROR
    logs = [serve.orders, serve.users, *serve.front.values()]
    assert eventually(lambda: any(marker in s.log() for s in logs))  # it was logged
    assert not [s.name for s in logs if "\x1b" in s.log()]


def test_deeply_nested_json_is_a_400(serve):
    """``[`` x 1000 then ``]`` x 1000: 400 ``parse_error``, not a 500."""
    response = requests.post(
        f"{serve.orders_url}/orders/",
        data=b"[" * 1000 + b"]" * 1000,
        headers={"Content-Type": "application/json"},
        timeout=PROBE_TIMEOUT,
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("orders", "GET", "/orders/?user_id=1"),
        ("orders", "POST", "/orders/"),
        ("users", "GET", "/users/1"),
    ],
)
def test_a_non_ascii_digit_deadline_is_not_a_500(serve, service, method, path):
    """``X-Request-Timeout-Ms: ²`` (byte 0xB2): a 400, or the header ignored; never a 500."""
    url = serve.orders_url if service == "orders" else serve.users_url
    response = requests.request(
        method,
        f"{url}{path}",
        headers={"X-Request-Timeout-Ms": b"\xb2", "Idempotency-Key": "deadline-b2"},
        json={"user": 1, "product": "Pen"} if method == "POST" else None,
        timeout=PROBE_TIMEOUT,
    )
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.CREATED, HTTPStatus.BAD_REQUEST)


def test_users_answering_a_non_ascii_content_length_is_a_502(tmp_path, sqlite_template):
    """Users answering ``Content-Length: ²`` (``isdigit()`` says yes, ``int()`` no): Orders,
    as ``make serve`` runs it, answers 502 ``users_bad_response``, never a 500. A raw-socket
    Users, since a real one never writes that header."""
    hostile = HostileUsers()
    hostile.mode = content_length_not_ascii
    orders_env = {"USERS_SERVICE_URL": hostile.url}
    stack = Stack(tmp_path, orders_env, "gunicorn", sqlite_template, front=FRONT, shared=False)
    try:
        response = requests.get(f"{stack.orders_url}/orders/?user_id=1", timeout=PROBE_TIMEOUT)
    finally:
        stack.stop()
        hostile.close()
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert problem_code(response.headers["Content-Type"], response.content) == (
        "users_bad_response"
    )


def test_a_query_string_of_1900_fields_is_a_problem(serve):
    """1,900 fields: 400 (Django) or 414 (nginx), problem+json either way."""
    query = "&".join(["user_id=1", *["f=1"] * 1900])
    response = requests.get(f"{serve.orders_url}/orders/?{query}", timeout=PROBE_TIMEOUT)
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_URI_TOO_LONG)
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "args",
    [
        ("fail-next", "1e30"),
        ("error", "--for", "1e15"),
        ("truncate", "--bytes", "1e20"),
        ("slow", "--delay", "1e308"),
    ],
)
def test_fault_parameters_out_of_bounds_are_refused(serve, args):
    """An out-of-bounds fault parameter: a ``CommandError``, and no fault set."""
    try:
        with pytest.raises(RuntimeError) as refused:
            serve.manage("simulate_outage", *args)
        assert "CommandError" in str(refused.value)
        assert "active" not in serve.manage("simulate_outage", "status")
    finally:  # the stack is the module's: a fault set here would fail the other tests
        serve.manage("simulate_outage", "clear")


# --- the front server's own answers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", HTTPStatus.BAD_REQUEST, "bad_request"),
        (request_head("GET", "/healthz", f"X-Big: {'a' * 10_000}"), 431, "header_too_large"),
        (request_head("GET", f"/healthz?{'a' * 10_000}"), 414, "uri_too_long"),
        (request_head("GET", "/_front/bad_request"), HTTPStatus.NOT_FOUND, "not_found"),
    ],
    ids=["garbage", "long-header", "long-uri", "internal-page"],
)
def test_the_front_servers_errors_are_problems(serve, data, status, code):
    """nginx's own errors answer problem+json, in the services' shape, with a stable code."""
    got, content_type, body = exchange(port_of(serve.orders_url), data)
    assert (got, problem_code(content_type, body)) == (status, code)
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["type"].endswith(f":{code}")


def test_a_gunicorn_that_is_not_there_is_a_502_problem(tmp_path):
    """nginx before a closed port: 502 ``bad_gateway`` problem+json, with Retry-After."""
    port = free_port()
    argv = front_command(
        "gone",
        listen=f"127.0.0.1:{port}",
        backends=[f"127.0.0.1:{free_port()}"],
        runtime_root=tmp_path,
    )
    front = Service("gone-nginx", {**os.environ}, tmp_path, port, argv=argv).start()
    try:
        response = requests.get(f"{front.url}/healthz", timeout=PROBE_TIMEOUT)
    finally:
        front.stop()
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert response.json()["code"] == "bad_gateway"
    assert response.headers["Retry-After"] == "1"


def test_one_address_holding_too_many_requests_is_refused(serve):
    """More requests in progress from one address than the limit: 429 problem+json."""
    head = request_head("POST", "/orders/", "Content-Type: application/json", "Content-Length: 10")
    port = port_of(serve.orders_url)
    # A few over the limit: those are refused at once, the rest hold it full.
    hostile = Hostile(port, CONN_PER_CLIENT + 8, head)
    answers: list[tuple[int, str, bytes]] = []
    try:  # nginx counts a connection once it has read its headers: ask until it has
        eventually(
            lambda: answers.append(exchange(port, request_head("GET", "/healthz")))
            or answers[-1][0] != HTTPStatus.OK,
            CLOSE_PATIENCE,
        )
    finally:
        hostile.close()
    status, content_type, body = answers[-1]
    assert (status, problem_code(content_type, body)) == (429, "too_many_connections")
