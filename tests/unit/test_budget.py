"""RetryBudget: a fraction of recent requests, a floor, a sliding window."""

from __future__ import annotations

from resilient_http.budget import RetryBudget


def test_a_lone_request_gets_its_retries_from_the_floor(clock):
    budget = RetryBudget(ratio=0.2, min_per_second=1, window=10, clock=clock)
    budget.record_request()
    assert all(budget.try_acquire() for _ in range(5))


def test_retries_are_capped_at_ratio_of_requests_plus_floor(clock):
    budget = RetryBudget(ratio=0.2, min_per_second=0.5, window=10, clock=clock)  # floor 5
    for _ in range(100):
        budget.record_request()
    granted = sum(budget.try_acquire() for _ in range(100))
    assert granted == 25  # 5 + 0.2 x 100


def test_a_spent_budget_takes_nothing(clock):
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10, clock=clock)  # floor 1
    assert budget.try_acquire()
    assert not budget.try_acquire()
    assert budget.available() == 0


def test_the_budget_refills_as_old_retries_leave_the_window(clock):
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, window=10, clock=clock)  # floor 2
    assert budget.try_acquire()
    assert budget.try_acquire()
    assert not budget.try_acquire()
    clock.advance(9)
    assert not budget.try_acquire()
    clock.advance(1)
    assert budget.try_acquire()


def test_new_requests_earn_more_retries(clock):
    budget = RetryBudget(ratio=0.5, min_per_second=0, window=10, clock=clock)
    assert not budget.try_acquire()
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire()
    assert not budget.try_acquire()


def test_a_successful_retry_gives_its_token_back(clock):
    """Flaky upstream: retries that work cost nothing, so they never run the budget dry."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10, clock=clock)  # floor 1
    for _ in range(50):
        assert budget.try_acquire()
        budget.refund()


def test_failed_retries_keep_their_cost(clock):
    """Hard outage: no retry succeeds, nothing is refunded, the cap holds."""
    budget = RetryBudget(ratio=0.2, min_per_second=0, window=10, clock=clock)
    for _ in range(100):
        budget.record_request()
    assert sum(budget.try_acquire() for _ in range(100)) == 20


def test_available_is_the_floor_plus_earnings_minus_spending(clock):
    budget = RetryBudget(ratio=0.5, min_per_second=0.1, window=10, clock=clock)  # floor 1
    for _ in range(4):
        budget.record_request()
    assert budget.available() == 3
    assert budget.try_acquire()
    assert budget.available() == 2
    budget.refund()
    assert budget.available() == 3
