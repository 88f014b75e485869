"""Per-upstream configuration: one frozen value object, built once from settings."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

#: Gateway statuses that say "the server behind me is down": safe to try again.
RETRY_STATUSES = frozenset({502, 503, 504})
#: How attempts are spread over several hosts (``hosts.py``).
BALANCERS = frozenset({"p2c", "round_robin"})


def split_hosts(base_url: str) -> tuple[str, ...]:
    """The base URLs in ``base_url`` (one, or several separated by commas), without a
    trailing slash; ``ValueError`` naming the first that is not ``http(s)://host[:port]``
    with an optional path, so a typo is refused at start-up, not met at call time."""
    urls = tuple(part.strip().rstrip("/") for part in base_url.split(","))
    for url in urls:
        try:
            parts = urlsplit(url)
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:  # a port that is not a number, a bad IPv6 literal
            port_ok = False
        else:
            port_ok = port_ok and bool(parts.hostname)
        if not (
            port_ok
            and parts.scheme in ("http", "https")
            and not (parts.query or parts.fragment or parts.username or parts.password)
            and url.isascii()
            and url.isprintable()
            and " " not in url
            and "?" not in url  # an empty query or fragment: urlsplit sees none, yet
            and "#" not in url  # "http://a?" + "/users/1" would be a query
        ):
            raise ValueError(f"not a base URL: {url!r} (want http://host[:port][/path])")
    if len(set(urls)) < len(urls):
        raise ValueError(f"a host is listed twice: {base_url!r}")
    return urls


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """How to call one upstream. Times are seconds; every field has a safe default.

    ``retries`` is the number of *re*-tries (``0``: one attempt only); 4 keeps a call's
    success above 99.5 % when 30 % of attempts fail at random (0.3^5 = 0.24 %). ``deadline`` bounds
    the whole call, backoff sleeps and body included. ``backoff_jitter`` ``False`` gives
    urllib3's deterministic schedule (0, 2f, 4f, ...), ``True`` AWS-style full jitter.
    ``retry_budget`` is the fraction of recent requests that may be retried (``0`` turns
    retries off under load, the floor ``budget_min_retries_per_second`` still applies).
    ``breaker`` ``False`` disables the circuit breaker. ``retry_statuses``: the statuses
    worth another attempt (of a request that may be repeated).

    Against a slow upstream: ``max_concurrency`` calls in flight per process at most (the
    bulkhead; one over it fails at once); a call slower than ``slow_call`` seconds, or still
    running past it, is slow, and ``breaker_slow_call_ratio`` of slow calls opens the
    breaker (``slow_call`` ``0``: off). ``hedge_after`` (``0``: off) sends a second attempt
    of a repeatable request that has had no answer for that long; the first good answer wins.

    Several hosts (``base_url`` lists them, comma-separated): ``balancer`` spreads the
    attempts (``"p2c"``: power of two choices on a latency-times-load cost; or
    ``"round_robin"``); a host with ``outlier_consecutive_failures`` bad attempts in a row
    (5xx, refused, reset, timed out, or slow) is ejected for ``outlier_base_ejection``
    seconds times the number of its ejections, at most ``outlier_max_ejection``, and never
    more than ``outlier_max_ejected_percent`` of the hosts at once; ``host_max_concurrency``
    attempts in flight per host at most (``0``: half of ``max_concurrency``, so one slow
    host cannot take every place; unlimited with one host). One host behaves as before.
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
    retry_statuses: frozenset[int] = RETRY_STATUSES
    max_concurrency: int = 16
    slow_call: float = 1.0
    breaker_slow_call_ratio: float = 0.5
    hedge_after: float = 0.0
    balancer: str = "p2c"
    outlier_consecutive_failures: int = 5
    outlier_base_ejection: float = 5.0
    outlier_max_ejection: float = 60.0
    outlier_max_ejected_percent: float = 50.0
    host_max_concurrency: int = 0

    def __post_init__(self) -> None:
        try:
            split_hosts(self.base_url)
        except ValueError as exc:
            raise ValueError(f"upstream {self.name!r}: base_url: {exc}") from None
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
            "retry_statuses": all(500 <= s <= 599 or s == 429 for s in self.retry_statuses),
            "max_concurrency": self.max_concurrency >= 1,
            "slow_call": self.slow_call >= 0,
            "breaker_slow_call_ratio": 0 < self.breaker_slow_call_ratio <= 1,
            "hedge_after": self.hedge_after >= 0,
            "balancer": self.balancer in BALANCERS,
            "outlier_consecutive_failures": self.outlier_consecutive_failures >= 1,
            "outlier_base_ejection": self.outlier_base_ejection > 0,
            "outlier_max_ejection": self.outlier_max_ejection >= self.outlier_base_ejection,
            "outlier_max_ejected_percent": 0 <= self.outlier_max_ejected_percent <= 100,
            "host_max_concurrency": self.host_max_concurrency >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"upstream {self.name!r}: out of range: {values}")

    @property
    def hosts(self) -> tuple[str, ...]:
        """The base URLs of the hosts that serve this upstream (one or more)."""
        return split_hosts(self.base_url)

    @property
    def per_host_limit(self) -> int:
        """Attempts in flight per host at most (see ``host_max_concurrency``)."""
        if self.host_max_concurrency:
            return self.host_max_concurrency
        if len(self.hosts) == 1:
            return 2**31  # the bulkhead limits calls; one host takes every attempt
        return max(1, math.ceil(self.max_concurrency / 2))


def default(name: str) -> Any:
    """``UpstreamConfig``'s default for ``name``: the one place defaults live (the breaker
    and the budget built alone take theirs from here)."""
    for field in fields(UpstreamConfig):
        if field.name == name and field.default is not MISSING:
            return field.default
    raise KeyError(name)
