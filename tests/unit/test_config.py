"""UpstreamConfig refuses values out of range at start-up, naming each one."""

from __future__ import annotations

import re

import pytest

from resilient_http import UpstreamConfig, policy

#: field: (the last value allowed, the first value refused)
BOUNDS = {
    "connect_timeout": (0.001, 0),
    "read_timeout": (0.001, 0),
    "retries": (0, -1),
    "backoff_factor": (0, -0.001),
    "backoff_max": (0, -0.001),
    "deadline": (0.001, 0),
    "min_attempt": (0, -0.001),
    "retry_budget": (0, -0.001),
    "budget_min_retries_per_second": (0, -0.001),
    "budget_window": (0.001, 0),
    "breaker_min_calls": (1, 0),
    "breaker_consecutive_failures": (1, 0),
    "breaker_window": (0.001, 0),
    "breaker_reset": (0.001, 0),
    "max_body_bytes": (1, 0),
    "pool_maxsize": (1, 0),
}


@pytest.mark.parametrize(("name", "bounds"), BOUNDS.items(), ids=list(BOUNDS))
def test_each_field_is_checked_at_its_bound(name, bounds):
    allowed, refused = bounds
    UpstreamConfig(name="users", base_url="http://u", **{name: allowed})
    with pytest.raises(ValueError, match=rf"'users': out of range: {name}={refused!r}$"):
        UpstreamConfig(name="users", base_url="http://u", **{name: refused})


@pytest.mark.parametrize(("ratio", "ok"), [(1, True), (0.001, True), (0, False), (1.001, False)])
def test_the_failure_ratio_is_a_fraction(ratio, ok):
    if ok:
        UpstreamConfig(name="u", base_url="http://u", breaker_failure_ratio=ratio)
    else:
        with pytest.raises(ValueError, match="breaker_failure_ratio"):
            UpstreamConfig(name="u", base_url="http://u", breaker_failure_ratio=ratio)


def test_every_bad_field_is_named_at_once():
    with pytest.raises(ValueError, match=r"out of range: retries=-1, deadline=0$"):
        UpstreamConfig(name="u", base_url="http://u", retries=-1, deadline=0)


def test_retries_on_post_and_patch_need_an_idempotency_key():
    for method in ("POST", "PATCH"):
        assert not policy.may_repeat(method, idempotency_key=False)
        assert policy.may_repeat(method, idempotency_key=True)
    assert policy.may_repeat("GET", idempotency_key=False)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("deadline", "3", "deadline must be a number; got '3'"),
        ("breaker", "false", "breaker must be True or False; got 'false'"),
        ("retries", 2.5, "retries must be a whole number; got 2.5"),
        ("retries", True, "retries must be a whole number; got True"),
        ("retry_statuses", "502,503", "retry_statuses must be a set of HTTP statuses"),
        ("retry_statuses", ["502"], "retry_statuses must be HTTP statuses"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_name(field, value, said):
    """Hand-written settings: a string for a number or a flag is a mistake, not a value."""
    with pytest.raises(ValueError, match=re.escape(said)):
        UpstreamConfig(name="payments", base_url="http://a:1", **{field: value})


def test_a_list_of_statuses_is_taken_as_a_set():
    config = UpstreamConfig(name="payments", base_url="http://a:1", retry_statuses=[502, 503])
    assert config.retry_statuses == frozenset({502, 503})
    assert hash(config)  # still a frozen value
