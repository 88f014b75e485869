"""HostSet: balancing, outlier ejection and its cap, untried hosts, the per-host cap."""

from __future__ import annotations

import itertools
import math

import pytest

from resilient_http import UpstreamConfig
from resilient_http.hosts import BAD_COST, DECAY, HostSet
from resilient_http.outcome import Outcome

OK, FAILED, REFUSED = Outcome(200), Outcome(503), Outcome(error="connect_error")
NOT_FOUND, LIMITED = Outcome(404), Outcome(429)


def draws(*values: float):
    """A ``random`` returning ``values`` in turn, for ever."""
    return itertools.cycle(values).__next__


@pytest.fixture
def make_hosts(clock):
    """``make_hosts(n, **config)``: ``n`` hosts a.test, b.test, ...; events recorded."""

    def make(n: int = 3, random=lambda: 0.0, **overrides: object):
        urls = ",".join(f"http://{chr(ord('a') + i)}.test" for i in range(n))
        config = UpstreamConfig(name="users", base_url=urls, **overrides)  # type: ignore[arg-type]
        told: list[tuple[str, str, str]] = []
        hosts = HostSet(
            config,
            clock=clock,
            random=random,
            notify=lambda event, host, cause: told.append((event, host.label, cause)),
        )
        hosts.told = told  # type: ignore[attr-defined]
        return hosts

    return make


def attempt(hosts, outcome, clock, seconds=0.01, tried=()):
    lease = hosts.pick(tried)
    clock.advance(seconds)
    hosts.done(lease, outcome)
    return lease.host.label


def fail(hosts, label, clock, times, outcome=FAILED):
    """Fail ``times`` attempts on the host ``label`` (the others are tried first)."""
    others = [h for h in hosts.hosts if h.label != label]
    for _ in range(times):
        assert attempt(hosts, outcome, clock, tried=others) == label


def test_two_choices_take_the_host_with_less_in_flight(make_hosts):
    hosts = make_hosts(2, random=draws(0.0, 0.0))  # draws a, then b
    busy = hosts.pick()
    assert busy.host.label == "a.test"
    assert hosts.pick().host.label == "b.test"  # a has one in flight: b is cheaper


def test_a_failing_host_costs_more_than_a_healthy_one_though_it_fails_fast(make_hosts, clock):
    hosts = make_hosts(2)
    fail(hosts, "a.test", clock, 1)  # a 503 in 10 ms
    attempt(hosts, OK, clock, seconds=0.05, tried=[hosts.hosts[0]])  # b answers, in 50 ms
    assert {attempt(hosts, OK, clock) for _ in range(5)} == {"b.test"}


def test_a_host_that_hangs_is_avoided_before_its_first_attempt_ends(make_hosts, clock):
    hosts = make_hosts(2)
    attempt(hosts, OK, clock, tried=[hosts.hosts[1]])  # a: 10 ms
    attempt(hosts, OK, clock, seconds=0.1, tried=[hosts.hosts[0]])  # b: 100 ms, slower
    hanging = hosts.pick([hosts.hosts[1]])
    assert hanging.host.label == "a.test"
    clock.advance(0.5)  # a's attempt is still out after 0.5 s
    assert {attempt(hosts, OK, clock) for _ in range(5)} == {"b.test"}


def test_a_slow_answer_raises_the_cost_at_once_and_is_forgotten_slowly(make_hosts, clock):
    hosts = make_hosts(2)
    a = hosts.hosts[0]
    attempt(hosts, OK, clock, seconds=1.5, tried=[hosts.hosts[1]])
    assert a.load(clock()) == pytest.approx(BAD_COST)  # at most a failure's cost
    clock.advance(DECAY)  # one decay period
    assert a.load(clock()) == pytest.approx(BAD_COST / math.e, rel=1e-3)


