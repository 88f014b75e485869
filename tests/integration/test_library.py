"""The Django side of the library as a user meets it: ``manage.py check`` on a bad
``UPSTREAMS``, and the pytest fixtures it ships (``upstream_server``, ``resilient_testing``)."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

from resilient_http import CircuitOpen, UpstreamUnavailable, upstream


def ids() -> list[str]:
    return [message.id for message in run_checks() if message.id.startswith("resilient_http")]


@pytest.mark.parametrize(
    ("upstreams", "expected"),
    [
        ({"payments": {"base_url": "http://127.0.0.1:8300"}}, []),
        (["payments"], ["resilient_http.E001"]),
        ({"payments": "http://127.0.0.1:8300"}, ["resilient_http.E001"]),
        ({"Pay-ments": {"base_url": "http://127.0.0.1:8300"}}, ["resilient_http.E002"]),
        ({"payments": {"base_url": "http://a:1", "name": "other"}}, ["resilient_http.E002"]),
        ({"payments": {"base_url": "http://a:1", "read_timout": 2}}, ["resilient_http.E003"]),
        ({"payments": {"base_url": "ftp://a"}}, ["resilient_http.E004"]),
        ({"payments": {"base_url": "http://a:1", "retries": -1}}, ["resilient_http.E004"]),
        ({"payments": {}}, ["resilient_http.E004"]),  # no base_url
    ],
)
def test_manage_py_check_reports_a_bad_upstream_by_id(settings, upstreams, expected):
    settings.UPSTREAMS = upstreams
    assert ids() == expected


def test_a_misspelt_setting_gets_a_guess(settings):
    settings.UPSTREAMS = {"payments": {"base_url": "http://a:1", "read_timout": 2}}
    (message,) = [m for m in run_checks() if m.id == "resilient_http.E003"]
    assert "did you mean 'read_timeout'?" in message.hint


def test_drf_without_our_handler_is_warned_of(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": None}
    assert ids() == ["resilient_http.W001"]


def test_the_fixtures_script_a_real_upstream(settings, upstream_server, resilient_testing):
    """What the how-to shows: two 503s, then the answer; retried without sleeping."""
    upstream_server.script(503, 503, (200, {"id": 7}))
    settings.UPSTREAMS = {"payments": {"base_url": upstream_server.url}}
    response = upstream("payments").get("/charges/7", headers={"X-Test": "1"})
    assert (response.status, response.json()) == (200, {"id": 7})
    assert [r.path for r in upstream_server.requests] == ["/charges/7"] * 3
    assert upstream_server.requests[-1].headers["X-Test"] == "1"


def test_the_last_scripted_answer_repeats(settings, upstream_server, resilient_testing):
    upstream_server.script((503, {"detail": "down"}, {"Retry-After": "0"}))
    settings.UPSTREAMS = {
        "payments": {"base_url": upstream_server.url, "retries": 2, "breaker_min_calls": 1}
    }
    with pytest.raises(UpstreamUnavailable):
        upstream("payments").get("/x")
    assert len(upstream_server.requests) == 3
    with pytest.raises(CircuitOpen):
        upstream("payments").get("/x")


def test_a_slow_answer_times_the_attempt_out(settings, upstream_server, resilient_testing):
    """``Slow`` scripts what a timeout test needs: the first attempt outlives its read
    timeout, the retry is answered at once."""
    from resilient_http.pytest_plugin import Slow

    upstream_server.script(Slow(30, 200), (200, {"id": 7}))  # long past any timeout
    settings.UPSTREAMS = {"payments": {"base_url": upstream_server.url, "read_timeout": 0.2}}
    response = upstream("payments").get("/charges/7")
    assert [a.outcome for a in response.history] == ["read_timeout", "200"]
    assert upstream_server.requests[0].headers["x-request-timeout-ms"]  # any case
