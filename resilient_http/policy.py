"""The retry policy: small, pure decisions over an ``Outcome``. No I/O, no clock, no state.

After each attempt the call loop (``loop.py``) asks its ``RetryState`` (urllib3's ``Retry``
in shape: immutable, one per call) for the ``Decision``: is this the answer (``verdict``)?
may another attempt go out (``attempts_left``)? after how long (``retry_after``,
``backoff``) and is there time for it (``fits``)? A decision that ends the call carries its
reason, which the log line and the error repeat word for word.
"""

from __future__ import annotations

import email.utils
import enum
import math
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from .outcome import CONNECT_ERRORS, READ_ERRORS, TIMEOUTS, Outcome

#: RFC 9110 section 9.2.2: methods whose repetition has the same effect as one request.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Methods made safe to repeat by an ``Idempotency-Key`` the upstream recognises.
KEYED_METHODS = frozenset({"POST", "PATCH"})
#: Statuses whose ``Retry-After`` says "come back then" (RFC 9110 section 10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})

IDEMPOTENCY_HEADER = "Idempotency-Key"


class Kind(enum.Enum):
    ANSWER = "answer"  # return this response
    RETRY = "retry"  # send another attempt, after ``wait``
    GIVE_UP = "give_up"  # raise, for ``reason``


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an attempt: one of three kinds, with what that kind needs and
    nothing else (``__post_init__`` refuses the rest). ``retry_after`` is the upstream's
    own ``Retry-After``, if it gave one; ``needed``, on a give-up for lack of time, the time
    the next attempt would have needed. ``callers_deadline``, on a give-up: whose deadline
    ended the call was the caller's own, tighter one (it cut the last attempt short, or it
    lacked the time the configured one would have given), so the call says nothing of the
    upstream's health.
    """

    kind: Kind
    reason: str = ""
    wait: float = 0.0
    retry_after: float | None = None
    needed: float | None = None
    callers_deadline: bool = False

    def __post_init__(self) -> None:
        if (self.kind is Kind.ANSWER) != (self.reason == ""):
            raise ValueError(f"{self.kind.value} with reason {self.reason!r}")
        if self.kind is Kind.ANSWER and (self.retry_after is not None or self.wait):
            raise ValueError("an answer waits for nothing")
        if self.kind is not Kind.GIVE_UP and (self.needed is not None or self.callers_deadline):
            raise ValueError("only a give-up needs more time, or has a deadline that ended it")
        if self.wait < 0 or (self.kind is not Kind.RETRY and self.wait):
            raise ValueError(f"{self.kind.value} waiting {self.wait!r} s")

    def give_up(self, reason: str, *, cut_short: bool = False) -> Decision:
        """This retry refused after all (the budget, the breaker): a give-up for ``reason``,
        ended by the caller's deadline if it ``cut_short`` the last attempt."""
        if self.kind is not Kind.RETRY:
            raise ValueError(f"only a retry can be refused ({self.kind.value} given)")
        return Decision(
            Kind.GIVE_UP, reason, retry_after=self.retry_after, callers_deadline=cut_short
        )


ANSWER = Decision(Kind.ANSWER)
RETRY = Decision(Kind.RETRY, "worth another attempt")


def give_up(reason: str, **more: float | bool | None) -> Decision:
    return Decision(Kind.GIVE_UP, reason, **more)  # type: ignore[arg-type]


def may_repeat(method: str, *, idempotency_key: bool) -> bool:
    """May this request be sent twice? Idempotent methods, or a keyed POST/PATCH."""
    return method in IDEMPOTENT_METHODS or (idempotency_key and method in KEYED_METHODS)


