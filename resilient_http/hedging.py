"""Hedging's mechanics: attempts raced on worker threads, the first good answer kept.

A hedged call's attempts cannot run on the caller's thread, which must be free to start
the second attempt while the first still waits. So each runs on a small per-upstream pool,
and the caller waits for the first to finish well (gRPC A6, Polly's hedging strategy,
Envoy's ``hedge_on_per_try_timeout``). Whether to hedge at all is the loop's decision
(``loop.py``: policy, budget, events); this module only runs the race and ends it:
an attempt still queued is never sent, one still running has its socket shut by its guard.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from requests.structures import CaseInsensitiveDict

from .deadline import Clock, Deadline
from .hosts import Host
from .outcome import Outcome
from .transport import Request, Transport
from .watchdog import Guard


@dataclass(slots=True)
class Runner:
    """One attempt of a race, on a worker."""

    number: int
    guard: Guard
    started: float
    left: float  # the time it had when it was launched
    future: Future[Outcome]
    host: Host | None = None


#: Sends one attempt of a race on a worker (the loop's: transport plus host bookkeeping).
Send = Callable[[Request, Guard], Outcome]


class Race:
    """Attempts of one call, launched one after another, raced to the first good answer."""

    def __init__(self, hedger: Hedger, request: Request, deadline: Deadline) -> None:
        self._hedger = hedger
        self._request = request
        self.deadline = deadline
        self.runners: list[Runner] = []
        #: Every attempt's outcome seen before the race ended, by attempt number.
        self.finished: dict[int, Outcome] = {}
        #: The race has ended: an attempt still running now was cancelled, not failed.
        self.over = False

    def launch(self, number: int, send: Send, host: Host | None = None) -> Runner:
        clock = self._hedger.clock
        started, left = clock(), self.deadline.remaining()
        request = Request(  # its own headers: each attempt stamps its time left on them
            self._request.method,
            self._request.path,
            self._request.params,
            CaseInsensitiveDict(self._request.headers),
            self._request.json_body,
        )
        guard = self._hedger.transport.arm(left)
        future = self._hedger.submit(send, request, guard)
        runner = Runner(number, guard, started, left, future, host)
        self.runners.append(runner)
        return runner

    def answered_within(self, seconds: float) -> bool:
        """Has the first attempt finished within ``seconds`` (or the deadline, if sooner)?"""
        first = self.runners[0]
        done, _ = wait([first.future], timeout=min(seconds, first.left))
        return bool(done)

    def first_good(self, worth_another: Callable[[Outcome], bool]) -> tuple[Runner, Outcome]:
        """The first attempt to finish with an answer; if all fail, the last to fail; if
        none finishes by the deadline (a worker stuck where the watchdog cannot reach, in
        name resolution say), the deadline's answer. Then nothing of the race outlives it.
        """
        try:
            return self._first_good(worth_another)
        finally:
            self.over = True
            for runner in self.runners:
                if runner.future.cancel():  # still queued for a worker: never sent
                    runner.guard.disarm()
                    continue
                runner.guard.fire()  # its socket shut, never pooled (no-op once finished)

    def _first_good(self, worth_another: Callable[[Outcome], bool]) -> tuple[Runner, Outcome]:
        pending = {r.future: r for r in self.runners}
        last: tuple[Runner, Outcome] | None = None
        while pending:
            done, _ = wait(pending, timeout=self.deadline.remaining(), return_when=FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                last = pending.pop(future), future.result()
                self.finished[last[0].number] = last[1]
                if not worth_another(last[1]):
                    return last
        return last or (self.runners[0], Outcome(error="deadline_exceeded"))


class Hedger:
    """The worker pool of one upstream's hedged attempts: two per call the bulkhead lets
    in, created on first use. Thread-safe."""

    def __init__(
        self, transport: Transport, *, workers: int, name: str, clock: Clock = time.monotonic
    ) -> None:
        self.transport = transport
        self.clock = clock
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def race(self, request: Request, deadline: Deadline) -> Race:
        return Race(self, request, deadline)

    def submit(self, send: Send, request: Request, guard: Guard) -> Future[Outcome]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, f"{self._name}-hedge")
            # In a copy of the caller's context: what it carries (the call's trace span)
            # is the hedge's too, as if it were sent from the caller's thread.
            return self._pool.submit(contextvars.copy_context().run, send, request, guard)

    def close(self) -> None:
        """Stop the workers; a call still holding this client gets a new pool."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