def test_however_slow_a_host_was_it_is_tried_again_as_soon_as_one_that_failed(make_hosts, clock):
    """A replica slow by 1.5 s, then healed, is back within seconds: its cost is capped
    at a failure's, so it is forgotten as fast (uncapped, 1.5 s took 5 s)."""
    hosts = make_hosts(3, random=draws(0.0, 0.0))  # a against b
    a, b, c = hosts.hosts
    attempt(hosts, OK, clock, seconds=1.5, tried=[b, c])  # a: slow
    attempt(hosts, OK, clock, seconds=0.01, tried=[a, c])  # b: 10 ms
    assert a.load(clock()) == pytest.approx(BAD_COST, rel=0.05)
    assert hosts.pick().host is b
    clock.advance(DECAY * math.log(BAD_COST / 0.01) + 0.05)  # about 2.4 s
    assert hosts.pick().host is a


def test_consecutive_failures_eject_the_host_which_then_gets_nothing(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=3)
    fail(hosts, "c.test", clock, 3)
    assert hosts.told == [
        (
            "host_ejected",
            "c.test",
            "3 failed or slow attempts in a row (last: 503 in 10 ms); out for 5 s",
        )
    ]
    assert all(attempt(hosts, OK, clock) != "c.test" for _ in range(20))


@pytest.mark.parametrize(
    ("outcome", "counts"),
    [
        (FAILED, True),
        (REFUSED, True),
        (Outcome(error="connection_reset"), True),
        (Outcome(error="read_timeout"), True),
        (NOT_FOUND, False),  # an answer: the host is fine
        (LIMITED, False),  # a rate limit is not a sick host
        (Outcome(error="body_too_large"), False),
    ],
    ids=lambda v: v.label if isinstance(v, Outcome) else str(v),
)
def test_what_counts_as_a_failure_for_ejection(make_hosts, clock, outcome, counts):
    hosts = make_hosts(3, outlier_consecutive_failures=2)
    fail(hosts, "c.test", clock, 2, outcome=outcome)
    assert bool(hosts.told) is counts


def test_slow_answers_count_toward_ejection(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=2, slow_call=1.0)
    others = hosts.hosts[:2]
    attempt(hosts, OK, clock, seconds=1.2, tried=others)
    attempt(hosts, OK, clock, seconds=1.2, tried=others)
    assert [event for event, *_ in hosts.told] == ["host_ejected"]


def test_a_success_resets_the_count(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=3)
    fail(hosts, "c.test", clock, 2)
    fail(hosts, "c.test", clock, 1, outcome=OK)
    fail(hosts, "c.test", clock, 2)
    assert hosts.told == []


def test_an_ejected_host_returns_after_its_time_and_the_next_ejection_is_longer(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=1, outlier_base_ejection=5)
    fail(hosts, "c.test", clock, 1)
    clock.advance(4.9)
    assert all(attempt(hosts, OK, clock) != "c.test" for _ in range(5))
    clock.advance(0.1)
    fail(hosts, "c.test", clock, 1)  # back in rotation, and bad again
    assert [(e, label) for e, label, _ in hosts.told] == [
        ("host_ejected", "c.test"),
        ("host_returned", "c.test"),
        ("host_ejected", "c.test"),
    ]
    assert hosts.told[-1][2].endswith("out for 10 s")


def test_ejection_time_is_capped(make_hosts, clock):
    hosts = make_hosts(
        3, outlier_consecutive_failures=1, outlier_base_ejection=5, outlier_max_ejection=12
    )
    for _ in range(4):
        fail(hosts, "c.test", clock, 1)
        clock.advance(60)
    assert hosts.told[-1][2].endswith("out for 12 s")


def test_a_healthy_period_shortens_the_next_ejection(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=1, outlier_base_ejection=5)
    fail(hosts, "c.test", clock, 1)
    clock.advance(5)
    fail(hosts, "c.test", clock, 1, outcome=OK)  # returned
    clock.advance(5)
    fail(hosts, "c.test", clock, 1, outcome=OK)  # healthy for a base period: multiplier 0
    fail(hosts, "c.test", clock, 1)
    assert hosts.told[-1][2].endswith("out for 5 s")


