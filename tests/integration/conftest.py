"""Fixtures for tests over real HTTP: Users served by ``live_server``, Orders calling it."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from users.migrations import _seed
from users.models import Outage


@pytest.fixture
def tutorial_users(transactional_db: None) -> None:
    """The tutorial's users; transactional tests flush the data migration's rows."""
    _seed.seed_tutorial_users()


@pytest.fixture
def orders_client() -> APIClient:
    return APIClient()


UsersSetup = Callable[..., None]


@pytest.fixture
def users_upstream(settings, live_server, tutorial_users) -> UsersSetup:
    """``users_upstream(retries=1, ...)``: point Orders at the live Users server with
    small timeouts and backoff, so failures resolve in a fraction of a second.
    """

    def configure(**overrides: object) -> None:
        settings.UPSTREAMS = {
            "users": {
                **settings.UPSTREAMS["users"],
                "base_url": live_server.url,
                "connect_timeout": 0.5,
                "read_timeout": 0.5,
                "retries": 2,
                "backoff_factor": 0.01,
                "deadline": 3.0,
                **overrides,
            }
        }

    configure()
    return configure


def outage(*args: str) -> Outage | None:
    """Run ``simulate_outage`` as a user would, return the stored fault."""
    call_command("simulate_outage", *args)
    return Outage.objects.filter(pk=Outage.SINGLETON).first()


class _Canned(http.server.BaseHTTPRequestHandler):
    status = 200
    content_type = "application/json"
    body = b""
    location = ""

    on_request = None

    def do_GET(self) -> None:
        if self.on_request is not None:
            type(self).on_request(self.headers.get("X-Request-ID"))
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        if self.location:
            self.send_header("Location", self.location)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned_users(settings) -> Iterator[Callable[..., None]]:
    """A real HTTP server that answers every request with one canned response:
    ``canned_users(body=b"...", content_type=..., status=...)`` points Orders at it.
    """
    server: http.server.ThreadingHTTPServer | None = None

    def serve(**attrs: object) -> None:
        nonlocal server
        if "on_request" in attrs:  # a plain function, not a method of the handler
            attrs["on_request"] = staticmethod(attrs["on_request"])
        handler = type("Handler", (_Canned,), attrs)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # a short poll: shutdown() waits for it, and 0.5 s (the default) per test adds up
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        settings.UPSTREAMS = {
            "users": {
                **settings.UPSTREAMS["users"],
                "base_url": f"http://127.0.0.1:{server.server_port}",
                "retries": 0,
            }
        }

    yield serve
    if server is not None:
        server.shutdown()
        server.server_close()
