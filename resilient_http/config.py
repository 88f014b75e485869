"""Per-upstream configuration: one frozen value object, built once from settings."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

#: Gateway statuses that say "the server behind me is down": safe to try again.
RETRY_STATUSES = frozenset({502, 503, 504})
#: RFC 9457 ``type`` of a problem with a stable ``code`` is this prefix + the code, unless
#: ``settings.PROBLEM_TYPE_BASE`` says otherwise: a ``tag:`` URI names the problem without
#: promising a page to fetch.
PROBLEM_TYPE_BASE = "tag:resilient-http,2026:problem:"
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
    """How to call one upstream: one entry of ``settings.UPSTREAMS``. Times are seconds;
    every field but ``base_url`` has a safe default, and each is documented below (the
    settings reference, docs/reference/settings.md, is generated from these docstrings).
    """

    name: str
    """The upstream's name: the key in ``UPSTREAMS``; it prefixes the problem codes
    (``payments_timeout``) and labels the logs and metrics."""
    base_url: str
    """``http(s)://host[:port][/path]``; several hosts (replicas) separated by commas."""
    connect_timeout: float = 0.5
    """Seconds to open a connection (each attempt; the deadline may cut it shorter)."""
    read_timeout: float = 2.0
    """Seconds an attempt may wait for the answer to start, and between its bytes."""
    retries: int = 4
    """*Re*-tries after the first attempt (``0``: one attempt only). 4 keeps a call's
    success above 99.5 % when 30 % of attempts fail at random (0.3^5 = 0.24 %)."""
    backoff_factor: float = 0.1
    """Backoff before retry n is up to ``backoff_factor * 2**n`` seconds."""
    backoff_max: float = 2.0
    """The longest backoff between two attempts, in seconds."""
    backoff_jitter: bool = True
    """``True``: AWS-style full jitter (a random wait up to the backoff); ``False``:
    urllib3's deterministic schedule (0, 2f, 4f, ...)."""
    deadline: float = 5.0
    """Seconds the whole call may take: attempts, backoff sleeps and body included. A
    caller's tighter ``deadline=`` wins."""
    min_attempt: float = 0.05
    """No attempt starts with less time than this left: it would only time out."""
    retry_budget: float = 0.2
    """The fraction of recent calls that may be retried (``0``: no retries under load, the
    floor still applies): retries cannot multiply the load on a failing upstream."""
    budget_min_retries_per_second: float = 3.0
    """Retries always allowed per second, however few the calls (the budget's floor)."""
    budget_window: float = 10.0
    """Seconds of history the retry budget counts."""
    breaker: bool = True
    """``False`` turns the circuit breaker off."""
    breaker_failure_ratio: float = 0.5
    """The breaker opens when this share of the calls in its window failed..."""
    breaker_min_calls: int = 10
    """... once the window holds at least this many calls."""
    breaker_consecutive_failures: int = 5
    """Or when this many calls in a row failed (or were slow), however few."""
    breaker_window: float = 10.0
    """Seconds of history the breaker counts."""
    breaker_reset: float = 5.0
    """Seconds the breaker stays open before one probe call may try (half-open)."""
    max_body_bytes: int = 1024 * 1024
    """The largest answer read (decompressed); a bigger one is a bad response (502)."""
    pool_maxsize: int = 32
    """Kept-alive connections per host in the pool (set it to your threads per process)."""
    retry_statuses: frozenset[int] = RETRY_STATUSES
    """Statuses worth another attempt of a request that may be repeated (5xx or 429)."""
    max_concurrency: int = 16
    """Calls in flight per process at most (the bulkhead): one more fails at once with
    ``overloaded`` (503) instead of queueing behind a slow upstream."""
    slow_call: float = 1.0
    """A call slower than this, or still running past it, counts as slow (``0``: off)."""
    breaker_slow_call_ratio: float = 0.5
    """The breaker also opens when this share of the calls in its window were slow."""
    hedge_after: float = 0.0
    """Seconds without an answer after which a second attempt of a repeatable request is
    sent beside the first; the first good answer wins (``0``: off)."""
    balancer: str = "p2c"
    """Several hosts: ``"p2c"`` (power of two choices on latency times load) or
    ``"round_robin"``."""
    outlier_consecutive_failures: int = 5
    """Several hosts: a host with this many bad attempts in a row (5xx, refused, reset,
    timed out or slow) is ejected..."""
    outlier_base_ejection: float = 5.0
    """... for this many seconds times the number of its ejections..."""
    outlier_max_ejection: float = 60.0
    """... at most this many seconds."""
    outlier_max_ejected_percent: float = 50.0
    """Never more than this share of the hosts ejected at once (and never the last)."""
    host_max_concurrency: int = 0
    """Attempts in flight per host at most (``0``: half of ``max_concurrency`` with several
    hosts, so one slow host cannot take every place; unlimited with one host)."""

    def __post_init__(self) -> None:
        self._check_types()
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

    def _check_types(self) -> None:
        """Each field of the type it is declared with (settings are hand-written: ``"3"``
        for a deadline, ``"false"`` for a flag); a list of statuses becomes a frozenset."""
        statuses = self.retry_statuses
        if isinstance(statuses, list | tuple | set):
            object.__setattr__(self, "retry_statuses", frozenset(statuses))
        for field in fields(self):
            value = getattr(self, field.name)
            want = _TYPES[field.type]  # type: ignore[index]
            wrong = isinstance(value, bool) and want is not bool  # True is an int in Python
            if wrong or not isinstance(value, want):
                raise ValueError(
                    f"upstream {self.name!r}: {field.name} must be {_NAMES[field.type]};"  # type: ignore[index]
                    f" got {value!r}"
                )
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.retry_statuses):
            raise ValueError(f"upstream {self.name!r}: retry_statuses must be HTTP statuses")

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


#: The declared type of each field (annotations are strings here), what ``isinstance`` takes.
_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "float": (int, float),
    "int": int,
    "bool": bool,
    "frozenset[int]": frozenset,
}
_NAMES = {
    "str": "a string",
    "float": "a number",
    "int": "a whole number",
    "bool": "True or False",
    "frozenset[int]": "a set of HTTP statuses",
}


def default(name: str) -> Any:
    """``UpstreamConfig``'s default for ``name``: the one place defaults live (the breaker
    and the budget built alone take theirs from here)."""
    for field in fields(UpstreamConfig):
        if field.name == name and field.default is not MISSING:
            return field.default
    raise KeyError(name)
