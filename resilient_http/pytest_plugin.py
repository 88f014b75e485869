"""pytest fixtures for code that calls upstreams; registered on install (``pytest11``).

``resilient_testing``: retries without sleeping for one test (``set_testing``).
``upstream_server``: a real HTTP server on loopback that answers what the test scripts,
in order, and records what it was sent. Put its ``url`` in ``UPSTREAMS`` (pytest-django's
``settings`` fixture: the client is rebuilt on the change)::

    def test_a_retry(settings, upstream_server, resilient_testing):
        upstream_server.script(503, (200, {"id": 7}))
        settings.UPSTREAMS = {"payments": {"base_url": upstream_server.url}}
        assert upstream("payments").get("/charges/7").json() == {"id": 7}
        assert [r.path for r in upstream_server.requests] == ["/charges/7"] * 2
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from .testing import is_testing, set_testing

#: An answer: a status, or (status, body) or (status, body, headers); a body that is not
#: ``bytes`` is sent as JSON.
Reply = int | tuple[int, Any] | tuple[int, Any, Mapping[str, str]]


@dataclass(frozen=True)
class Slow:
    """``Slow(2.0, 200)``: the answer after ``seconds`` (a read timeout, a deadline, a
    hedge to test); the server thread waits, the others go on."""

    seconds: float
    answer: Reply


Answer = Reply | Slow


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # with the query string
    headers: Mapping[str, str]
    body: bytes


class UpstreamServer:
    """A scripted upstream: each request takes the next answer; the last one repeats."""

    def __init__(self) -> None:
        self._answers: list[Answer] = [(200, {})]
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            daemon=True,  # quick to stop
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; the last one repeats."""
        with self._lock:
            self._answers = list(answers) or [(200, {})]

    def next_answer(self, received: Received) -> tuple[int, bytes, Mapping[str, str]]:
        with self._lock:
            self.requests.append(received)
            answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        if isinstance(answer, Slow):
            time.sleep(answer.seconds)
            answer = answer.answer
        if isinstance(answer, int):
            answer = (answer, None)
        status, body = answer[0], answer[1]
        headers: Mapping[str, str] = answer[2] if len(answer) > 2 else {}  # type: ignore[misc]
        if not isinstance(body, bytes):
            body = b"" if body is None else json.dumps(body).encode()
        return status, body, headers

    def __enter__(self) -> UpstreamServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(server: UpstreamServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real upstream

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received = Received(
                self.command,
                self.path,
                CaseInsensitiveDict(self.headers.items()),
                self.rfile.read(length),
            )
            status, body, headers = server.next_answer(received)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the test asserts on ``requests``

    return Handler


@pytest.fixture
def upstream_server() -> Iterator[UpstreamServer]:
    server = UpstreamServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def resilient_testing() -> Iterator[None]:
    was = is_testing()
    set_testing(True)
    try:
        yield
    finally:
        set_testing(was)
