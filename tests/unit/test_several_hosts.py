"""RetryManager over several hosts: a bad one costs the caller nothing, and is ejected."""

from __future__ import annotations

from http import HTTPStatus

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from project.env import upstream_settings
from resilient_http import (
    Deadline,
    UpstreamConfig,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from resilient_http import events as ev
from resilient_http.events import describe
from tests.unit.conftest import HOSTS, several


def test_a_bad_host_costs_the_call_nothing(fleet, make_manager):
    fleet.answers["http://c.test"] = 503
    manager = several(make_manager)
    for _ in range(30):
        assert manager.get("/users/1").status == HTTPStatus.OK


def test_a_retry_goes_to_another_host_at_once(fleet, make_manager, clock, events):
    fleet.answers["http://a.test"] = 503
    fleet.answers["http://b.test"] = 503
    manager = several(make_manager, backoff_factor=1, random=lambda: 0.0)  # a, b, c
    response = manager.get("/users/1")
    assert response.status == HTTPStatus.OK
    assert fleet.seen == ["a.test", "b.test", "c.test"]  # each host once
    assert clock.sleeps == [0.0, 0.0]  # no backoff while a host has not seen the call
    retries = [e for e in events if e.name == ev.RETRY_SCHEDULED]
    assert [e.host for e in retries] == fleet.seen[:2]


def test_the_backoff_returns_once_every_host_has_seen_the_call(fleet, make_manager, clock):
    fleet.answers = dict.fromkeys(HOSTS, 503)
    manager = several(make_manager, backoff_factor=1, backoff_max=10, retries=4, deadline=30)
    with pytest.raises(UpstreamUnavailable):
        manager.get("/users/1")
    assert clock.sleeps == [0.0, 0.0, 4.0, 8.0]  # urllib3's schedule after the third host
    assert len(fleet.seen) == 5


def test_two_choices_avoid_a_failing_host_after_its_first_failure(fleet, make_manager):
    fleet.answers["http://c.test"] = requests.ConnectionError("refused")
    manager = several(make_manager, random=iter([0.9, 0.0] * 100).__next__)  # c vs a first
    for _ in range(40):
        assert manager.get("/users/1").status == HTTPStatus.OK
    assert fleet.seen.count("c.test") == 1


def test_consecutive_failures_eject_the_bad_host(fleet, make_manager, events):
    fleet.answers["http://c.test"] = requests.ConnectionError("refused")
    manager = several(make_manager, outlier_consecutive_failures=3, balancer="round_robin")
    for _ in range(40):
        assert manager.get("/users/1").status == HTTPStatus.OK
    ejected = [e for e in events if e.name == ev.HOST_EJECTED]
    assert [e.host for e in ejected] == ["c.test"]
    assert fleet.seen.count("c.test") == 3  # three in a row, then no more while out
    assert describe(ejected[0]).startswith(
        "users host_ejected c.test: 3 failed or slow attempts in a row (last: connection_reset"
    )


def test_an_ejected_host_comes_back_after_its_time(fleet, make_manager, clock, events):
    fleet.answers["http://c.test"] = 503
    manager = several(
        make_manager,
        outlier_consecutive_failures=1,
        outlier_base_ejection=5,
        balancer="round_robin",
    )
    while not any(e.name == ev.HOST_EJECTED for e in events):
        manager.get("/users/1")
    fleet.answers["http://c.test"] = 200
    clock.advance(5)
    fleet.seen.clear()
    for _ in range(30):
        manager.get("/users/1")
    assert "c.test" in fleet.seen
    hosts_events = [e.name for e in events if e.name in (ev.HOST_EJECTED, ev.HOST_RETURNED)]
    assert hosts_events == [ev.HOST_EJECTED, ev.HOST_RETURNED]


def test_the_whole_upstream_failing_is_the_breakers_business(fleet, make_manager, events):
    fleet.answers = dict.fromkeys(HOSTS, 503)
    manager = several(make_manager, outlier_consecutive_failures=1)
    for _ in range(5):
        with pytest.raises(UpstreamUnavailable):
            manager.get("/users/1")
    ejected = {e.host for e in events if e.name == ev.HOST_EJECTED}
    assert len(ejected) == 1  # 50 % of 3: one host out at most
    assert ev.BREAKER_OPENED in [e.name for e in events]


def test_a_callers_short_deadline_ejects_nobody(fleet, make_manager, clock, events):
    """Timeouts the caller's own deadline caused are not the hosts' fault: a caller with
    a 1 ms header must not be able to empty the rotation for everybody."""
    fleet.answers = dict.fromkeys(HOSTS, requests.ReadTimeout("cut"))
    manager = several(make_manager, outlier_consecutive_failures=1)
    for _ in range(5):
        with pytest.raises(UpstreamTimeout):
            manager.get("/users/1", deadline=Deadline.after(0.5, clock))
    assert not [e for e in events if e.name == ev.HOST_EJECTED]


def test_attempt_lines_name_the_host_only_where_there_are_several(fleet, make_manager, events):
    fleet.answers["http://a.test"] = 503
    several(make_manager, random=lambda: 0.0).get("/users/1")
    retry = next(e for e in events if e.name == ev.RETRY_SCHEDULED)
    assert describe(retry) == (
        "users GET /users/1 attempt 1/5 on a.test: 503 in 0 ms; retry in 0.00 s (time left 5.00 s)"
    )


def test_when_every_host_is_full_the_call_is_refused_as_overloaded(fleet, make_manager):
    manager = several(make_manager, host_max_concurrency=1)
    leases = [manager.hosts.pick() for _ in range(3)]
    assert all(leases)
    with pytest.raises(UpstreamOverloaded, match="every host in rotation") as refused:
        manager.get("/users/1")
    assert fleet.seen == []
    assert (refused.value.upstream, refused.value.retry_after) == ("users", 1.0)
    assert manager.breaker.state.value == "closed"  # refused before it went out: no failure


def test_one_url_behaves_as_before(make_manager, events):
    manager = make_manager()
    assert len(manager.hosts.hosts) == 1
    assert not manager.hosts.several


@pytest.mark.parametrize(
    "value",
    [
        "http://a,",
        "http://a,,http://b",
        "ftp://a",
        "a.test:8200",
        "http://a:99999",
        "http://a:port",
        "http://a?x=1",
        "http://user:pw@a",
        "http://a b",
        "http://a,http://a",
        "http://",
    ],
)
def test_a_malformed_service_url_is_refused_at_start_up_in_one_line(monkeypatch, value):
    monkeypatch.setenv("USERS_SERVICE_URL", value)
    with pytest.raises(ImproperlyConfigured, match=r"^USERS_SERVICE_URL: ") as raised:
        upstream_settings("USERS", base_url="http://127.0.0.1:8200")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("http://127.0.0.1:8200", ("http://127.0.0.1:8200",)),
        ("http://a:1/, http://b:2", ("http://a:1", "http://b:2")),
        ("https://users.internal/api/", ("https://users.internal/api",)),
        ("http://[::1]:8200", ("http://[::1]:8200",)),
    ],
)
def test_service_urls_that_are_accepted(value, hosts):
    assert UpstreamConfig(name="users", base_url=value).hosts == hosts
