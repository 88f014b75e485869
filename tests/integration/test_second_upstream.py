"""A second upstream is one settings entry: Payments, declared in tests/settings.py only,
served by a real HTTP server, called through ``upstream("payments")`` from a test view.

Deadline, retries with the statuses its own configuration lists, budget, breaker,
bulkhead, events and metrics labelled ``payments``, problem details with ``payments_*``
codes and ``Retry-After``, the request ID forwarded, and the test reset: none of it
written for Payments.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from project.env import upstream_settings
from resilient_http import set_testing
from resilient_http.registry import reset_upstreams, upstream

pytestmark = pytest.mark.urls("tests.second_upstream")

CHARGE = {"id": 7, "amount": 1200}


class Payments(http.server.ThreadingHTTPServer):
    """Answers from a script: each entry ``(status, headers, body)``, or ``"hold"`` (wait
    until released), used in order; the last one repeats. Records the headers it saw."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[Any] = [(200, {}, CHARGE)]
        self.seen: list[dict[str, str]] = []
        self.release = threading.Event()
        self.held = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def next_answer(self) -> Any:
        with self.lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Payments

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))
        answer = self.server.next_answer()
        if answer == "hold":
            self.server.held.set()
            self.server.release.wait(10)
            answer = (200, {}, CHARGE)
        status, headers, body = answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def payments(settings) -> Iterator[Any]:
    """The server, and ``configure(**knobs)`` pointing the ``payments`` entry at it."""
    server = Payments()
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()

    def configure(**knobs: object) -> Payments:
        settings.UPSTREAMS = {
            **settings.UPSTREAMS,
            "payments": {**settings.UPSTREAMS["payments"], "base_url": server.url, **knobs},
        }
        return server

    configure()
    set_testing(True)  # backoff computed, not slept: stamina's switch
    yield configure
    set_testing(False)
    server.release.set()
    server.shutdown()
    server.server_close()


def problem(response) -> dict[str, Any]:
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


def attempts(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "upstream_attempts_total", {"upstream": "payments", "outcome": outcome}
    )
    return value or 0.0


def test_the_entry_reads_its_own_prefix(monkeypatch):
    monkeypatch.setenv("PAYMENTS_DEADLINE", "1.5")
    monkeypatch.setenv("PAYMENTS_RETRY_STATUSES", "500,503")
    monkeypatch.setenv("PAYMENTS_SERVICE_URL", "http://payments.internal:8300")
    entry = upstream_settings("PAYMENTS", base_url="http://127.0.0.1:9")
    assert entry["name"] == "payments"
    assert entry["deadline"] == 1.5
    assert entry["retry_statuses"] == frozenset({500, 503})
    assert entry["base_url"] == "http://payments.internal:8300"


def test_retries_then_answers_with_the_request_id_forwarded(payments, caplog):
    server = payments()
    server.script = [(503, {}, {}), (200, {}, CHARGE)]
    before = attempts("503")
    logger = logging.getLogger("resilient_http")
    logger.addHandler(caplog.handler)  # the project's loggers do not propagate
    try:
        response = Client().get("/charges/7", HTTP_X_REQUEST_ID="pay-1")
    finally:
        logger.removeHandler(caplog.handler)
    assert response.status_code == 200
    assert response.json() == CHARGE
    assert [seen.get("X-Request-ID") for seen in server.seen] == ["pay-1", "pay-1"]
    assert all("X-Request-Timeout-Ms" in seen for seen in server.seen)
    assert attempts("503") == before + 1  # metrics, labelled by upstream
    assert "payments GET /charges/7 attempt 1/5: 503" in caplog.text  # the same log lines


def test_the_retried_statuses_are_its_own(payments):
    server = payments(retry_statuses=frozenset({500}))
    server.script = [(500, {}, {}), (200, {}, CHARGE)]
    assert Client().get("/charges/7").status_code == 200  # Users would not retry a 500
    server.script = [(503, {}, {}), (200, {}, CHARGE)]
    assert problem(Client().get("/charges/7"))["code"] == "payments_unavailable"


def test_failures_are_problems_with_its_own_codes(payments, closed_port):
    server = payments(retries=1)
    server.script = [(503, {"Retry-After": "7"}, {})]
    response = Client().get("/charges/7")
    assert (response.status_code, problem(response)["code"]) == (503, "payments_unavailable")
    assert problem(response)["detail"].startswith("The Payments service is unavailable")
    assert response["Retry-After"] == "7"

    payments(base_url=f"http://127.0.0.1:{closed_port}")
    response = Client().get("/charges/7")
    assert (response.status_code, problem(response)["code"]) == (503, "payments_unavailable")
    assert response["Retry-After"] == "1"


def test_a_hung_payments_is_a_504_at_its_deadline(payments):
    server = payments(deadline=0.3, retries=0)
    server.script = ["hold"]
    response = Client().get("/charges/7")
    assert (response.status_code, problem(response)["code"]) == (504, "payments_timeout")


def test_an_answer_that_is_not_http_is_a_502(payments, settings):
    listener = __import__("socket").create_server(("127.0.0.1", 0))

    def babble() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.recv(65536)
            sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" * 3)

    threading.Thread(target=babble, daemon=True).start()
    payments(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}", retries=0)
    response = Client().get("/charges/7")
    listener.close()
    assert (response.status_code, problem(response)["code"]) == (502, "payments_bad_response")


def test_the_breaker_opens_and_answers_with_its_own_code(payments):
    server = payments(retries=0, breaker_consecutive_failures=2, breaker_reset=60)
    server.script = [(502, {}, {})]
    for _ in range(2):
        assert problem(Client().get("/charges/7"))["code"] == "payments_unavailable"
    response = Client().get("/charges/7")
    assert (response.status_code, problem(response)["code"]) == (503, "payments_circuit_open")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert len(server.seen) == 2  # the third call sent nothing
    assert upstream("users").breaker.state.value == "closed"  # Users' is its own


def test_the_bulkhead_refuses_the_call_over_its_limit(payments):
    server = payments(max_concurrency=1)
    server.script = ["hold", (200, {}, CHARGE)]
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(Client().get("/charges/7").status_code))
    thread.start()
    assert server.held.wait(10)
    response = Client().get("/charges/7")
    server.release.set()
    thread.join(10)
    assert (response.status_code, problem(response)["code"]) == (503, "payments_overloaded")
    assert response["Retry-After"] == "1"
    assert first == [200]


def test_reset_forgets_its_state(payments):
    payments(breaker_consecutive_failures=1, retries=0, base_url="http://127.0.0.1:9")
    Client().get("/charges/7")
    assert upstream("payments").breaker.state.value == "open"
    reset_upstreams()  # what the suite's autouse fixture does between tests
    assert upstream("payments").breaker.state.value == "closed"