def verdict(
    outcome: Outcome, *, method: str, idempotency_key: bool, retry_statuses: Collection[int]
) -> Decision:
    """Is this the answer, worth another attempt, or the end (and why)?

    A request that never left (refused, connect timeout) is always worth another attempt;
    one that may have been processed only if it may be repeated. A status is retried when
    the upstream's configuration lists it, or when it says when to come back (429/503 with
    ``Retry-After``). Anything else the upstream answered is the answer.
    """
    repeatable = may_repeat(method, idempotency_key=idempotency_key)
    if outcome.error in CONNECT_ERRORS:
        return RETRY
    if outcome.error in READ_ERRORS:
        if repeatable:
            return RETRY
        return give_up(f"{outcome.error} on {method} without {IDEMPOTENCY_HEADER}")
    if outcome.error is not None:
        return give_up(f"unusable response: {outcome.error}")
    status = outcome.status or 0
    asks_back = status in RETRY_AFTER_STATUSES and "Retry-After" in outcome.headers
    if repeatable and (status in retry_statuses or asks_back):
        return RETRY
    if status >= 500 or status == 429:
        return give_up(f"{status} is not retried for {method}")
    return ANSWER


def attempts_left(attempts: int, *, retries: int) -> bool:
    """``retries`` counts re-tries: ``retries + 1`` attempts in all, hedges included."""
    return attempts <= retries


def backoff(failures: int, *, factor: float, cap: float, jitter: float | None) -> float:
    """The sleep before the next attempt, after ``failures`` failed attempts (1, 2, ...).

    Without jitter (``jitter`` ``None``): urllib3's schedule, 0, 2f, 4f, 8f ... capped, the
    tutorial's table. With jitter, a uniform draw in [0, 1): "full jitter" (AWS), uniform
    in [0, min(cap, f * 2**(n-1))], which spreads a crowd of retrying callers out.
    """
    ceiling = min(cap, factor * 2 ** (failures - 1))
    if jitter is None:
        return 0.0 if failures <= 1 else ceiling
    return jitter * ceiling


_SECONDS = re.compile(r"^\s*[0-9]+\s*$")
#: The longest ``Retry-After`` believed (urllib3's cap): a larger one is passed on as this.
RETRY_AFTER_MAX = 6 * 3600.0


def retry_after(outcome: Outcome, *, now: Callable[[], float] = time.time) -> float | None:
    """The upstream's ``Retry-After`` on a 429/503 (seconds or an HTTP-date), if readable,
    at most ``RETRY_AFTER_MAX``: a hostile value must not overflow into an error, nor ask
    our own callers to wait for years."""
    value = outcome.headers.get("Retry-After")
    if value is None or outcome.status not in RETRY_AFTER_STATUSES:
        return None
    if _SECONDS.match(value):
        digits = value.strip()
        return min(float(int(digits)) if len(digits) < 16 else RETRY_AFTER_MAX, RETRY_AFTER_MAX)
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return min(max(0.0, email.utils.mktime_tz(parsed) - now()), RETRY_AFTER_MAX)
    except (ValueError, OverflowError):  # a date out of any calendar
        return None


def fits(wait: float, *, time_left: float, min_attempt: float) -> bool:
    """Is there time to sleep ``wait`` and still give an attempt ``min_attempt``?"""
    return wait + min_attempt <= time_left


def may_hedge(
    method: str,
    *,
    idempotency_key: bool,
    attempts: int,
    retries: int,
    time_left: float,
    min_attempt: float,
) -> bool:
    """Another attempt beside one still running: only where sending twice is safe, while
    attempts remain and there is time for it (gRPC A6: hedges count as attempts)."""
    return (
        may_repeat(method, idempotency_key=idempotency_key)
        and attempts_left(attempts, retries=retries)
        and time_left >= min_attempt
    )


def cut_short(
    outcome: Outcome,
    *,
    left: float,
    configured_left: float,
    connect_timeout: float,
    read_timeout: float,
) -> bool:
    """Did the caller's tighter deadline, not the upstream, cut this attempt short? It did
    if the attempt timed out at a limit that deadline had shortened (``left`` was the
    attempt's time, ``configured_left`` the configured deadline's, when it started)."""
    limits = {
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "deadline_exceeded": math.inf,
    }
    limit = limits.get(outcome.error or "")
    return limit is not None and left < min(limit, configured_left)


