"""A call timeout for every phase of an HTTP exchange: a watchdog that cuts the socket.

``requests``/urllib3 timeouts bound each socket operation, not the exchange: ``http.client``
reads the status line, headers, ``100 Continue`` interim responses, chunk-size lines and
trailers in loops of its own, each read well inside the timeout, so a server that drips them
holds the caller for as long as it likes. OkHttp's ``callTimeout`` (Okio's ``AsyncTimeout``)
answers with one watchdog thread that shuts the socket when a call's time is up: whatever the
caller is blocked in (send, status line, headers, chunk framing, body, trailers) returns at
once. This is that: one daemon thread per process and a heap of deadlines. Arming costs
a deque append and disarming the guard's own lock; the thread drops disarmed deadlines
when it meets them, so it wakes about once per live deadline, not once per call.

The guarded transport (``GuardedAdapter``) puts each connection under the current call's
``Guard`` when a request starts on it (a context variable carries the guard, so the shared
pool needs no per-call state). Connecting is bounded by the connect timeout, which the caller
clips to the time left; name resolution cannot be interrupted in CPython (see
docs/explanation/how-a-call-works.md).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .deadline import Clock

_CURRENT: ContextVar[Guard | None] = ContextVar("resilience_call_guard", default=None)


def _cut(sock: socket.socket) -> None:
    """Shut the socket down, waking whatever thread is blocked on it.

    ``shutdown`` rather than ``close``: closing a descriptor another thread is reading does
    not wake it on Linux, and could hand its number to a new socket. The owner closes it.
    ``socket.socket.shutdown`` directly, so a TLS socket's state is not touched from here.
    """
    with contextlib.suppress(OSError):  # already closed by its owner: nothing to wake
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Guard:
    """One call's deadline; the sockets it watches are shut down if it expires before
    ``disarm()``. ``fired`` then says the exchange was cut by the deadline.

    Sockets, not connections: for a response that ends at close, ``http.client`` hands the
    socket to the response and clears the connection's ``sock``.
    """

    __slots__ = ("_done", "_lock", "_owner", "_socks", "expires_at", "fired")

    def __init__(self, expires_at: float, owner: Watchdog | None = None) -> None:
        self.expires_at = expires_at
        self._owner = owner  # the watchdog that fires it (None: only a cancel does)
        self.fired = False
        self._done = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline expires (at once if it already has)."""
        with self._lock:
            if self._done:
                return
            self._socks.append(sock)
            fired = self.fired
        if fired:
            _cut(sock)

    def fire(self) -> None:
        """Time is up (or the attempt is cancelled): cut every watched connection, unless
        already disarmed."""
        with self._lock:
            if self._done:
                return
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _cut(sock)

    def let_go(self, sock: socket.socket) -> bool:
        """``sock``'s connection goes back to the pool: stop watching it, since another call
        may take it next. ``False`` if it was cut: then it must be closed, not pooled.
        """
        with self._lock:
            if sock not in self._socks:
                return True
            if self.fired:
                return False
            self._socks = [s for s in self._socks if s is not sock]
            return True

    def disarm(self) -> bool:
        """The exchange is over: stop watching. Returns ``fired``, final from now on."""
        with self._lock:
            self._done = True
            self._socks.clear()
            return self.fired

    @property
    def done(self) -> bool:
        return self._done


