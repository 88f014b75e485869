"""The watchdog: a socket under an expired guard is shut down; a disarmed one never is.

Real sockets (a socketpair) and the real watchdog thread; every wait is a poll of an
observable state under a generous outer timeout, never a bet on how fast a thread runs.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilient_http.watchdog import Guard, Watchdog, watching
from tests.conftest import eventually


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_an_expired_guard_wakes_a_blocked_read(pair):
    """The read blocks with no timeout of its own; only the watchdog can end it."""
    ours, _ = pair
    ours.settimeout(None)
    got: list[bytes] = []
    with Watchdog().guard(0.05) as guard:
        guard.watch(ours)
        reader = threading.Thread(target=lambda: got.append(ours.recv(10)), daemon=True)
        reader.start()
        assert eventually(lambda: not reader.is_alive())
    assert got == [b""]  # shut down: end of stream at once
    assert guard.fired


def test_a_disarmed_guard_never_fires(pair):
    ours, theirs = pair
    watchdog = Watchdog()
    with watchdog.guard(0.05) as guard:
        guard.watch(ours)
    later = watchdog.arm(0.06)  # expires after the first: the thread has passed it when it fires
    assert eventually(lambda: later.fired)
    assert not guard.fired
    theirs.sendall(b"still open")
    assert ours.recv(10) == b"still open"


def test_a_socket_watched_after_the_deadline_is_cut_at_once(pair):
    ours, _ = pair
    guard = Guard(expires_at=0.0)
    guard.fire()
    guard.watch(ours)
    with pytest.raises(BrokenPipeError):
        ours.sendall(b"x")


def test_a_socket_let_go_before_the_deadline_is_not_cut(pair):
    """A connection back in the pool may be another call's by the time this guard fires."""
    ours, theirs = pair
    guard = Guard(expires_at=0.0)
    guard.watch(ours)
    assert guard.let_go(ours)
    guard.fire()
    theirs.sendall(b"ok")
    assert ours.recv(2) == b"ok"


def test_a_cut_socket_may_not_be_pooled(pair):
    ours, _ = pair
    guard = Guard(expires_at=0.0)
    guard.watch(ours)
    guard.fire()
    assert not guard.let_go(ours)
    assert guard.let_go(socket.socket())  # one it never watched: none of its business


def test_the_thread_starts_on_demand_and_leaves_when_idle():
    watchdog = Watchdog(idle=0.05, name="idle-watchdog-test")
    assert not watchdog.running
    with watchdog.guard(0.01):
        assert watchdog.running
    assert eventually(lambda: not watchdog.running)
    assert not any(t.name == "idle-watchdog-test" for t in threading.enumerate())
    with watchdog.guard(5):  # and comes back for the next call
        assert watchdog.running


def test_an_earlier_deadline_wakes_the_thread_sooner():
    """Armed behind a 60 s deadline, a 50 ms one still fires in time."""
    watchdog = Watchdog()
    far = watchdog.arm(60)
    near = watchdog.arm(0.05)
    assert eventually(lambda: near.fired)
    assert not far.fired
    far.disarm()


def test_a_guard_without_a_watchdog_fires_only_when_cancelled(pair):
    """What a hedged call does to its losing attempt: fire its guard from another thread;
    the socket the attempt is blocked on is shut and the read returns at once."""
    ours, _ = pair
    guard = Guard(math.inf)
    with watching(guard):
        guard.watch(ours)
        assert not guard.fired
        threading.Timer(0.05, guard.fire).start()
        assert ours.recv(1) == b""  # woken by the shutdown, not by a byte from theirs
    assert guard.fired


def test_disarmed_deadlines_do_not_pile_up():
    """Thousands of calls a second, each with a 60 s deadline: the heap stays small."""
    watchdog = Watchdog()
    for _ in range(10_000):
        with watchdog.guard(60):
            pass
    assert len(watchdog._heap) + len(watchdog._armed) <= 2 * 1024 + 2


def _cpu_ticks(thread: threading.Thread) -> int:
    """User + system clock ticks the thread has run, from /proc (Linux)."""
    stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_the_thread_sleeps_while_it_waits():
    """Waiting for a deadline a second away, the watchdog uses no CPU (it is no busy loop)."""
    watchdog = Watchdog(name="sleepy-watchdog-test")
    guard = watchdog.arm(1.0)
    thread = next(t for t in threading.enumerate() if t.name == "sleepy-watchdog-test")
    before = _cpu_ticks(thread)
    time.sleep(0.5)
    assert _cpu_ticks(thread) - before <= 5  # a busy loop would burn ~50 ticks (10 ms each)
    guard.fire()
    guard.disarm()


def test_a_forked_child_starts_its_own_thread():
    """After fork the parent's thread does not exist in the child: arming starts a new one
    there (a real fork, as gunicorn's workers are made)."""
    watchdog = Watchdog(name="forked-watchdog-test")
    parents = watchdog.arm(60)  # the parent's thread runs, waiting for it
    assert watchdog.running
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 if its guard fires
        guard = watchdog.arm(0.01)
        os._exit(0 if eventually(lambda: guard.fired) else 1)
    _, status = os.waitpid(pid, 0)
    parents.disarm()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_guard_armed_while_the_thread_sleeps_behind_a_later_one_fires_in_time():
    """Arming takes no lock, so the thread learns of a guard only when it wakes: one due
    before that must wake it (many arms from many threads, a few of them short)."""
    watchdog = Watchdog()
    far = watchdog.arm(60)
    shorts: list[Guard] = []

    def arm_many(k: int) -> None:
        for i in range(2000):
            guard = watchdog.arm(0.05 if i % 500 == k else 30)
            (shorts.append(guard) if i % 500 == k else guard.disarm())

    threads = [threading.Thread(target=arm_many, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(shorts) == 16
    assert eventually(lambda: all(g.fired for g in shorts))
    far.disarm()


def test_firing_at_a_socket_its_owner_closed_is_harmless(pair):
    ours, _ = pair
    guard = Guard(expires_at=0.0)
    guard.watch(ours)
    ours.close()
    guard.fire()  # no exception: the owner got there first
    assert guard.fired


def test_a_guard_armed_after_an_idle_stretch_still_fires():
    """The thread, waiting with nothing armed, wakes for a new guard and keeps watching."""
    watchdog = Watchdog(idle=60)
    with watchdog.guard(0.01):
        pass
    assert eventually(lambda: not watchdog._heap)  # the thread dropped it: now idle-waiting
    guard = watchdog.arm(0.05)
    assert eventually(lambda: guard.fired)
