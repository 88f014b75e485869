"""A call timeout for every phase of an HTTP exchange: a watchdog that cuts the socket.

``requests``/urllib3 timeouts bound each socket operation, not the exchange: ``http.client``
reads the status line, headers, ``100 Continue`` interim responses, chunk-size lines and
trailers in loops of its own, each read well inside the timeout, so a server that drips them
holds the caller for as long as it likes. OkHttp's ``callTimeout`` (Okio's ``AsyncTimeout``)
answers with one watchdog thread that shuts the socket when a call's time is up: whatever the
caller is blocked in (send, status line, headers, chunk framing, body, trailers) returns at
once. This is that: one daemon thread per process and a heap of deadlines. Arming and
disarming cost a lock and a heap push; a disarmed deadline is dropped when it reaches the
top, so the thread wakes once per live deadline, not once per call.

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
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
        self._owner = owner
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
            was_done, self._done = self._done, True
            self._socks.clear()
            fired = self.fired
        if self._owner is not None and not was_done:
            self._owner._forget()
        return fired

    @property
    def done(self) -> bool:
        return self._done


class Watchdog:
    """Fires each armed ``Guard`` at its deadline, from one daemon thread.

    The thread starts on the first ``guard()`` and exits after ``idle`` seconds with nothing
    armed (and after a fork, the child starts its own). ``clock`` is injectable for tests.
    """

    def __init__(
        self, *, clock: Clock = time.monotonic, idle: float = 60.0, name: str = "call-watchdog"
    ) -> None:
        self._clock = clock
        self._idle = idle
        self._name = name
        self._heap: list[tuple[float, int, Guard]] = []
        self._order = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stale = 0  # disarmed entries still in the heap (about)

    @contextmanager
    def guard(self, seconds: float) -> Iterator[Guard]:
        """Watch, for ``seconds``, every connection a request starts on in this block."""
        with watching(self.arm(seconds)) as guard:
            yield guard

    def _forget(self) -> None:
        """Compact the heap once most of it is disarmed: at thousands of calls a second,
        waiting for each entry to reach the top would keep seconds' worth of them."""
        with self._cond:
            self._stale += 1
            if self._stale > 1024 and 2 * self._stale > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._stale = 0

    def arm(self, seconds: float) -> Guard:
        """A guard that fires in ``seconds``; enter it with ``watching`` where the I/O runs."""
        guard = Guard(self._clock() + seconds, self)
        with self._cond:
            if self._pid != os.getpid():  # forked: the parent's thread does not exist here
                self._pid, self._thread, self._heap = os.getpid(), None, []
            heapq.heappush(self._heap, (guard.expires_at, next(self._order), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is guard:
                self._cond.notify()  # a new earliest deadline: wake up sooner
        return guard

    @property
    def running(self) -> bool:
        with self._cond:
            return self._thread is not None

    def _run(self) -> None:
        while True:
            due: list[Guard] = []
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)  # disarmed: nothing to do
                    self._stale = max(0, self._stale - 1)
                if not self._heap:
                    self._cond.wait(self._idle)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                wait = self._heap[0][0] - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                while self._heap and self._heap[0][0] <= self._clock():
                    due.append(heapq.heappop(self._heap)[2])
            for guard in due:  # outside the lock: shutting sockets is a system call each
                guard.fire()


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
