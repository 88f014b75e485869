"""One pooled session per upstream: keep-alive across calls, shared safely by threads."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from resilient_http import RetryManager, UpstreamBadResponse, UpstreamConfig, set_testing
from resilient_http.registry import upstream

BODY = b'{"id": 1, "name": "Aaron Apple", "phone": "99992222"}'
BIG = b"x" * (2 * 1024 * 1024)  # over the 1 MiB cap


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep connections open between requests
    connections: set[tuple[str, int]]
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.connections.add(self.client_address)
        body = BIG if self.path.startswith("/big") else BODY
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, set[tuple[str, int]]]]:
    connections: set[tuple[str, int]] = set()
    handler = type("Handler", (_KeepAlive,), {"connections": connections})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", connections
    httpd.shutdown()
    httpd.server_close()


def test_sequential_calls_reuse_one_connection(server):
    url, connections = server
    manager = RetryManager(UpstreamConfig(name="users", base_url=url), listeners=[])
    for _ in range(20):
        assert manager.get("/users/1").status == 200
    manager.close()
    assert len(connections) == 1  # the tutorial's Session-per-call would open 20


def test_threads_share_the_pool_without_errors(server):
    url, connections = server
    manager = RetryManager(UpstreamConfig(name="users", base_url=url, pool_maxsize=8), listeners=[])
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: manager.get("/users/1"), range(200)))
    manager.close()
    assert all(r.status == 200 and r.json()["id"] == 1 for r in results)
    assert len(connections) <= 8


def test_orders_has_one_client_per_process(settings, server):
    url, _ = server
    settings.UPSTREAMS = {"users": {**settings.UPSTREAMS["users"], "base_url": url}}
    first = upstream("users")
    assert upstream("users") is first
    assert upstream("users").session is first.session


def pooled_sockets(manager: RetryManager) -> int:
    pools = manager.session.get_adapter("http://x").poolmanager.pools
    return sum(
        conn is not None and conn.sock is not None
        for key in list(pools.keys())
        for conn in pools[key].pool.queue
    )


def test_a_half_read_response_is_closed_not_pooled(server):
    """A body refused half-way (over the cap) leaves unread bytes on the connection: it is
    closed, never handed to the next call."""
    url, connections = server
    manager = RetryManager(UpstreamConfig(name="users", base_url=url, retries=0), listeners=[])
    assert manager.get("/users/1").status == 200
    assert pooled_sockets(manager) == 1  # a fully read answer: kept alive
    with pytest.raises(UpstreamBadResponse):
        manager.get("/big")
    assert pooled_sockets(manager) == 0
    assert manager.get("/users/1").status == 200
    manager.close()
    assert len(connections) == 2


class _FailsEveryOther(_KeepAlive):
    """503 to every other request; records which connection carried each."""

    seen: list[tuple[int, tuple[str, int]]]

    def do_GET(self) -> None:
        with self.lock:
            status = 503 if len(self.seen) % 2 == 0 else 200
            self.seen.append((status, self.client_address))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


def test_a_retry_never_rides_the_connection_that_carried_the_failure():
    """Behind one URL (a TCP load balancer), the retry after a 503 goes out on a new
    connection, which the balancer may place on another replica: the pooled connection
    that carried the 503 would take it straight back to the bad one."""
    seen: list[tuple[int, tuple[str, int]]] = []
    handler = type("Handler", (_FailsEveryOther,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}"
    manager = RetryManager(UpstreamConfig(name="users", base_url=url), listeners=[])
    set_testing(True)  # no backoff sleeps
    try:
        for _ in range(5):
            assert manager.get("/users/1").status == 200  # 503, then 200
    finally:
        manager.close()
        httpd.shutdown()
        httpd.server_close()

    assert [status for status, _ in seen] == [503, 200] * 5
    failed, retried = seen[::2], seen[1::2]
    assert all(f[1] != r[1] for f, r in zip(failed, retried, strict=True))
    assert all(r[1] == f[1] for r, f in zip(retried, failed[1:], strict=False))  # 200s: kept
