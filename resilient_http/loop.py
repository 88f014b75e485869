"""The call loop: one call to an upstream, attempt by attempt, under one deadline.

The tutorial mounted ``HTTPAdapter(max_retries=Retry(...))`` on a new ``Session`` per call
and let urllib3 loop. That loop cannot clip each attempt to a total deadline, cut off a
body that trickles in, consult a retry budget, a bulkhead or a circuit breaker, hedge, or
log each attempt. So the transport (``transport.py``) makes exactly one attempt, the
call's ``RetryState`` (``policy.py``) decides what follows, and this module runs the loop
between them:

    admission (breaker, bulkhead) -> host -> attempt (hedged?) -> decision -> breaker
    still closed? -> budget? -> sleep -> breaker still closed? -> host -> attempt ...

With several hosts (``hosts.py``), each attempt goes to the best host this call has not
tried, and a retry to such a host goes at once: the backoff spreads repeated load on one
server, and another replica has not seen this call.

Every way the loop gives up goes through ``_give_up``: its events, then one error.
"""

from __future__ import annotations

import contextlib
import json
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn

import requests
from requests.structures import CaseInsensitiveDict

from . import events, policy
from .admission import Admission
from .breaker import CircuitBreaker, NoBreaker, Permit, State
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .config import UpstreamConfig
from .deadline import Clock, Deadline
from .errors import (
    DEFAULT_RETRY_AFTER,
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
from .outcome import Outcome
from .policy import Decision, Kind, RetryState
from .testing import is_testing
from .transport import Request, Transport
from .watchdog import WATCHDOG, Guard, Watchdog

#: An attempt's facts, shared by the events about it (``_attempt_facts``).
Facts = dict[str, Any]

BUDGET_SPENT = "retry budget exhausted"
OPENED_MEANWHILE = "the circuit opened meanwhile (other calls failed)"
NO_TIME = "deadline exceeded before an attempt could start"
NO_HOST = "every host in rotation has its attempts in flight"
#: In a call's history: the attempt of a hedged pair that did not win, cancelled or ignored.
HEDGE_LOST = "hedge_lost"
GATEWAY_TIMEOUT = 504


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


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What a scope (``RetryManager(scopes=...)``) is told of the call it is entered around."""

    upstream: str
    method: str
    path: str
    deadline: float  # seconds the call has: the configured deadline, or the caller's if tighter


#: Entered around each call, in the caller's thread, before admission and left after the
#: answer or the error: a trace span, the live page's row. Events say what happened inside.
Scope = Callable[[CallInfo], AbstractContextManager[object]]
#: Headers computed per call and sent with every attempt (a request ID); the caller's own
#: ``headers`` win.
HeaderSource = Callable[[], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """What the attempt hook (``RetryManager(on_attempt=...)``) is told of an attempt."""

    upstream: str
    method: str
    url: str  # the host's base URL + the path
    params: Mapping[str, str] | None
    host: str  # the host's label
    number: int  # 1 for the first attempt; a hedge has its own number


#: Called as each attempt is sent, in the thread that sends it (a hedge's runs in a copy of
#: the caller's context), with the attempt's own headers to add to (a trace context); what
#: it returns is called with the attempt's outcome. A client span per attempt.
AttemptHook = Callable[[AttemptInfo, MutableMapping[str, str]], Callable[[Outcome], None]]


@dataclass(slots=True)
class _Call:
    """One call's state, from first attempt to answer or give-up."""

    request: Request
    deadline: Deadline  # the one that binds: the configured one or the caller's, if tighter
    configured: Deadline  # the configured one
    callers_binds: bool  # the caller's deadline is the one that binds
    started: float
    permit: Permit  # the breaker's, paused while the loop sleeps
    retry: RetryState
    history: list[Attempt] = field(default_factory=list)
    tried: list[Host] = field(default_factory=list)  # hosts its attempts went to

    @property
    def path(self) -> str:
        return self.request.path


@dataclass(frozen=True, slots=True)
class _Tried:
    """The attempt that decides: its outcome and number, when it started, and whether the
    caller's own deadline cut it short (``policy.cut_short``)."""

    outcome: Outcome
    number: int
    started: float
    cut_short: bool = False
    hedge: bool = False  # sent beside another attempt, not after a failure
    host: Host | None = None
    sent: int = 1  # attempts this round: two for a hedged pair
    cut: int = 0  # of those, cut before they ended (``HEDGE_LOST``): not failures


#: Before any attempt: no outcome, the whole time.
_NOTHING_TRIED = _Tried(Outcome(error="deadline_exceeded"), 0, 0.0)


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
        scopes: Iterable[Scope] = (),
        headers: HeaderSource | None = None,
        on_attempt: AttemptHook | None = None,
        session: requests.Session | None = None,
        watchdog: Watchdog = WATCHDOG,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._listeners = tuple(listeners)
        self._scopes = tuple(scopes)
        self._headers = headers
        self._on_attempt = on_attempt
        self.transport = Transport(config, watchdog, session=session)
        self.budget = RetryBudget(
            ratio=config.retry_budget,
            min_per_second=config.budget_min_retries_per_second,
            window=config.budget_window,
            clock=clock,
        )
        self.hosts = HostSet(config, clock=clock, random=random, notify=self._on_host)
        self.admission = Admission(
            config.name, self._breaker(config, clock), Bulkhead(config.max_concurrency)
        )
        self._hedger = Hedger(
            self.transport, workers=2 * config.max_concurrency, name=config.name, clock=clock
        )

    def _breaker(self, config: UpstreamConfig, clock: Clock) -> CircuitBreaker | NoBreaker:
        if not config.breaker:
            return NoBreaker()
        return CircuitBreaker(
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

    @property
    def breaker(self) -> CircuitBreaker | NoBreaker:
        return self.admission.breaker

    @property
    def bulkhead(self) -> Bulkhead:
        return self.admission.bulkhead

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
        if not path.startswith("/") or path.startswith("//"):
            # "@other-host/x" or "//other-host/x" glued to the base URL would go elsewhere.
            raise ValueError(f"path must start with a single '/': {path!r}")
        method = method.upper()
        # Admission first, the deadlines and the request after: an open breaker refuses at
        # once (an outage may bring a hundred thousand refusals a second).
        if not self._scopes:
            return self._call(method, path, deadline, params, headers, json_body)
        seconds = self.config.deadline
        left = seconds if deadline is None else min(seconds, deadline.remaining())
        info = CallInfo(self.config.name, method, path, left)
        with contextlib.ExitStack() as scopes:
            for scope in self._scopes:
                scopes.enter_context(scope(info))
            return self._call(method, path, deadline, params, headers, json_body)

    def _call(
        self,
        method: str,
        path: str,
        deadline: Deadline | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json_body: Any,
    ) -> UpstreamResponse:
        permit = self._admit(method, path)
        # The breaker sees what the caller sees: one outcome per call, after the retries.
        healthy: bool | None = None  # a bug (not an UpstreamError) says nothing
        try:
            binding, configured = self.deadlines(deadline)
            sent = CaseInsensitiveDict(self._headers() if self._headers else None)
            if headers:
                sent.update(headers)
            request = Request(method, path, params, sent, json_body)
            call = self._start(request, binding, configured, binding is deadline, permit)
            response = self._run(call)
            healthy = True
            return response
        except UpstreamError as exc:
            healthy = _health(exc)
            raise
        finally:
            self.admission.leave(permit, healthy)

    def _admit(self, method: str, path: str) -> Permit:
        try:
            return self.admission.enter()
        except (CircuitOpen, UpstreamOverloaded) as refused:
            if not self._listeners:
                raise
            name = self.config.name
            if isinstance(refused, UpstreamOverloaded):
                cause = refused.reason
                self._emit(
                    events.BulkheadRejected(upstream=name, method=method, path=path, cause=cause)
                )
            else:
                self._emit(events.BreakerRejected(upstream=name, method=method, path=path))
            raise

    def deadlines(self, callers: Deadline | None = None) -> tuple[Deadline, Deadline]:
        """(the deadline that binds a call starting now, the configured one): the caller's
        own ``callers`` binds if it is tighter."""
        configured = Deadline.after(self.config.deadline, self._clock)
        binding = configured if callers is None else callers.earliest(configured.remaining())
        return binding, configured

    def _start(
        self,
        request: Request,
        binding: Deadline,
        configured: Deadline,
        callers_binds: bool,
        permit: Permit,
    ) -> _Call:
        cfg = self.config
        retry = RetryState(
            request.method,
            policy.IDEMPOTENCY_HEADER in request.headers,  # RFC 9110: any case
            cfg.retries,
            cfg.retry_statuses,
            cfg.min_attempt,
        )
        return _Call(request, binding, configured, callers_binds, self._clock(), permit, retry)

    def _run(self, call: _Call) -> UpstreamResponse:
        """The retry loop of one call."""
        while True:
            needed = self.config.min_attempt
            if call.deadline.remaining() < needed:
                callers = policy.callers_time(needed, self._configured_left(call))
                decision = policy.give_up(NO_TIME, needed=needed, callers_deadline=callers)
                self._give_up(call, _NOTHING_TRIED, decision)
            if not call.history:
                self.budget.record_request()
            tried = self._attempt(call)
            elapsed = self._clock() - tried.started
            call.retry = call.retry.sent(tried.sent, cut=tried.cut)
            decision = self._decide(call, tried)
            if decision.kind is Kind.ANSWER:
                return self._answer(call, tried, elapsed)
            facts = self._attempt_facts(call, tried, elapsed)
            wait = decision.wait if decision.kind is Kind.RETRY else None
            _add(call.history, Attempt(tried.number, tried.outcome.label, elapsed, wait))
            if decision.kind is Kind.GIVE_UP:
                self._give_up(call, tried, decision, facts)
            self._wait_to_retry(call, tried, decision, facts)

    def _decide(self, call: _Call, tried: _Tried) -> Decision:
        """The call's own decision, then what is shared with other calls: the breaker
        (opened meanwhile: no sleep, no token) and the retry budget."""
        decision = call.retry.next(
            tried.outcome,
            time_left=call.deadline.remaining(),
            backoff=self._backoff,
            elsewhere=self.hosts.several and self.hosts.untried(call.tried),
            configured_left=self._configured_left(call),
            cut_short=tried.cut_short,
        )
        if decision.kind is not Kind.RETRY:
            return decision
        if self.breaker.state is State.OPEN:
            return decision.give_up(OPENED_MEANWHILE, cut_short=tried.cut_short)
        if not self.budget.try_acquire():
            return decision.give_up(BUDGET_SPENT, cut_short=tried.cut_short)
        return decision

    def _configured_left(self, call: _Call) -> float | None:
        """The configured deadline's time left, when the caller's binds (else None)."""
        return call.configured.remaining() if call.callers_binds else None

    def _wait_to_retry(self, call: _Call, tried: _Tried, decision: Decision, facts: Facts) -> None:
        self._emit(
            events.RetryScheduled(
                **facts,
                cause=tried.outcome.label,
                wait=decision.wait,
                time_left=call.deadline.remaining(),
                retry_after=decision.retry_after,
            )
        )
        self._pause(call, decision.wait)
        if self.breaker.state is State.OPEN:  # do not send it, and give its token back
            self.budget.refund()
            refused = decision.give_up(OPENED_MEANWHILE, cut_short=tried.cut_short)
            self._give_up(call, tried, refused, facts)

    def _answer(self, call: _Call, tried: _Tried, elapsed: float) -> UpstreamResponse:
        outcome = tried.outcome
        _add(call.history, Attempt(tried.number, outcome.label, elapsed))
        if tried.number > 1 and not tried.hedge:
            self.budget.refund()  # a retry that worked was not wasted load; a hedge that
            # won still added load, and hedges must stay within the budget
        if self._listeners:  # (the event is not built for nobody: this is every call)
            facts = self._attempt_facts(call, tried, elapsed)
            duration, waited = self._clock() - call.started, _waited(call.history)
            self._emit(events.CallSucceeded(**facts, duration=duration, waited=waited))
        return UpstreamResponse(
            outcome.status or 0, outcome.headers, outcome.content, tuple(call.history)
        )

    def _backoff(self, failures: int) -> float:
        """The backoff after ``failures`` failed attempts, jittered (deterministically
        in testing mode)."""
        cfg = self.config
        jitter = None
        if cfg.backoff_jitter:
            jitter = 1.0 if is_testing() else self._random()
        return policy.backoff(
            failures, factor=cfg.backoff_factor, cap=cfg.backoff_max, jitter=jitter
        )

    def _pause(self, call: _Call, wait: float) -> None:
        """Sleep before the next attempt (not in testing mode). The breaker's clock for
        this call stops meanwhile: waiting by choice does not make the upstream slow."""
        call.permit.pause(self._clock())
        if not is_testing():
            self._sleep(wait)
        call.permit.resume(self._clock())

    # -- attempts -------------------------------------------------------------------------

    def _attempt(self, call: _Call) -> _Tried:
        """One attempt, or a hedged pair (a losing hedge goes into the history)."""
        if self.config.hedge_after > 0 and policy.may_repeat(
            call.request.method, idempotency_key=call.retry.keyed
        ):
            return self._hedged(call)
        lease = self._lease(call)
        call.tried.append(lease.host)
        started, left = self._clock(), call.deadline.remaining()
        configured_left = call.configured.remaining()
        number = len(call.history) + 1
        outcome = self._send(call, number, lease, call.request, self.transport.arm(left))
        cut = self._cut_short(call, outcome, left, configured_left)
        return _Tried(outcome, number, started, cut, host=lease.host)

    def _lease(self, call: _Call) -> Lease:
        """A place on the host for the next attempt (one not tried yet, if any)."""
        lease = self.hosts.pick(call.tried)
        if lease is None:
            self._give_up(call, _NOTHING_TRIED, policy.give_up(NO_HOST))
        return lease

    def _send(
        self,
        call: _Call,
        number: int,
        lease: Lease,
        request: Request,
        guard: Guard,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Outcome:
        """One attempt on ``lease``'s host; the host hears how it went, unless the attempt
        was ``cancelled`` (a hedge that lost) or cut short by the caller's own deadline."""
        left, configured_left = call.deadline.remaining(), call.configured.remaining()
        heard = self._hook(number, lease, request)
        try:
            outcome = self.transport.send(request, guard, call.deadline, lease.host.url)
        except BaseException:  # a bug re-raised by the transport: the place is still freed
            self.hosts.done(lease, None)
            heard(Outcome(error="internal_error"))
            raise
        heard(outcome)
        # A 504 while the caller's deadline binds is Users' "your deadline passed".
        callers = (outcome.status == GATEWAY_TIMEOUT and call.callers_binds) or self._cut_short(
            call, outcome, left, configured_left
        )
        self.hosts.done(lease, None if callers or cancelled() else outcome)
        return outcome

    def _hook(self, number: int, lease: Lease, request: Request) -> Callable[[Outcome], None]:
        """The attempt hook's ear for this attempt's outcome (or one that hears nothing)."""
        if self._on_attempt is None:
            return _ignore
        url = lease.host.url + request.path
        info = AttemptInfo(
            self.config.name, request.method, url, request.params, lease.host.label, number
        )
        return self._on_attempt(info, request.headers)

    def _hedged(self, call: _Call) -> _Tried:
        """Send an attempt; if it has no answer after ``hedge_after``, send one more beside
        it, to another host if there is one (while attempts, time, budget and hosts' places
        allow). The first good answer wins; the other is cancelled (``hedging.py``).
        Events come from this thread only.
        """
        number = len(call.history) + 1
        race = self._hedger.race(call.request, call.deadline)
        first = self._launch(race, call, number, self._lease(call))
        if not race.answered_within(self.config.hedge_after) and self._may_hedge(call, number):
            lease = self.hosts.pick(call.tried)
            if lease is None:  # no host has a place for it: not sent, its token back
                self.budget.refund()
            else:
                self._emit_hedge(call, number + 1, lease, first.started)
                self._launch(race, call, number + 1, lease)
        winner, outcome = race.first_good(partial(_worth_another, call))
        losers = [r for r in race.runners if r is not winner]
        for loser in losers:
            # Finished (and failed) before the winner, or cut when the winner won.
            seen = race.finished.get(loser.number)
            label = seen.label if seen is not None else HEDGE_LOST
            _add(call.history, Attempt(loser.number, label, self._clock() - loser.started))
        configured_left = max(0.0, call.configured.expires_at - winner.started)  # then
        hedge = winner is not first
        return _Tried(
            outcome,
            winner.number,
            winner.started,
            self._cut_short(call, outcome, winner.left, configured_left),
            hedge,
            winner.host,
            sent=len(race.runners),
            cut=sum(1 for r in losers if r.number not in race.finished),
        )

    def _may_hedge(self, call: _Call, number: int) -> bool:
        """Attempts, time and then a budget token allow a hedge beside attempt ``number``."""
        cfg = self.config
        return (
            policy.may_hedge(
                call.request.method,
                idempotency_key=call.retry.keyed,
                attempts=number,
                retries=cfg.retries,
                time_left=call.deadline.remaining(),
                min_attempt=cfg.min_attempt,
            )
            and self.budget.try_acquire()
        )

    def _launch(self, race: Race, call: _Call, number: int, lease: Lease) -> Runner:
        """Start attempt ``number`` of a race on ``lease``'s host."""
        call.tried.append(lease.host)
        send = partial(self._send, call, number, lease, cancelled=lambda: race.over)
        runner = race.launch(number, send, lease.host)
        # Cancelled while still queued for a worker: never sent, so ``_send`` never frees
        # its place; this does (``done`` ignores a lease already given back).
        runner.future.add_done_callback(lambda f: f.cancelled() and self.hosts.done(lease, None))
        return runner

    # -- giving up ------------------------------------------------------------------------

    def _give_up(
        self,
        call: _Call,
        tried: _Tried,
        decision: Decision,
        facts: Facts | None = None,
    ) -> NoReturn:
        """The one way a call fails: its events, then the honest error for how it ended."""
        if facts is None:
            facts = {"upstream": self.config.name, "method": call.request.method, "path": call.path}
        cause = decision.reason
        if cause == BUDGET_SPENT:
            self._emit(events.BudgetExhausted(**facts, cause=cause))
        duration, waited = self._clock() - call.started, _waited(call.history)
        self._emit(events.CallFailed(**facts, cause=cause, duration=duration, waited=waited))
        error = self._error(call, None if tried is _NOTHING_TRIED else tried.outcome, decision)
        error.callers_deadline = decision.callers_deadline
        raise error

    def _error(self, call: _Call, outcome: Outcome | None, decision: Decision) -> UpstreamError:
        """The honest error for how the call ended."""
        name, cause, history = self.config.name, decision.reason, tuple(call.history)
        if cause == NO_HOST:
            return UpstreamOverloaded(name, cause, retry_after=DEFAULT_RETRY_AFTER)
        if policy.timed_out(outcome):
            return UpstreamTimeout(name, cause, history=history)
        if outcome is not None and not outcome.upstream_failed and outcome.status != 429:
            return UpstreamBadResponse(name, cause, history=history)  # an unusable answer
        retry_after = None if outcome is None else policy.retry_after(outcome)
        if retry_after is None and self.breaker.state is State.OPEN:
            retry_after = self.breaker.retry_after_header()
        return UpstreamUnavailable(name, cause, history=history, retry_after=retry_after)

    def _cut_short(
        self, call: _Call, outcome: Outcome, left: float, configured_left: float
    ) -> bool:
        """Did the caller's own, tighter deadline cut this attempt short (``left`` the time
        it had, ``configured_left`` the configured deadline's, when it started)?"""
        cfg = self.config
        return call.callers_binds and policy.cut_short(
            outcome,
            left=left,
            configured_left=configured_left,
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
        )

    # -- events ---------------------------------------------------------------------------

    def _attempt_facts(self, call: _Call, tried: _Tried, elapsed: float) -> Facts:
        """What every event about the attempt that decided says."""
        return {
            "upstream": self.config.name,
            "method": call.request.method,
            "path": call.path,
            "attempt": tried.number,
            "max_attempts": self.config.retries + 1,
            "outcome": tried.outcome.label,
            "elapsed": elapsed,
            "host": self._host_label(tried.host),
        }

    def _emit_hedge(self, call: _Call, number: int, lease: Lease, first_started: float) -> None:
        self._emit(
            events.HedgeSent(
                upstream=self.config.name,
                method=call.request.method,
                path=call.path,
                attempt=number,
                max_attempts=self.config.retries + 1,
                elapsed=self._clock() - first_started,
                host=self._host_label(lease.host),
            )
        )

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
        self._emit(events.make(name, self.config.name, cause=cause, host=host.label))

    def _on_breaker(self, state: State, cause: str) -> None:
        kind = {
            State.OPEN: events.BreakerOpened,
            State.HALF_OPEN: events.BreakerHalfOpen,
            State.CLOSED: events.BreakerClosed,
        }[state]
        self._emit(kind(upstream=self.config.name, cause=cause))


def _health(error: UpstreamError) -> bool | None:
    """What a failed call tells the breaker. Flakiness the retries absorbed is not an
    outage; a call that failed despite them is. A bad answer came from a healthy server.
    A call ended by its caller's own, tighter deadline, or refused before it was sent,
    says nothing (only its slowness counts), or anyone could open the breaker with a short
    deadline header."""
    if isinstance(error, UpstreamBadResponse):
        return True
    if isinstance(error, UpstreamOverloaded) or error.callers_deadline:
        return None
    return False


def _add(history: list[Attempt], attempt: Attempt) -> None:
    """Into the history in attempt order (a hedge's loser may be added before its winner)."""
    history.append(attempt)
    history.sort(key=lambda a: a.number)


def _worth_another(call: _Call, outcome: Outcome) -> bool:
    """Is this a failure a hedge still running might beat? A 429 is: that server is
    rate-limiting us, the other attempt may still answer."""
    return call.retry.verdict(outcome, elsewhere=True).kind is Kind.RETRY


def _ignore(outcome: Outcome) -> None:
    """What hears an attempt's outcome when no hook listens."""


def _waited(history: list[Attempt]) -> float:
    """Seconds a call spent in backoff sleeps."""
    return sum(a.wait or 0.0 for a in history)
