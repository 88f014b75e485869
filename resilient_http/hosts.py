"""Several hosts per upstream: which one takes the next attempt, and which are out.

An upstream may be served by several replicas (``base_url`` lists them). One bad replica
must cost the caller nothing, so, as Envoy, gRPC and Finagle do it on the client side:

- **Balancing**: power of two choices (two hosts drawn at random, the cheaper one taken)
  on Finagle's peak-EWMA cost: a latency average that jumps to any slower sample at once
  and decays over ``DECAY`` seconds, times the attempts in flight plus one. An attempt
  still in flight counts as at least as slow as it has been so far, so a replica that
  hangs is avoided before its first timeout. A failed attempt costs at least
  ``BAD_COST``: a replica that fails fast must not draw traffic for looking fast
  (it would, while the cap below keeps it in rotation, or while it fails too rarely to
  be ejected). A slow or failing replica is avoided at once and tried again once its cost
  has decayed to the others' (about 2.4 s): that try is how a healed one comes back. An
  answer costs at most ``BAD_COST`` too, so however slow a replica was, it is tried again
  as soon as one that failed (Finagle's average is uncapped: 1.5 s took 5 s to forget).
  ``round_robin`` is the textbook alternative, kept to measure against.
- **Outlier detection** (Envoy's ``consecutive_5xx`` and local-origin errors): a host with
  ``outlier_consecutive_failures`` bad attempts in a row (5xx, refused, reset, timed out,
  or slower than ``slow_call``) is ejected for ``outlier_base_ejection`` times the number
  of its ejections (at most ``outlier_max_ejection``), then returns by itself; a healthy
  base period takes one off that multiplier. At most ``outlier_max_ejected_percent`` of the
  hosts are out at once: when the whole upstream fails, the breaker decides, as with one
  host (with one host, nothing is ever ejected).
- **Retries and hedges go to a host this call has not tried** when one is available
  (Envoy's ``previous_hosts``).
- **Attempts in flight per host** are capped (``per_host_limit``): a slow host cannot take
  every place of the bulkhead from the healthy ones.

A healthy attempt takes no lock (as the breaker's quick successes): with one host, ``pick``
is a dict insert; ``done`` pops the lease and tallies the latency sample, folded into the
average under the lock before the average is read (a ``pick`` among several hosts, the
page) or every ``FOLD_EVERY`` samples. A failed, slow or rate-limited attempt, or one on a
host with a streak or an ejection history, is judged at once under the lock.

The loop tells ``done`` nothing of an attempt that says nothing about the host's health
(a hedge that lost, a timeout or a 504 its caller's own tighter deadline caused): a caller
must not be able to eject a replica for everybody.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .config import UpstreamConfig
from .deadline import Clock
from .outcome import Outcome
from .window import FOLD_EVERY

#: Seconds over which the latency average forgets a sample. Finagle's default is 10 s;
#: here 0.75 s, so a bad replica is tried again about 2.4 s after its last answer, not
#: 30 s: a healed one is back in rotation within an ejection period (docs/benchmarks.md).
DECAY = 0.75
#: A bad attempt's cost in seconds of latency: a failure costs at least this, and any
#: answer at most this (a slower one is bad enough). It decays below a healthy replica's
#: 10 ms in ``DECAY`` x ln(25), about 2.4 s.
BAD_COST = 0.25
#: Outcomes kept per host for the resilience page.
RECENT = 10
TOO_MANY_REQUESTS = 429

Notify = Callable[[str, "Host", str], None]


@dataclass(eq=False, slots=True)
class Host:
    """One replica and what is known of it. Written under the ``HostSet``'s lock."""

    url: str
    label: str  # host:port, for logs, metrics and the page
    cost: float = 0.0  # peak-EWMA latency, seconds, as of ``stamp``
    stamp: float = 0.0
    pending: dict[Lease, None] = field(default_factory=dict)  # attempts in flight, oldest first
    consecutive: int = 0  # bad attempts in a row
    ejected_until: float = 0.0  # 0.0: in rotation
    multiplier: int = 0  # the next ejection lasts base x (multiplier + 1)
    healthy_since: float = 0.0  # for taking one off the multiplier per healthy base period
    ejections: int = 0
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    #: Healthy latency samples (seconds, when) taken without the lock, not yet observed.
    quick: deque[tuple[float, float]] = field(default_factory=deque)

    def latency(self, now: float) -> float:
        """The latency average, decayed to ``now``."""
        return self.cost * math.exp(-(now - self.stamp) / DECAY) if self.cost else 0.0

    def out(self, now: float) -> bool:
        """Ejected, and not yet back?"""
        return self.ejected_until > now

    def load(self, now: float) -> float:
        """Finagle's peak-EWMA load: the decayed latency (at least the age of the oldest
        attempt in flight) times the attempts in flight plus one."""
        cost = self.latency(now)
        if self.pending:
            cost = max(cost, now - next(iter(self.pending)).started)
        return cost * (len(self.pending) + 1)

    def observe(self, seconds: float, now: float) -> None:
        """A new latency sample: a slower one is taken at once (up to ``BAD_COST``), a
        faster one averaged in."""
        seconds = min(seconds, BAD_COST)
        now = max(now, self.stamp)  # a tallied sample may be older than the last one
        if seconds >= self.latency(now):
            self.cost = seconds
        else:
            weight = math.exp(-(now - self.stamp) / DECAY)
            self.cost = self.cost * weight + seconds * (1 - weight)
        self.stamp = now

    def fold(self) -> None:
        """Observe the samples tallied without the lock, in order (under the lock)."""
        while self.quick:
            self.observe(*self.quick.popleft())

    def observe_at_least(self, seconds: float, now: float) -> None:
        """No answer after ``seconds`` (cancelled, or cut by its caller): a lower bound of
        the latency, so the cost rises to it if lower and never falls. Else a hung host
        whose attempts are all cut or cancelled would keep a cost of 0, the cheapest."""
        seconds = min(seconds, BAD_COST)
        if seconds > self.latency(now):
            self.cost, self.stamp = seconds, now


@dataclass(eq=False, slots=True)
class Lease:
    """One attempt's place on a host, from ``pick`` to ``done``."""

    host: Host
    started: float


def _label(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc + (parts.path if parts.path not in ("", "/") else "")


class HostSet:
    """The hosts of one upstream; thread-safe. ``notify(event, host, cause)`` hears of
    ejections and returns, outside the lock."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        clock: Clock = time.monotonic,
        random: Callable[[], float],
        notify: Notify | None = None,
    ) -> None:
        self.hosts = tuple(Host(url, _label(url)) for url in config.hosts)
        self.several = len(self.hosts) > 1
        #: Attempts in flight per host at most (with one host, the bulkhead's cap is enough).
        self.limit = config.per_host_limit
        #: The one host, if there is one and no cap per host (the bulkhead's is enough).
        self._only = (
            self.hosts[0] if len(self.hosts) == 1 and not config.host_max_concurrency else None
        )
        self._round_robin = config.balancer == "round_robin"
        self._threshold = config.outlier_consecutive_failures
        self._base = config.outlier_base_ejection
        self._max = config.outlier_max_ejection
        # Never the last host in rotation: with every host out, the breaker decides.
        share = math.floor(len(self.hosts) * config.outlier_max_ejected_percent / 100)
        self._max_ejected = min(share, len(self.hosts) - 1)
        self._slow_call = config.slow_call
        self._clock = clock
        self._random = random
        self._notify = notify
        self._turn = 0
        self._lock = threading.Lock()

    def pick(self, tried: Collection[Host] = ()) -> Lease | None:
        """A place on the best host for the next attempt, preferring one not in ``tried``;
        ``None`` when every host in rotation has ``limit`` attempts in flight."""
        if self._only is not None:  # nothing to choose, never ejected, no cap: no lock
            now = self._clock()
            lease = Lease(self._only, now)
            lease.host.pending[lease] = None  # one atomic step
            return lease
        returned: list[Host] = []
        with self._lock:
            now = self._clock()
            ready = []
            for host in self.hosts:
                host.fold()
                if host.ejected_until:
                    if host.out(now):
                        continue
                    host.ejected_until, host.consecutive, host.healthy_since = 0.0, 0, now
                    returned.append(host)
                if len(host.pending) < self.limit:
                    ready.append(host)
            fresh = [host for host in ready if host not in tried] or ready
            lease = None
            if fresh:
                lease = Lease(self._choose(fresh, now), now)
                lease.host.pending[lease] = None
        for host in returned:
            self._tell("host_returned", host, "back in rotation")
        return lease

    def untried(self, tried: Collection[Host]) -> bool:
        """Is a host in rotation, with a place free, that this call has not tried yet?
        (One at its cap is not: ``pick`` would send the retry to a tried host.)"""
        with self._lock:
            now = self._clock()
            return any(
                host not in tried and not host.out(now) and len(host.pending) < self.limit
                for host in self.hosts
            )

    def done(self, lease: Lease, outcome: Outcome | None) -> None:
        """The attempt on ``lease`` ended with ``outcome``; ``None``: it says nothing about
        the host's health (cancelled, or cut by its caller's own deadline): its place is
        freed, and the time it went unanswered still bounds the host's latency from below.
        A lease already given back is ignored."""
        now, host = self._clock(), lease.host
        if outcome is not None and self._quick(host, outcome, now - lease.started):
            if host.pending.pop(lease, host) is not host:  # (not given back already)
                host.recent.append(outcome.label)
                host.quick.append((now - lease.started, now))
                if len(host.quick) >= FOLD_EVERY:
                    with self._lock:
                        host.fold()
            return
        ejected = None
        with self._lock:
            host.fold()
            if host.pending.pop(lease, host) is host:
                return
            if outcome is None:
                host.observe_at_least(now - lease.started, now)
            else:
                ejected = self._judge(host, outcome, now - lease.started, now)
        if ejected:
            self._tell("host_ejected", lease.host, ejected)

    def snapshot(self) -> list[dict[str, object]]:
        """Each host's state, for the resilience page."""
        with self._lock:
            now = self._clock()
            for host in self.hosts:
                host.fold()
            return [
                {
                    "url": host.url,
                    "label": host.label,
                    "ejected_for": round(max(0.0, host.ejected_until - now), 2)
                    if host.ejected_until
                    else None,
                    "in_flight": len(host.pending),
                    "load": round(host.load(now), 4),
                    "consecutive_failures": host.consecutive,
                    "ejections": host.ejections,
                    "recent": list(host.recent),
                }
                for host in self.hosts
            ]

    def _choose(self, hosts: list[Host], now: float) -> Host:
        if len(hosts) == 1:
            return hosts[0]
        if self._round_robin:
            self._turn += 1
            return hosts[self._turn % len(hosts)]
        last = len(hosts) - 1  # min(): a ``random`` that returns 1.0 (tests) stays in range
        first = min(int(self._random() * len(hosts)), last)
        second = min(int(self._random() * last), last - 1)  # one of the others:
        a, b = hosts[first], hosts[second + (second >= first)]  # skip over ``first``
        # Fewer in flight breaks a tie (two idle hosts, or attempts just started).
        return a if (a.load(now), len(a.pending)) <= (b.load(now), len(b.pending)) else b

    def _quick(self, host: Host, outcome: Outcome, seconds: float) -> bool:
        """A healthy, quick answer from a host with nothing to undo (no streak, no ejection
        history): only its latency sample to count, which may wait (``Host.quick``)."""
        return not (
            outcome.upstream_failed
            or outcome.status == TOO_MANY_REQUESTS
            or (self._slow_call > 0 and seconds >= self._slow_call)
            or host.consecutive
            or host.multiplier
        )

    def _judge(self, host: Host, outcome: Outcome, seconds: float, now: float) -> str | None:
        """Count the attempt; the cause if it ejects the host."""
        host.recent.append(outcome.label)
        slow = self._slow_call > 0 and seconds >= self._slow_call
        failed = outcome.upstream_failed
        # A 429 is not a sick host (no ejection), but it is no answer either: it costs.
        costly = failed or outcome.status == TOO_MANY_REQUESTS
        host.observe(BAD_COST if costly else seconds, now)
        if not (failed or slow):
            host.consecutive = 0
            if host.multiplier and now - host.healthy_since >= self._base:
                host.multiplier -= 1
                host.healthy_since = now
            return None
        host.consecutive += 1
        if host.consecutive < self._threshold or host.ejected_until or not self._may_eject(now):
            return None
        host.multiplier += 1
        host.ejections += 1
        seconds_out = min(self._base * host.multiplier, self._max)
        host.ejected_until = now + seconds_out
        last = f"{outcome.label} in {seconds * 1000:.0f} ms"
        return (
            f"{host.consecutive} failed or slow attempts in a row (last: {last});"
            f" out for {seconds_out:g} s"
        )

    def _may_eject(self, now: float) -> bool:
        return sum(host.out(now) for host in self.hosts) < self._max_ejected

    def _tell(self, event: str, host: Host, cause: str) -> None:
        if self._notify is not None:
            self._notify(event, host, cause)
