"""Per-upstream configuration: one frozen value object, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass

from urllib3.util.retry import Retry

#: RFC 9110 section 9.2.2: methods whose repetition has the same effect as one request.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Gateway statuses that say "the server behind me is down": safe to try again.
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """How to call one upstream. Times are seconds; every field has a safe default.

    ``retries`` is the number of *re*-tries (``0``: one attempt only); 4 keeps a call's
    success above 99.5 % when 30 % of attempts fail at random (0.3^5 = 0.24 %). ``deadline`` bounds
    the whole call, backoff sleeps and body included. ``backoff_jitter`` ``False`` gives
    urllib3's deterministic schedule (0, 2f, 4f, ...), ``True`` AWS-style full jitter.
    ``retry_budget`` is the fraction of recent requests that may be retried (``0`` turns
    retries off under load, the floor ``budget_min_retries_per_second`` still applies).
    ``breaker`` ``False`` disables the circuit breaker.
    """

    name: str
    base_url: str
    connect_timeout: float = 0.5
    read_timeout: float = 2.0
    retries: int = 4
    backoff_factor: float = 0.1
    backoff_max: float = 2.0
    backoff_jitter: bool = True
    deadline: float = 5.0
    min_attempt: float = 0.05
    retry_budget: float = 0.2
    budget_min_retries_per_second: float = 3.0
    budget_window: float = 10.0
    breaker: bool = True
    breaker_failure_ratio: float = 0.5
    breaker_min_calls: int = 10
    breaker_consecutive_failures: int = 5
    breaker_window: float = 10.0
    breaker_reset: float = 5.0
    max_body_bytes: int = 1024 * 1024
    pool_maxsize: int = 32

    def __post_init__(self) -> None:
        checks = {
            "connect_timeout": self.connect_timeout > 0,
            "read_timeout": self.read_timeout > 0,
            "retries": self.retries >= 0,
            "backoff_factor": self.backoff_factor >= 0,
            "backoff_max": self.backoff_max >= 0,
            "deadline": self.deadline > 0,
            "min_attempt": self.min_attempt >= 0,
            "retry_budget": self.retry_budget >= 0,
            "budget_min_retries_per_second": self.budget_min_retries_per_second >= 0,
            "budget_window": self.budget_window > 0,
            "breaker_failure_ratio": 0 < self.breaker_failure_ratio <= 1,
            "breaker_min_calls": self.breaker_min_calls >= 1,
            "breaker_consecutive_failures": self.breaker_consecutive_failures >= 1,
            "breaker_window": self.breaker_window > 0,
            "breaker_reset": self.breaker_reset > 0,
            "max_body_bytes": self.max_body_bytes > 0,
            "pool_maxsize": self.pool_maxsize >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"upstream {self.name!r}: out of range: {values}")

    def retry_policy(self, *, idempotency_key: bool = False) -> Retry:
        """The urllib3 ``Retry`` that decides *whether* to retry, counts attempts, keeps history.

        Non-idempotent methods become retryable only when the request carries an
        ``Idempotency-Key``: then the upstream can recognise the repeat.
        """
        methods = IDEMPOTENT_METHODS | ({"POST", "PATCH"} if idempotency_key else set())
        return Retry(
            total=self.retries,
            connect=None,
            read=None,
            status=None,
            other=0,
            redirect=False,
            allowed_methods=methods,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
