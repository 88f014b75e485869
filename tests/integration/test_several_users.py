"""Orders over real HTTP to three Users hosts, one of them bad: answers, page, metrics, logs."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from http import HTTPStatus

import pytest
from prometheus_client import REGISTRY

from resilient_http import set_testing
from resilient_http.live import RECORDER

pytestmark = pytest.mark.django_db(transaction=True)


class _Unavailable(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"detail": "replica 3 is sick"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sick() -> Iterator[tuple[str, list[str]]]:
    """A real server that answers 503 to everything; its URL and the paths it saw."""
    hits: list[str] = []
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Sick", (_Unavailable,), {"hits": hits})
    )
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def fleet(users_upstream, live_server, sick, settings):
    """Users three times: the live server under two names, and a replica that answers 503.
    Round robin, so the sick one keeps getting its turn until it is ejected (two choices
    would avoid it after its first 503: tests/unit/test_hosts.py)."""
    sick_url, hits = sick
    other_name = live_server.url.replace("localhost", "127.0.0.1")
    if other_name == live_server.url:
        other_name = live_server.url.replace("127.0.0.1", "localhost")
    users_upstream(base_url=f"{live_server.url},{sick_url},{other_name}", balancer="round_robin")
    set_testing(True)  # backoff computed, never slept
    settings.DEBUG = True  # the page's JSON, to anyone
    RECORDER.clear()
    return {"sick": sick_url, "hits": hits}


@pytest.fixture
def caplog_resilience(caplog):
    logger = logging.getLogger("resilient_http")
    logger.addHandler(caplog.handler)  # the project's loggers do not propagate
    yield caplog
    logger.removeHandler(caplog.handler)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_bad_replica_of_three_costs_orders_nothing(fleet, orders_client, caplog_resilience):
    caplog = caplog_resilience
    with caplog.at_level(logging.INFO, "resilient_http"):
        answers = [orders_client.get("/orders/", {"user_id": 1}) for _ in range(30)]
    assert [a.status_code for a in answers] == [HTTPStatus.OK] * 30
    assert all(a.json()["user"]["name"] == "Aaron Apple" for a in answers)
    sick = fleet["sick"].removeprefix("http://")
    assert f"users host_ejected {sick}: 5 failed or slow attempts in a row" in caplog.text
    assert len(fleet["hits"]) == 5  # then out of rotation
    assert "retry in 0.00 s" in caplog.text  # to another host at once


def test_the_page_shows_each_host_and_which_are_out(fleet, orders_client, client):
    for _ in range(30):
        orders_client.get("/orders/", {"user_id": 1})
    state = client.get("/resilience/state.json").json()
    users = next(u for u in state["upstreams"] if u["name"] == "users")
    hosts = {h["url"]: h for h in users["hosts"]}
    assert len(hosts) == 3
    assert hosts[fleet["sick"]]["ejected_for"] > 0
    assert hosts[fleet["sick"]]["ejections"] == 1
    assert hosts[fleet["sick"]]["recent"] == ["503"] * 5
    assert sum(h["ejected_for"] is not None for h in hosts.values()) == 1  # at most 50 %
    attempts = [a for call in users["calls"] for a in call["attempts"]]
    assert {a["host"] for a in attempts} >= {fleet["sick"].removeprefix("http://")}


def test_metrics_count_ejections_and_attempts_by_host(fleet, orders_client):
    sick = fleet["sick"].removeprefix("http://")
    before = value("upstream_host_ejections_total", upstream="users", host=sick)
    for _ in range(30):
        orders_client.get("/orders/", {"user_id": 1})
    assert value("upstream_host_ejections_total", upstream="users", host=sick) == before + 1
    assert value("upstream_host_ejected", upstream="users", host=sick) == 1
    assert value("upstream_host_attempts_total", upstream="users", host=sick, outcome="503") >= 5