def callers_time(needed: float, configured_left: float | None) -> bool:
    """Was it the caller's deadline that lacked the ``needed`` seconds: would the
    configured one (``configured_left``; None when it is the one that binds) have had them?"""
    return configured_left is not None and needed <= configured_left


def timed_out(outcome: Outcome | None) -> bool:
    """Should the caller hear "too slow" (504) rather than "unavailable" (503)?"""
    return outcome is None or outcome.error in TIMEOUTS


@dataclass(frozen=True, slots=True)
class RetryState:
    """One call's retries, as urllib3's ``Retry``: an immutable value; ``sent`` returns the
    state after more attempts went out, ``next`` the decision about the last one's outcome.
    What is shared with other calls (the budget, the breaker) is the loop's to consult."""

    method: str
    keyed: bool  # carries an Idempotency-Key
    retries: int
    retry_statuses: frozenset[int]
    min_attempt: float
    attempts: int = 0  # sent so far, hedges included
    failures: int = 0  # of those, the ones that failed: not a hedge cut unfinished

    def sent(self, attempts: int = 1, *, cut: int = 0) -> RetryState:
        """After ``attempts`` more went out, ``cut`` of them hedges cut before they ended."""
        return RetryState(  # not ``dataclasses.replace``: this runs on every call
            self.method,
            self.keyed,
            self.retries,
            self.retry_statuses,
            self.min_attempt,
            self.attempts + attempts,
            self.failures + attempts - cut,
        )

    def next(
        self,
        outcome: Outcome,
        *,
        time_left: float,
        backoff: Callable[[int], float],
        elsewhere: bool = False,
        configured_left: float | None = None,
        cut_short: bool = False,
    ) -> Decision:
        """After ``outcome``: the answer, another attempt after a wait, or the end.
        ``backoff(failures)`` is the sleep after that many failed attempts. ``elsewhere``:
        another host has not seen this call; a retry goes to it at once, whatever this
        host's ``Retry-After`` or its 429 said (kept for our caller if all hosts fail).
        When the caller's deadline binds: ``configured_left``, the configured one's time
        left, and ``cut_short``, whether the caller's cut this attempt (``cut_short()``);
        a give-up says whose deadline ended the call."""
        judged = self.verdict(outcome, elsewhere=elsewhere)
        if judged.kind is Kind.GIVE_UP and cut_short:
            return replace(judged, callers_deadline=True)
        if judged.kind is not Kind.RETRY:
            return judged
        if not attempts_left(self.attempts, retries=self.retries):
            return give_up("retries exhausted", callers_deadline=cut_short)
        asked = retry_after(outcome)
        if elsewhere:
            return Decision(Kind.RETRY, outcome.label, retry_after=asked)
        wait = backoff(self.failures) if asked is None else asked
        if not fits(wait, time_left=time_left, min_attempt=self.min_attempt):
            reason = (
                f"no time for another attempt ({time_left:.2f} s left)"
                if asked is None
                else f"Retry-After {asked:g} s exceeds the {time_left:.2f} s left"
            )
            needed = wait + self.min_attempt
            callers = cut_short or callers_time(needed, configured_left)
            return give_up(reason, retry_after=asked, needed=needed, callers_deadline=callers)
        return Decision(Kind.RETRY, outcome.label, wait=wait, retry_after=asked)

    def verdict(self, outcome: Outcome, *, elsewhere: bool = False) -> Decision:
        """``verdict`` for this call; a 429 of a repeatable request is worth another host."""
        judged = verdict(
            outcome,
            method=self.method,
            idempotency_key=self.keyed,
            retry_statuses=self.retry_statuses,
        )
        limited = outcome.status == 429 and may_repeat(self.method, idempotency_key=self.keyed)
        return RETRY if elsewhere and limited and outcome.error is None else judged
