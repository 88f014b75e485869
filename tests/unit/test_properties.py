"""Properties over many configurations: no schedule exceeds the deadline or the cap."""

from __future__ import annotations

import contextlib

import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from responses.registries import OrderedRegistry

from resilient_http import DEADLINE_HEADER, RetryManager, UpstreamConfig, UpstreamError
from tests.conftest import BASE_URL, FakeClock

configs = st.builds(
    dict,
    retries=st.integers(0, 8),
    backoff_factor=st.floats(0, 5),
    backoff_max=st.floats(0, 10),
    backoff_jitter=st.booleans(),
    deadline=st.floats(0.1, 30),
    attempt_seconds=st.floats(0, 3),
    random=st.floats(0, 1),
    retry_after=st.one_of(st.none(), st.integers(0, 40)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_no_call_outlives_its_deadline_and_no_sleep_exceeds_the_cap(c):
    clock = FakeClock()
    manager = RetryManager(
        UpstreamConfig(
            name="users",
            base_url=BASE_URL,
            retries=c["retries"],
            backoff_factor=c["backoff_factor"],
            backoff_max=c["backoff_max"],
            backoff_jitter=c["backoff_jitter"],
            deadline=c["deadline"],
            breaker=False,
        ),
        clock=clock,
        sleep=clock.sleep,
        random=lambda: c["random"],
        listeners=[],
    )
    headers = {} if c["retry_after"] is None else {"Retry-After": str(c["retry_after"])}

    def slow_503(request):
        # an attempt takes its time, but never more than the time left it was sent with
        time_left = int(request.headers[DEADLINE_HEADER]) / 1000
        clock.advance(min(c["attempt_seconds"], time_left))
        return (503, headers, "")

    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=False) as m:
        for _ in range(c["retries"] + 1):
            m.add_callback("GET", f"{BASE_URL}/users/1", callback=slow_503)
        with contextlib.suppress(UpstreamError):
            manager.get("/users/1")
    assert clock.now - 1_000.0 <= c["deadline"] + 1e-9
    backoff_sleeps = clock.sleeps if c["retry_after"] is None else []
    assert all(s <= c["backoff_max"] + 1e-9 for s in backoff_sleeps)
    assert len(m.calls) <= c["retries"] + 1
    manager.close()