@pytest.mark.parametrize(
    ("n", "percent", "most"), [(1, 100, 0), (1, 50, 0), (3, 50, 1), (4, 50, 2), (3, 100, 2)]
)
def test_at_most_the_capped_share_of_hosts_is_ejected(make_hosts, clock, n, percent, most):
    hosts = make_hosts(n, outlier_consecutive_failures=1, outlier_max_ejected_percent=percent)
    for host in hosts.hosts:
        fail(hosts, host.label, clock, 1) if n > 1 else attempt(hosts, FAILED, clock)
    assert len(hosts.told) == most


def test_one_host_is_never_ejected_by_default(make_hosts, clock):
    hosts = make_hosts(1, outlier_consecutive_failures=1)
    for _ in range(10):
        attempt(hosts, FAILED, clock)
    assert hosts.told == []
    assert hosts.pick() is not None


def test_pick_prefers_a_host_not_tried_and_falls_back_to_any(make_hosts, clock):
    hosts = make_hosts(2)
    a, b = hosts.hosts
    assert hosts.pick([a]).host is b
    assert hosts.pick([b]).host is a
    assert hosts.pick([a, b]) is not None
    assert hosts.untried([a])
    assert not hosts.untried([a, b])


def test_an_ejected_host_is_not_untried(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=1)
    fail(hosts, "c.test", clock, 1)
    assert not hosts.untried(hosts.hosts[:2])


def test_the_per_host_cap_keeps_a_slow_host_from_taking_every_place(make_hosts):
    hosts = make_hosts(2, max_concurrency=4)  # at most 2 attempts per host
    assert hosts.limit == 2
    held = [hosts.pick([hosts.hosts[1]]) for _ in range(2)]
    assert {lease.host.label for lease in held} == {"a.test"}
    assert hosts.pick([hosts.hosts[1]]).host.label == "b.test"  # a is full: b, though tried
    hosts.pick()
    assert hosts.pick() is None  # both full


def test_one_host_has_no_cap_of_its_own(make_hosts):
    hosts = make_hosts(1, max_concurrency=1)
    assert all(hosts.pick() is not None for _ in range(50))


def test_an_explicit_per_host_cap(make_hosts):
    assert make_hosts(3, host_max_concurrency=3).limit == 3


def test_round_robin_takes_each_host_in_turn(make_hosts, clock):
    hosts = make_hosts(3, balancer="round_robin")
    labels = [attempt(hosts, OK, clock) for _ in range(6)]
    assert sorted(labels) == sorted(["a.test", "b.test", "c.test"] * 2)
    assert labels[:3] != labels[:1] * 3


def test_a_cancelled_attempt_frees_its_place_and_counts_no_failure(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=1)
    lease = hosts.pick()
    hosts.done(lease, None)
    hosts.done(lease, None)  # given back twice (a hedge's callback and its worker): once
    assert lease.host.pending == {}
    assert list(lease.host.recent) == []
    assert hosts.told == []


def test_a_cancelled_attempt_still_bounds_its_hosts_latency(make_hosts, clock):
    """A hedge that lost, or an attempt its caller cut, after 0.5 s unanswered: not a
    failure, but the host is at least that slow, so it is no longer the cheapest."""
    hosts = make_hosts(2)
    a, b = hosts.hosts
    attempt(hosts, OK, clock, tried=[b])  # a: 10 ms
    attempt(hosts, OK, clock, seconds=0.05, tried=[a])  # b: 50 ms, slower
    lease = hosts.pick([b])
    clock.advance(0.5)
    hosts.done(lease, None)
    assert {attempt(hosts, OK, clock) for _ in range(5)} == {"b.test"}
    assert a.consecutive == 0


def test_the_snapshot_says_which_host_is_out_and_for_how_long(make_hosts, clock):
    hosts = make_hosts(3, outlier_consecutive_failures=1, outlier_base_ejection=5)
    fail(hosts, "c.test", clock, 1)
    clock.advance(2)
    c = hosts.snapshot()[2]
    assert c["label"] == "c.test"
    assert c["ejected_for"] == pytest.approx(3.0)
    assert c["ejections"] == 1
    assert c["recent"] == ["503"]
    assert hosts.snapshot()[0]["ejected_for"] is None
