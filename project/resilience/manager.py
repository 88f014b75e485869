"""RetryManager: one pooled session per upstream, driven attempt by attempt under a deadline.

The tutorial mounted ``HTTPAdapter(max_retries=Retry(...))`` on a new ``Session`` per call
and let urllib3 loop. That loop cannot clip each attempt's timeouts to a total deadline,
cut off a body that trickles in, consult a retry budget or a circuit breaker, or log each
attempt. So the adapter here makes exactly one attempt (``max_retries=0``: no second retry
layer to multiply attempts), and this module runs the loop, asking urllib3's ``Retry``
*whether* to retry (allowed methods, status list, counts, history) and deciding *when*.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import math
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from . import events
from .breaker import CircuitBreaker, State
from .budget import RetryBudget
from .config import UpstreamConfig
from .deadline import Clock, Deadline
from .errors import (
    Attempt,
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .events import Event, Listener
from .watchdog import WATCHDOG, Guard, GuardedAdapter, Watchdog, unguarded

#: Request header carrying the caller's time left, in whole milliseconds, so the upstream
#: can stop working for a caller that has given up (like gRPC's ``grpc-timeout``).
DEADLINE_HEADER = "X-Request-Timeout-Ms"
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: The request never reached the upstream: safe to retry whatever the method.
CONNECT_ERRORS = frozenset({"connect_timeout", "connect_error"})
#: The request may have been processed: retry only idempotent requests.
READ_ERRORS = frozenset({"read_timeout", "connection_reset", "deadline_exceeded"})
TIMEOUTS = frozenset({"connect_timeout", "read_timeout", "deadline_exceeded"})


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
class _Result:
    """What one attempt produced: a response, or the kind of error and urllib3's exception."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    raw: Any = None  # the urllib3 response, for Retry.increment
    error: str | None = None
    exc: Exception | None = None

    @property
    def outcome(self) -> str:
        return self.error or str(self.status)

    @property
    def healthy(self) -> bool:
        """Does this say the upstream is healthy? Only timeouts, refusals and 5xx say not."""
        if self.error is not None:
            return self.error not in CONNECT_ERRORS | READ_ERRORS
        return self.status is not None and self.status < 500


BUDGET_SPENT = "retry budget exhausted"
OPENED_MEANWHILE = "the circuit opened meanwhile (other calls failed)"


@dataclass(frozen=True, slots=True)
class _Decision:
    """After an attempt: ``done`` (return the response), ``stop`` (why we give up), or
    retry with the incremented ``retry`` after ``wait`` seconds.
    """

    done: bool = False
    stop: str | None = None
    retry: Retry | None = None
    wait: float | None = None
    time_left: float | None = None
    retry_after: float | None = None
    needed: float | None = None  # stopped for lack of time: what another attempt needed


class _BodyError(Exception):
    """Reading the body failed: ``kind`` is the attempt's outcome."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _no_cookies() -> http.cookiejar.CookieJar:
    """Service calls are stateless; a shared jar would also be shared mutable state."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class RetryManager:
    """Calls one upstream resiliently. One instance per upstream per process; thread-safe.

    ``clock``, ``sleep`` and ``random`` are injectable so tests never wait through backoff.
    ``watchdog`` enforces the deadline in every phase of an attempt (``None``: per socket
    operation only, for the benchmark's comparison); it needs the default session's adapter.
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
        watchdog: Watchdog | None = WATCHDOG,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._listeners = tuple(listeners)
        self.session = session or self._new_session(config)
        self._guard: Callable[[float], AbstractContextManager[Guard]] = (
            watchdog.guard if watchdog is not None else unguarded
        )
        self.budget = RetryBudget(
            ratio=config.retry_budget,
            min_per_second=config.budget_min_retries_per_second,
            window=config.budget_window,
            clock=clock,
        )
        self.breaker = (
            CircuitBreaker(
                failure_ratio=config.breaker_failure_ratio,
                min_calls=config.breaker_min_calls,
                consecutive_failures=config.breaker_consecutive_failures,
                window=config.breaker_window,
                reset=config.breaker_reset,
                clock=clock,
                on_transition=self._on_breaker,
            )
            if config.breaker
            else None
        )

    @staticmethod
    def _new_session(config: UpstreamConfig) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxy/netrc lookups per call: this is a private hop
        session.cookies = _no_cookies()
        adapter = GuardedAdapter(
            pool_connections=1, pool_maxsize=config.pool_maxsize, max_retries=0
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        self.session.close()

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
        if self.breaker is not None and not self.breaker.allow():
            self._emit(Event(events.BREAKER_REJECTED, self.config.name, method=method, path=path))
            raise CircuitOpen(
                self.config.name, "circuit open", retry_after=self.breaker.retry_after_header()
            )
        # The breaker sees what the caller sees: one outcome per call, after the retries.
        # Flakiness the retries absorb is not an outage; calls that fail despite them are.
        # A call ended by its caller's own, tighter deadline says nothing about the upstream:
        # it is not counted, or anyone could open the breaker with a short deadline header.
        healthy: bool | None = True
        try:
            return self._call(method, path, params, headers, json_body, deadline)
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            healthy = None if exc.callers_deadline else False
            raise
        finally:
            if self.breaker is not None:
                if healthy is None:
                    self.breaker.release()
                else:
                    self.breaker.record(success=healthy)

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json_body: Any,
        deadline: Deadline | None,
    ) -> UpstreamResponse:
        """The retry loop of one call."""
        cfg = self.config
        url = cfg.base_url.rstrip("/") + path
        headers = CaseInsensitiveDict(headers or {})  # RFC 9110: names are case-insensitive
        own = Deadline.after(cfg.deadline, self._clock)
        caller, deadline = deadline, own if deadline is None else deadline.earliest(own.remaining())
        tighter = deadline is caller  # the caller's deadline binds, not the configured one
        retry = cfg.retry_policy(idempotency_key=IDEMPOTENCY_HEADER in headers)
        history: list[Attempt] = []
        call_started = self._clock()

        while True:
            number = len(history) + 1
            if deadline.remaining() < cfg.min_attempt:
                cause = "deadline exceeded before an attempt could start"
                self._emit(
                    Event(
                        events.CALL_FAILED,
                        cfg.name,
                        method=method,
                        path=path,
                        cause=cause,
                        duration=self._clock() - call_started,
                    )
                )
                error = UpstreamTimeout(cfg.name, cause, history=tuple(history))
                error.callers_deadline = tighter and own.remaining() >= cfg.min_attempt
                raise error
            if number == 1:
                self.budget.record_request()

            started, left, own_left = self._clock(), deadline.remaining(), own.remaining()
            result = self._attempt(method, url, params, headers, json_body, deadline)
            elapsed = self._clock() - started

            decision = self._decide(retry, method, url, result, deadline)
            history.append(Attempt(number, result.outcome, elapsed, decision.wait))
            event = partial(
                Event,
                upstream=cfg.name,
                method=method,
                path=path,
                attempt=number,
                max_attempts=cfg.retries + 1,
                outcome=result.outcome,
                elapsed=elapsed,
            )
            if decision.done:
                if number > 1:
                    self.budget.refund()  # the retry worked: it was not wasted load
                self._emit(event(events.CALL_SUCCEEDED, duration=self._clock() - call_started))
                return UpstreamResponse(
                    result.status or 0,
                    result.headers,
                    content=result.content,
                    history=tuple(history),
                )
            if decision.stop is not None:
                if decision.stop == BUDGET_SPENT:
                    self._emit(event(events.BUDGET_EXHAUSTED, cause=decision.stop))
                self._emit(
                    event(
                        events.CALL_FAILED,
                        cause=decision.stop,
                        duration=self._clock() - call_started,
                    )
                )
                error = self._error(result, decision, tuple(history))
                error.callers_deadline = tighter and self._callers_cut(
                    result, decision, left, own_left, own
                )
                raise error
            self._emit(
                event(
                    events.RETRY_SCHEDULED,
                    cause=result.outcome,
                    wait=decision.wait,
                    time_left=decision.time_left,
                )
            )
            self._sleep(decision.wait or 0.0)
            if self.breaker is not None and self.breaker.state is State.OPEN:
                stop = _Decision(stop=OPENED_MEANWHILE)  # while we slept: do not send it
                duration = self._clock() - call_started
                self._emit(event(events.CALL_FAILED, cause=stop.stop, duration=duration))
                raise self._error(result, stop, tuple(history))
            retry = decision.retry or retry

    # -- one attempt ----------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: CaseInsensitiveDict[str],
        json_body: Any,
        deadline: Deadline,
    ) -> _Result:
        """One request and its body, cut by the watchdog if the deadline comes first."""
        left = deadline.remaining()
        if left <= 0:  # the time went while this thread waited for the CPU: send nothing
            kind = "deadline_exceeded"
            return _Result(error=kind, exc=_urllib3_error(kind, kind))
        headers[DEADLINE_HEADER] = str(int(left * 1000))
        with self._guard(left) as guard:
            result, response = self._exchange(method, url, params, headers, json_body, left)
        if response is not None:
            if guard.fired or result.error is not None:
                response.close()  # cut or half-read: this connection never goes back to the pool
            else:
                response.raw.release_conn()  # fully read: keep-alive, back to the pool
        if guard.fired:  # whatever the exchange saw last (EOF, reset), the deadline ended it
            kind = "deadline_exceeded"
            return _Result(status=result.status, error=kind, exc=_urllib3_error(kind, kind))
        return result

    def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: CaseInsensitiveDict[str],
        json_body: Any,
        left: float,
    ) -> tuple[_Result, requests.Response | None]:
        cfg = self.config
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                headers=headers,
                json=json_body,
                # total: the read phase gets only what the connect phase left of ``left``.
                timeout=Timeout(
                    connect=min(cfg.connect_timeout, left),
                    read=min(cfg.read_timeout, left),
                    total=left,
                ),
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return _classify(exc), None
        try:
            content = self._read_body(response)
        except _BodyError as err:
            error = _urllib3_error(err.kind, str(err))
            return _Result(status=response.status_code, error=err.kind, exc=error), response
        return _Result(response.status_code, response.headers, content, response.raw), response

    def _read_body(self, response: requests.Response) -> bytes:
        """Read the body in whatever pieces arrive, never past the size cap.

        ``read1`` returns after one socket read instead of waiting for a full chunk; the
        watchdog ends the read when the deadline comes, however slowly the bytes arrive.
        """
        cap = self.config.max_body_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _BodyError("body_too_large")
        raw = response.raw
        body = bytearray()
        while True:
            try:
                chunk = raw.read1(64 * 1024, decode_content=True)
            except ReadTimeoutError as exc:
                raise _BodyError("read_timeout") from exc
            except ProtocolError as exc:
                raise _BodyError("connection_reset") from exc
            except DecodeError as exc:
                raise _BodyError("undecodable_body") from exc
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > cap:
                raise _BodyError("body_too_large")

    # -- decisions ------------------------------------------------------------------------

    def _callers_cut(
        self, result: _Result, decision: _Decision, left: float, own_left: float, own: Deadline
    ) -> bool:
        """Did the caller's deadline, not the upstream, end this call? It did if the call
        stopped for lack of time the configured deadline would have given, or if the last
        attempt timed out at a limit the caller's deadline had shortened.
        """
        if decision.needed is not None and decision.needed <= own.remaining():
            return True
        limits = {
            "connect_timeout": self.config.connect_timeout,
            "read_timeout": self.config.read_timeout,
            "deadline_exceeded": math.inf,
        }
        limit = limits.get(result.error or "")
        return limit is not None and left < min(limit, own_left)

    def _decide(
        self, retry: Retry, method: str, url: str, result: _Result, deadline: Deadline
    ) -> _Decision:
        """Done, stop (and why), or retry after how long: the whole retry policy, in order."""
        if result.error in READ_ERRORS and method not in (retry.allowed_methods or ()):
            return _Decision(stop=f"{result.error} on {method} without {IDEMPOTENCY_HEADER}")
        if result.error is not None and result.error not in CONNECT_ERRORS | READ_ERRORS:
            return _Decision(stop=f"unusable response: {result.error}")
        if result.error is None:
            status = result.status or 0
            if not retry.is_retry(method, status, has_retry_after="Retry-After" in result.headers):
                if status >= 500 or status == 429:
                    return _Decision(stop=f"{status} is not retried for {method}")
                return _Decision(done=True)
        try:
            retry = retry.increment(method, url, response=result.raw, error=result.exc)
        except MaxRetryError:
            return _Decision(stop="retries exhausted")

        remaining = deadline.remaining()
        retry_after = _retry_after(result)
        if retry_after is not None and retry_after + self.config.min_attempt > remaining:
            return _Decision(
                stop=f"Retry-After {retry_after:g} s exceeds the {remaining:.2f} s left",
                retry_after=retry_after,
                needed=retry_after + self.config.min_attempt,
            )
        wait = self._backoff(retry) if retry_after is None else retry_after
        if wait + self.config.min_attempt > remaining:
            return _Decision(
                stop=f"no time for another attempt ({remaining:.2f} s left)",
                needed=wait + self.config.min_attempt,
            )
        if self.breaker is not None and self.breaker.state is State.OPEN:
            return _Decision(stop=OPENED_MEANWHILE)
        if not self.budget.try_acquire():
            return _Decision(stop=BUDGET_SPENT)
        return _Decision(retry=retry, wait=wait, time_left=remaining)

    def _backoff(self, retry: Retry) -> float:
        """Sleep before the next attempt, ``retry`` having counted the failures so far.

        Without jitter: urllib3's schedule, 0, 2f, 4f, 8f ... capped (the tutorial's table).
        With jitter: "full jitter" (AWS), uniform in [0, min(cap, f * 2**(n-1))] for the
        n-th retry, which spreads a crowd of retrying callers out instead of syncing them.
        """
        if not self.config.backoff_jitter:
            return retry.get_backoff_time()
        n = len(retry.history)
        ceiling = min(self.config.backoff_max, self.config.backoff_factor * 2 ** (n - 1))
        return self._random() * ceiling

    def _error(
        self, result: _Result, decision: _Decision, history: tuple[Attempt, ...]
    ) -> UpstreamError:
        """The honest error for how the call ended."""
        name, cause = self.config.name, decision.stop or "failed"
        if result.error in TIMEOUTS:
            return UpstreamTimeout(name, cause, history=history)
        if result.healthy and result.status != 429:  # it answered with nothing we can use
            return UpstreamBadResponse(name, cause, history=history)
        retry_after = decision.retry_after or _retry_after(result)
        if retry_after is None and self.breaker is not None and self.breaker.state is State.OPEN:
            retry_after = self.breaker.retry_after_header()
        return UpstreamUnavailable(name, cause, history=history, retry_after=retry_after)

    # -- events ---------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)

    def _on_breaker(self, state: State, cause: str) -> None:
        name = {
            State.OPEN: events.BREAKER_OPENED,
            State.HALF_OPEN: events.BREAKER_HALF_OPEN,
            State.CLOSED: events.BREAKER_CLOSED,
        }[state]
        self._emit(Event(name, self.config.name, cause=cause))


def _classify(exc: requests.RequestException) -> _Result:
    """Name what went wrong. Only transport failures are outages; anything else is a bug
    (a bad URL, bad arguments) and is re-raised, never turned into a 503.
    """
    cause: object = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(cause, NewConnectionError):  # refused, unreachable, DNS: never sent
        kind = "connect_error"
    elif isinstance(cause, ConnectTimeoutError) or isinstance(exc, requests.ConnectTimeout):
        kind = "connect_timeout"
    elif isinstance(cause, ReadTimeoutError) or isinstance(exc, requests.ReadTimeout):
        kind = "read_timeout"
    elif _malformed(cause):  # it answered, in something that is not HTTP/1.1: a 502
        kind = "malformed_response"
    elif isinstance(exc, requests.ConnectionError):  # reset or closed after sending
        kind = "connection_reset"
    else:
        raise exc
    return _Result(error=kind, exc=_urllib3_error(kind, str(exc)))


def _malformed(cause: object) -> bool:
    """A status line or headers that http.client refused (not HTTP, a line over 64 KiB,
    over 100 headers): the server is talking, wrongly, and asking again will not fix that.
    A connection closed before the status line (``RemoteDisconnected``) is not this: that
    is a reset, and retried like one.
    """
    inner = cause.args[1] if isinstance(cause, ProtocolError) and len(cause.args) > 1 else None
    return isinstance(inner, http.client.HTTPException) and not isinstance(
        inner, http.client.RemoteDisconnected | ConnectionError
    )


def _urllib3_error(kind: str, message: str) -> Exception:
    """The urllib3 exception ``Retry.increment`` expects for this kind of failure."""
    if kind in CONNECT_ERRORS:
        return ConnectTimeoutError(message)
    if kind == "connection_reset":
        return ProtocolError(message)
    return ReadTimeoutError(None, "", message)  # type: ignore[arg-type]


_RETRY_AFTER_PARSER = Retry()


def _retry_after(result: _Result) -> float | None:
    """The upstream's ``Retry-After`` (seconds or HTTP-date) on a 429/503, if parseable."""
    value = result.headers.get("Retry-After")
    if value is None or result.status not in Retry.RETRY_AFTER_STATUS_CODES:
        return None
    try:
        return _RETRY_AFTER_PARSER.parse_retry_after(value)
    except InvalidHeader:
        return None