class Watchdog:
    """Fires each armed ``Guard`` at its deadline, from one daemon thread.

    The thread starts on the first ``arm()`` and exits after ``idle`` seconds with nothing
    armed (and after a fork, the child starts its own). ``clock`` is injectable for tests.

    Arming takes no lock: a guard goes into a ``deque`` (an atomic step), and the thread
    takes what was armed whenever it wakes. It sleeps until ``_wake_at``; only a guard due
    before that wakes it (rare: a service's deadlines are mostly alike), or a long queue.
    Disarming takes only the guard's own lock: the thread drops disarmed guards as it meets
    them. Two locks per call on a lock the whole process shares made busy threads queue on
    each other (docs/benchmarks.md, "What a healthy call costs").
    """

    def __init__(
        self, *, clock: Clock = time.monotonic, idle: float = 60.0, name: str = "call-watchdog"
    ) -> None:
        self._clock = clock
        self._idle = idle
        self._name = name
        self._armed: deque[Guard] = deque()  # armed since the thread last looked
        self._heap: list[tuple[float, int, Guard]] = []  # the thread's own
        self._order = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        #: The thread looks at ``_armed`` by then at the latest (inf: there is no thread).
        self._wake_at = math.inf
        self._shortest = math.inf  # the fewest seconds an ``arm`` asked for
        os.register_at_fork(after_in_child=partial(_forked, weakref.ref(self)))

    @contextmanager
    def guard(self, seconds: float) -> Iterator[Guard]:
        """Watch, for ``seconds``, every connection a request starts on in this block."""
        with watching(self.arm(seconds)) as guard:
            yield guard

    def arm(self, seconds: float) -> Guard:
        """A guard that fires in ``seconds``; enter it with ``watching`` where the I/O runs."""
        guard = Guard(self._clock() + seconds, self)
        self._shortest = min(self._shortest, seconds)  # a hint: a race only costs a wake-up
        self._armed.append(guard)
        # Appended before ``_wake_at`` is read here, and the thread writes it before it
        # looks at ``_armed``: so either the thread sees this guard or this sees its time.
        if guard.expires_at >= self._wake_at and len(self._armed) < _LOOK_EVERY:
            return guard
        with self._cond:
            if len(self._armed) >= _LOOK_EVERY:  # the thread is slow to look: do its part
                self._take_in()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._wake_at = -math.inf  # it looks at once
                self._thread.start()
            self._cond.notify()
        return guard

    @property
    def running(self) -> bool:
        with self._cond:
            return self._thread is not None

    def _run(self) -> None:
        idle_since: float | None = None
        with self._cond:
            while True:
                now = self._clock()
                took, due = self._look(now)
                if due:
                    self._cond.release()  # shutting sockets is a system call each
                    try:
                        for guard in due:
                            guard.fire()
                    finally:
                        self._cond.acquire()
                    continue
                if took or self._heap:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= self._idle:
                    self._wake_at, self._thread = math.inf, None  # now every arm wakes
                    if not self._armed:  # (one armed meanwhile may have seen the old time)
                        return
                    self._wake_at, self._thread = -math.inf, threading.current_thread()
                    continue
                # Until the earliest deadline; with none, for as long as the shortest call
                # ever asked for, so calls like the last ones arm without waking it.
                wake_at = self._heap[0][0] if self._heap else now + min(self._shortest, self._idle)
                self._wake_at = wake_at
                if not self._armed:  # else armed before it could see ``_wake_at``: look
                    self._cond.wait(max(0.0, wake_at - self._clock()))

    def _look(self, now: float) -> tuple[bool, list[Guard]]:
        """Take in what was armed and drop what was disarmed: (anything armed since the
        last look?, the guards due by ``now``)."""
        took = bool(self._armed)
        self._take_in()
        due = []
        while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
            guard = heapq.heappop(self._heap)[2]
            if not guard.done:
                due.append(guard)
        return took, due

    def _take_in(self) -> None:
        """Move what was armed into the heap, dropping the disarmed (under the lock)."""
        while self._armed:
            guard = self._armed.popleft()
            if not guard.done:
                heapq.heappush(self._heap, (guard.expires_at, next(self._order), guard))
        if len(self._heap) > _LOOK_EVERY:  # mostly disarmed by now: keep the live ones
            self._heap = [entry for entry in self._heap if not entry[2].done]
            heapq.heapify(self._heap)

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread does not exist here."""
        self._cond = threading.Condition(threading.Lock())
        self._thread, self._wake_at = None, math.inf
        self._armed.clear()
        self._heap = []


#: Guards armed without waking the watchdog thread, at most, before it must take them in.
_LOOK_EVERY = 1024


def _forked(ref: weakref.ref[Watchdog]) -> None:
    watchdog = ref()
    if watchdog is not None:
        watchdog._after_fork()


@contextmanager
def watching(guard: Guard) -> Iterator[Guard]:
    """Put every connection a request starts on in this block (in this thread) under
    ``guard``; disarm it at the end. The guard may come from another thread: a hedged
    call's loop cancels the losing attempt by firing its guard.
    """
    token = _CURRENT.set(guard)
    try:
        yield guard
    finally:
        _CURRENT.reset(token)
        guard.disarm()


#: The process's watchdog, shared by every ``RetryManager`` (one thread, as in Okio).
WATCHDOG = Watchdog()


class _Guarded:
    """Mixin for urllib3 connections: their socket goes under the current call's guard, on
    connecting (a new connection) or on starting a request (a pooled one).
    """

    sock: socket.socket | None

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._watch()
        super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watch()

    def _watch(self) -> None:
        guard = _CURRENT.get()
        if guard is not None and self.sock is not None:
            guard.watch(self.sock)


class _GuardedHTTPConnection(_Guarded, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _GuardedPool:
    """Mixin for urllib3 pools: the one gate back into the pool. urllib3 returns a fully
    read connection by itself, while the call's guard is still armed: the guard lets go of
    it then, and a connection the deadline cut is closed instead of pooled.
    """

    def _put_conn(self, conn: Any) -> None:
        guard = _CURRENT.get()
        sock = getattr(conn, "sock", None)
        if guard is not None and sock is not None and not guard.let_go(sock):
            conn.close()
        super()._put_conn(conn)  # type: ignore[misc]


class _GuardedHTTPConnectionPool(_GuardedPool, HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(_GuardedPool, HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' adapter, its connections watched by the current call's ``Guard``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }
