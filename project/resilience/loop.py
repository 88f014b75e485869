"""The call loop: one call to an upstream, attempt by attempt, under one deadline.

The tutorial mounted ``HTTPAdapter(max_retries=Retry(...))`` on a new ``Session`` per call
and let urllib3 loop. That loop cannot clip each attempt to a total deadline, cut off a
body that trickles in, consult a retry budget, a bulkhead or a circuit breaker, hedge, or
log each attempt. So the transport (``transport.py``) makes exactly one attempt, the
policy (``policy.py``) judges it, and this module runs the loop between them:

    breaker, bulkhead -> host -> attempt (hedged?) -> verdict -> attempts left? -> wait
    fits? -> breaker still closed? -> budget? -> sleep -> breaker still closed? -> host ...

With several hosts (``hosts.py``), each attempt goes to the best host this call has not
tried, and a retry to such a host goes at once: the backoff spreads repeated load on one
server, and another replica has not seen this call.

Every way the loop gives up goes through ``_give_up``: its events, then one error.
"""

from __future__ import annotations

import json
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn

import requests
from requests.structures import CaseInsensitiveDict

from . import events, policy
from .breaker import CircuitBreaker, Permit, State
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .config import UpstreamConfig
from .deadline import Clock, Deadline
from .errors import (
    Attempt,
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .events import Event, Listener
from .hedging import Hedger, Race, Runner
from .hosts import Host, HostSet, Lease
from .outcome import TIMEOUTS, Outcome
from .testing import is_testing
from .transport import Request, Transport
from .watchdog import WATCHDOG, Guard, Watchdog

BUDGET_SPENT = "retry budget exhausted"
OPENED_MEANWHILE = "the circuit opened meanwhile (other calls failed)"
NO_TIME = "deadline exceeded before an attempt could start"
NO_HOST = "every host in rotation has its attempts in flight"
#: In a call's history: the attempt of a hedged pair that did not win, cancelled or ignored.
HEDGE_LOST = "hedge_lost"
#: Retry-After for a call the bulkhead refused: the slow calls ahead of it take about this.
OVERLOADED_RETRY_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A complete response (body read within the deadline and size cap) and how it came."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    history: tuple[Attempt, ...]

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` if it is not JSON."""
        return json.loads(self.content)


@dataclass(slots=True)
class _Call:
    """One call's state, from first attempt to answer or give-up."""

    request: Request
    path: str
    deadline: Deadline  # the one that binds: the configured one or the caller's, if tighter
    own: Deadline  # the configured one
    tighter: bool  # the caller's deadline binds
    keyed: bool  # carries an Idempotency-Key
    started: float
    permit: Permit | None  # the breaker's, paused while the loop sleeps
    history: list[Attempt] = field(default_factory=list)
    tried: list[Host] = field(default_factory=list)  # hosts its attempts went to


@dataclass(frozen=True, slots=True)
class _Tried:
    """The attempt that decides: its outcome and number, when it started, the time it had
    and the configured deadline's time left then (to tell whose deadline cut it)."""

    outcome: Outcome
    number: int
    started: float
    left: float
    own_left: float
    hedge: bool = False  # sent beside another attempt, not after a failure
    host: Host | None = None


class RetryManager:
    """Calls one upstream resiliently. One instance per upstream per process; thread-safe.

    ``clock``, ``sleep`` and ``random`` are injectable so tests never wait through backoff.
    ``watchdog`` enforces the deadline in every phase of an attempt (the process's own by
    default); it needs the default session's adapter.
    """

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        listeners: Iterable[Listener] = (events.log_event,),
        session: requests.Session | None = None,
        watchdog: Watchdog = WATCHDOG,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._listeners = tuple(listeners)
        self.transport = Transport(config, watchdog, session=session)
        self.budget = RetryBudget(
            ratio=config.retry_budget,
            min_per_second=config.budget_min_retries_per_second,
            window=config.budget_window,
            clock=clock,
        )
        self.bulkhead = Bulkhead(config.max_concurrency)
        self.hosts = HostSet(config, clock=clock, random=random, notify=self._on_host)
        self.breaker = (
            CircuitBreaker(
                failure_ratio=config.breaker_failure_ratio,
                min_calls=config.breaker_min_calls,
                consecutive_failures=config.breaker_consecutive_failures,
                window=config.breaker_window,
                reset=config.breaker_reset,
                slow_call=config.slow_call,
                slow_call_ratio=config.breaker_slow_call_ratio,
                clock=clock,
                on_transition=self._on_breaker,
            )
            if config.breaker
            else None
        )
        self._hedger = Hedger(
            self.transport, workers=2 * config.max_concurrency, name=config.name, clock=clock
        )

    @property
    def session(self) -> requests.Session:
        return self.transport.session

    def close(self) -> None:
        self.transport.close()
        self._hedger.close()

    def get(self, path: str, **kwargs: Any) -> UpstreamResponse:
        return self.request("GET", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        deadline: Deadline | None = None,
    ) -> UpstreamResponse:
        """Send ``method path`` until it succeeds, is not worth retrying, or time runs out.

        Returns any response that is not a failure of the upstream (2xx, 3xx, 4xx but 429);
        raises an ``UpstreamError`` subclass otherwise. ``deadline`` (a caller's, tighter
        than the configured one) bounds everything, the body included.
        """
        method = method.upper()
        cfg = self.config
        rejected = partial(Event, upstream=cfg.name, method=method, path=path)
        permit: Permit | None = None
        if self.breaker is not None:
            permit = self.breaker.allow()
            if permit is None:
                self._emit(rejected(events.BREAKER_REJECTED))
                raise CircuitOpen(
                    cfg.name, "circuit open", retry_after=self.breaker.retry_after_header()
                )
        if not self.bulkhead.try_enter():
            if self.breaker is not None:
                self.breaker.release(permit)
            cause = f"bulkhead full: {cfg.max_concurrency} calls in flight"
            self._emit(rejected(events.BULKHEAD_REJECTED, cause=cause))
            raise UpstreamOverloaded(cfg.name, cause, retry_after=OVERLOADED_RETRY_AFTER)
        # The breaker sees what the caller sees: one outcome per call, after the retries.
        # Flakiness the retries absorb is not an outage; calls that fail despite them are.
        # A call ended by its caller's own, tighter deadline says nothing about the
        # upstream's answers: it is not counted (only its slowness is), or anyone could
        # open the breaker with a short deadline header.
        healthy: bool | None = None  # a bug (not an UpstreamError) says nothing either
        try:
            call = self._start(method, path, params, headers, json_body, deadline, permit)
            response = self._run(call)
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            healthy = None if exc.callers_deadline else False
            raise
        except UpstreamBadResponse:
            healthy = True  # it answered: a healthy server with a bad answer
            raise
        else:
            healthy = True
            return response
        finally:
            self.bulkhead.leave()
            if self.breaker is not None:
                if healthy is None:
                    self.breaker.release(permit)
                else:
                    self.breaker.record(permit, success=healthy)

    def _start(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json_body: Any,
        deadline: Deadline | None,
        permit: Permit | None,
    ) -> _Call:
        cfg = self.config
        sent = CaseInsensitiveDict(headers or {})  # RFC 9110: names are case-insensitive
        own = Deadline.after(cfg.deadline, self._clock)
        binding = own if deadline is None else deadline.earliest(own.remaining())
        return _Call(
            request=Request(method, path, params, sent, json_body),
            path=path,
            deadline=binding,
            own=own,
            tighter=binding is deadline,
            keyed=policy.IDEMPOTENCY_HEADER in sent,
            started=self._clock(),
            permit=permit,
        )

    def _run(self, call: _Call) -> UpstreamResponse:
        """The retry loop of one call."""
        cfg = self.config
        method = call.request.method
        while True:
            if call.deadline.remaining() < cfg.min_attempt:
                self._give_up(call, None, NO_TIME, needed=cfg.min_attempt)
            if not call.history:
                self.budget.record_request()
            tried = self._attempt(call)
            outcome, number, left, own_left = (
                tried.outcome,
                tried.number,
                tried.left,
                tried.own_left,
            )
            elapsed = self._clock() - tried.started
            event = partial(
                Event,
                upstream=cfg.name,
                method=method,
                path=call.path,
                attempt=number,
                max_attempts=cfg.retries + 1,
                outcome=outcome.label,
                elapsed=elapsed,
                host=self._host_label(tried.host),
            )
            judged = policy.verdict(
                outcome,
                method=method,
                idempotency_key=call.keyed,
                retry_statuses=cfg.retry_statuses,
            )
            if judged.done:
                _add(call.history, Attempt(number, outcome.label, elapsed))
                if number > 1 and not tried.hedge:
                    self.budget.refund()  # a retry that worked was not wasted load; a hedge
                    # that won still added load, and hedges must stay within the budget
                duration = self._clock() - call.started
                self._emit(event(events.CALL_SUCCEEDED, duration=duration))
                return UpstreamResponse(
                    outcome.status or 0, outcome.headers, outcome.content, tuple(call.history)
                )
            attempts = len(call.history) + 1  # this one, and a hedged pair's other one
            wait, stop, needed, retry_after = self._next_wait(call, outcome, judged, attempts)
            _add(call.history, Attempt(number, outcome.label, elapsed, None if stop else wait))
            if stop is not None:
                self._give_up(
                    call,
                    outcome,
                    stop,
                    event=event,
                    left=left,
                    own_left=own_left,
                    needed=needed,
                    retry_after=retry_after,
                )
            self._emit(
                event(
                    events.RETRY_SCHEDULED,
                    cause=outcome.label,
                    wait=wait,
                    time_left=call.deadline.remaining(),
                )
            )
            self._pause(call, wait)
            if self._breaker_open():  # do not send it, and give its token back
                self.budget.refund()
                self._give_up(call, outcome, OPENED_MEANWHILE, event=event)

    def _next_wait(
        self, call: _Call, outcome: Outcome, judged: policy.Verdict, attempts: int
    ) -> tuple[float, str | None, float | None, float | None]:
        """(wait, stop, time another attempt needed, Retry-After) after a failed attempt."""
        cfg = self.config
        if judged.stop is not None:
            return 0.0, judged.stop, None, None
        if not policy.attempts_left(attempts, retries=cfg.retries):
            return 0.0, "retries exhausted", None, None
        remaining = call.deadline.remaining()
        retry_after = policy.retry_after(outcome)
        if retry_after is not None:
            wait = retry_after
            if not policy.fits(wait, time_left=remaining, min_attempt=cfg.min_attempt):
                stop = f"Retry-After {retry_after:g} s exceeds the {remaining:.2f} s left"
                return wait, stop, wait + cfg.min_attempt, retry_after
        else:
            wait = self._backoff(call)
            if not policy.fits(wait, time_left=remaining, min_attempt=cfg.min_attempt):
                stop = f"no time for another attempt ({remaining:.2f} s left)"
                return wait, stop, wait + cfg.min_attempt, None
        if self._breaker_open():  # other calls failed meanwhile: no sleep, no token
            return wait, OPENED_MEANWHILE, None, retry_after
        if not self.budget.try_acquire():
            return wait, BUDGET_SPENT, None, retry_after
        return wait, None, None, retry_after

    def _backoff(self, call: _Call) -> float:
        """The jittered backoff; none when another host has not seen this call yet."""
        cfg = self.config
        if self.hosts.several and self.hosts.untried(call.tried):
            return 0.0
        jitter = None
        if cfg.backoff_jitter:
            jitter = 1.0 if is_testing() else self._random()
        failures = sum(1 for a in call.history if a.outcome != HEDGE_LOST) + 1
        return policy.backoff(
            failures, factor=cfg.backoff_factor, cap=cfg.backoff_max, jitter=jitter
        )

    def _breaker_open(self) -> bool:
        return self.breaker is not None and self.breaker.state is State.OPEN

    def _pause(self, call: _Call, wait: float) -> None:
        """Sleep before the next attempt (not in testing mode). The breaker's clock for
        this call stops meanwhile: waiting by choice does not make the upstream slow."""
        if call.permit is not None:
            call.permit.pause(self._clock())
        if not is_testing():
            self._sleep(wait)
        if call.permit is not None:
            call.permit.resume(self._clock())

    # -- attempts -------------------------------------------------------------------------

    def _attempt(self, call: _Call) -> _Tried:
        """One attempt, or a hedged pair (a losing hedge goes into the history)."""
        if self.config.hedge_after > 0 and policy.may_repeat(
            call.request.method, idempotency_key=call.keyed
        ):
            return self._hedged(call)
        lease = self._lease(call)
        call.tried.append(lease.host)
        started, left, own_left = self._clock(), call.deadline.remaining(), call.own.remaining()
        outcome = self._send(call, lease, call.request, self.transport.arm(left))
        return _Tried(outcome, len(call.history) + 1, started, left, own_left, host=lease.host)

    def _lease(self, call: _Call) -> Lease:
        """A place on the host for the next attempt (one not tried yet, if any)."""
        lease = self.hosts.pick(call.tried)
        if lease is None:
            self._give_up(call, None, NO_HOST)
        return lease

    def _send(
        self,
        call: _Call,
        lease: Lease,
        request: Request,
        guard: Guard,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Outcome:
        """One attempt on ``lease``'s host; the host hears how it went, unless the attempt
        was ``cancelled`` (a hedge that lost) or cut short by the caller's own deadline."""
        left, own_left = call.deadline.remaining(), call.own.remaining()
        outcome = self.transport.send(request, guard, call.deadline, lease.host.url)
        callers = (
            call.tighter
            and outcome.error in TIMEOUTS
            and policy.callers_cut(
                outcome,
                needed=None,
                left=left,
                own_left=own_left,
                own_remaining=0.0,
                connect_timeout=self.config.connect_timeout,
                read_timeout=self.config.read_timeout,
            )
        )
        self.hosts.done(lease, None if callers or cancelled() else outcome)
        return outcome

    def _hedged(self, call: _Call) -> _Tried:
        """Send an attempt; if it has no answer after ``hedge_after``, send one more beside
        it, to another host if there is one (while attempts, time, budget and hosts' places
        allow). The first good answer wins; the other is cancelled (``hedging.py``).
        Events come from this thread only.
        """
        cfg = self.config
        number = len(call.history) + 1
        race = self._hedger.race(call.request, call.deadline)
        first = self._launch(race, call, number, self._lease(call))
        if (
            not race.answered_within(cfg.hedge_after)
            and policy.may_hedge(
                call.request.method,
                idempotency_key=call.keyed,
                attempts=number,
                retries=cfg.retries,
                time_left=call.deadline.remaining(),
                min_attempt=cfg.min_attempt,
            )
            and self.budget.try_acquire()
        ):
            lease = self.hosts.pick(call.tried)
            if lease is None:  # no host has a place for it: not sent, its token back
                self.budget.refund()
            else:
                self._emit(
                    Event(
                        events.HEDGE_SENT,
                        cfg.name,
                        method=call.request.method,
                        path=call.path,
                        attempt=number + 1,
                        max_attempts=cfg.retries + 1,
                        elapsed=self._clock() - first.started,
                        host=self._host_label(lease.host),
                    )
                )
                self._launch(race, call, number + 1, lease)
        winner, outcome = race.first_good(
            lambda seen: _worth_another(seen, call, cfg.retry_statuses)
        )
        for loser in race.runners:
            if loser is not winner:
                # Finished (and failed) before the winner, or cut when the winner won.
                seen = race.finished.get(loser.number)
                label = seen.label if seen is not None else HEDGE_LOST
                _add(call.history, Attempt(loser.number, label, self._clock() - loser.started))
        own_left = max(0.0, call.own.expires_at - winner.started)  # when the winner started
        hedge = winner is not first
        return _Tried(
            outcome, winner.number, winner.started, winner.left, own_left, hedge, winner.host
        )

    def _launch(self, race: Race, call: _Call, number: int, lease: Lease) -> Runner:
        """Start attempt ``number`` of a race on ``lease``'s host."""
        call.tried.append(lease.host)
        send = partial(self._send, call, lease, cancelled=lambda: race.over)
        return race.launch(number, send, lease.host)

    # -- giving up ------------------------------------------------------------------------

    def _give_up(
        self,
        call: _Call,
        outcome: Outcome | None,
        cause: str,
        *,
        event: Callable[..., Event] | None = None,
        left: float = 0.0,
        own_left: float = 0.0,
        needed: float | None = None,
        retry_after: float | None = None,
    ) -> NoReturn:
        """The one way a call fails: its events, then the honest error for how it ended."""
        cfg = self.config
        if event is None:
            event = partial(Event, upstream=cfg.name, method=call.request.method, path=call.path)
        if cause == BUDGET_SPENT:
            self._emit(event(events.BUDGET_EXHAUSTED, cause=cause))
        self._emit(event(events.CALL_FAILED, cause=cause, duration=self._clock() - call.started))
        history = tuple(call.history)
        error: UpstreamError
        if cause == NO_HOST:
            error = UpstreamOverloaded(cfg.name, cause, retry_after=OVERLOADED_RETRY_AFTER)
        elif policy.timed_out(outcome):
            error = UpstreamTimeout(cfg.name, cause, history=history)
        elif outcome is not None and not outcome.upstream_failed and outcome.status != 429:
            error = UpstreamBadResponse(cfg.name, cause, history=history)  # unusable answer
        else:
            if retry_after is None and outcome is not None:
                retry_after = policy.retry_after(outcome)
            breaker = self.breaker
            if retry_after is None and breaker is not None and breaker.state is State.OPEN:
                retry_after = breaker.retry_after_header()
            error = UpstreamUnavailable(cfg.name, cause, history=history, retry_after=retry_after)
        error.callers_deadline = call.tighter and policy.callers_cut(
            outcome,
            needed=needed,
            left=left,
            own_left=own_left,
            own_remaining=call.own.remaining(),
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
        )
        raise error

    # -- events ---------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        """To every listener; one that raises (a full disk under the log, say) is logged
        and skipped: instrumentation must not fail a call or strand the breaker's probe."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                events.logger.exception("listener %r failed on %s", listener, event.name)

    def _host_label(self, host: Host | None) -> str | None:
        """The host, on events, only where there are several: one host's lines stay as
        they were."""
        return host.label if host is not None and self.hosts.several else None

    def _on_host(self, name: str, host: Host, cause: str) -> None:
        self._emit(Event(name, self.config.name, cause=cause, host=host.label))

    def _on_breaker(self, state: State, cause: str) -> None:
        name = {
            State.OPEN: events.BREAKER_OPENED,
            State.HALF_OPEN: events.BREAKER_HALF_OPEN,
            State.CLOSED: events.BREAKER_CLOSED,
        }[state]
        self._emit(Event(name, self.config.name, cause=cause))


def _add(history: list[Attempt], attempt: Attempt) -> None:
    """Into the history in attempt order (a hedge's loser may be added before its winner)."""
    history.append(attempt)
    history.sort(key=lambda a: a.number)


def _worth_another(outcome: Outcome, call: _Call, retry_statuses: frozenset[int]) -> bool:
    """Is this a failure a hedge still running might beat?"""
    judged = policy.verdict(
        outcome,
        method=call.request.method,
        idempotency_key=call.keyed,
        retry_statuses=retry_statuses,
    )
    return judged.retry
