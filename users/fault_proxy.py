"""A fault-injecting TCP proxy in front of Users: the transport faults of simulate_outage.

A WSGI app cannot refuse a connection, reset it, or send its own status line a byte at a
time: those faults happen below it. So, as toxiproxy is used, Orders calls this proxy and
the proxy forwards to Users, breaking the connection the way the stored fault says:

- ``down``: the proxy stops listening (its port stays bound, so nothing else takes it):
  ``connect()`` is refused, as when the Users process is gone. Open connections are
  closed, as a dying process's are. Listening resumes when the fault ends.
- ``reset``: the request goes to Users; once ``size`` response bytes (default 0) have come
  back, the client's connection is reset (RST): the request was processed, the answer lost.
- ``hang``: the request is read and never forwarded; nothing comes back until the client
  gives up and closes.
- ``truncate``: ``size`` response bytes pass, then the connection is closed (FIN).
- ``slow-bytes``: every response byte, status line and headers included, is sent at
  ``size`` bytes per second.

The fault is read from the database on every request (the first bytes a client sends after
a response began, or on a new connection: HTTP/1.1 clients do not pipeline; a body sent after
a ``100 Continue`` would count as a request of its own), as Users' middleware reads it, so a
fault applies from the next request, kept-alive connections included. ``down`` cannot be
read that way: the kernel refuses a connection before the proxy could read anything, so the
listening state must change before the next connection is attempted. Hence, rather than a
faster poll (still a window), ``simulate_outage`` tells every running proxy of a change
through a control socket each registers in the database (``FaultProxyControl``), and returns
only once each has answered that it has applied it (``fault_proxies_sync``): no request sent
after the command meets the old listening state. A poll every ``poll_interval`` remains,
for what nobody announces: the end of ``--for``, a proxy that missed a message. Requests hit
are counted in the same ``hits`` column, atomically.
Bounded: at most ``max_connections`` client connections (more are reset at once) and one
read buffer (``CHUNK``) per direction per connection, with back-pressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from django.db import DatabaseError

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

CHUNK = 64 * 1024
#: slow-bytes sends about this many pieces a second (one byte at a time below this rate).
TRICKLE_STEPS_PER_SECOND = 10
UPSTREAM_CONNECT_TIMEOUT = 5.0
#: After a reset or truncate, how long Users may take to finish the answer nobody reads.
DRAIN_TIMEOUT = 10.0
_REQUEST_LINE = re.compile(rb"^[A-Z]{3,10} [^\s]{1,2000} HTTP/\d\.\d")
_REQUEST_ID = re.compile(rb"(?im)^x-request-id:[ \t]*([A-Za-z0-9._:-]{1,128})[ \t]*\r?$")


@dataclass(frozen=True, slots=True)
class Fault:
    """A transport fault hitting one request: its mode and byte count (see module doc)."""

    mode: str
    size: int = 0


class FaultSource(Protocol):
    """Where the proxy learns the fault. Blocking calls: the proxy runs them in a thread."""

    def request_fault(self) -> Fault | None:
        """The fault for a request that just arrived, counted as a hit, or ``None``."""

    def is_down(self) -> bool:
        """Whether connections must be refused now."""

    def announce(self, address: str, token: str) -> None:
        """Register this proxy's control ``address`` (``host:port``) to be told of changes."""

    def withdraw(self, address: str) -> None:
        """Undo ``announce``: the proxy is stopping."""


class DatabaseFaults:
    """The ``users.Outage`` rows, as ``simulate_outage`` wrote them: those ``replica`` obeys
    (its own, else the one for all replicas); nothing where ``OUTAGE_SIMULATION`` is off.
    """

    def __init__(self, rng: random.Random | None = None, *, replica: int = 1) -> None:
        self.rng = rng
        self.replica = replica

    def request_fault(self) -> Fault | None:
        return _fresh_on_error(self._request_fault)

    def is_down(self) -> bool:
        return _fresh_on_error(self._is_down)

    def announce(self, address: str, token: str) -> None:
        from users.models import FaultProxyControl

        FaultProxyControl.objects.update_or_create(address=address, defaults={"token": token})

    def withdraw(self, address: str) -> None:
        from users.models import FaultProxyControl

        FaultProxyControl.objects.filter(address=address).delete()

    def _request_fault(self) -> Fault | None:
        from django.conf import settings

        from users.outages import TRANSPORT_MODES, Mode, outage_active, outage_hits_request

        if not settings.OUTAGE_SIMULATION:
            return None
        outage = outage_active(replica=self.replica)
        if outage is None or outage.mode not in TRANSPORT_MODES:
            return None  # healthy, or an HTTP fault: Users' middleware serves those
        if outage.mode == Mode.DOWN:
            return Fault(Mode.DOWN)  # a connection opened just before: close it, uncounted
        if not outage_hits_request(outage, rng=self.rng):
            return None
        return Fault(outage.mode, outage.size or 0)

    def _is_down(self) -> bool:
        from django.conf import settings

        from users.outages import Mode, outage_active

        if not settings.OUTAGE_SIMULATION:
            return False
        outage = outage_active(replica=self.replica)
        return outage is not None and outage.mode == Mode.DOWN


def _fresh_on_error(read: Callable[[], _T]) -> _T:
    """Outside a request cycle nothing recycles a broken database connection (a restarted
    PostgreSQL): drop it on error, so the next read reconnects.
    """
    from django.db import DatabaseError, connection

    try:
        return read()
    except DatabaseError:
        connection.close()
        raise


#: How long ``fault_proxies_sync`` waits for one proxy's answer: one database read on an
#: event loop that does nothing slow, so only a stalled proxy (or machine) takes this long.
SYNC_TIMEOUT = 10.0


def fault_proxies_sync() -> list[str]:
    """Have every running fault proxy apply the stored fault now; return when each has.

    Called after a fault is written or cleared (on commit). A registration nobody answers
    for (refused: the proxy died without withdrawing it) is deleted. Returns the addresses
    of proxies that did not answer within ``SYNC_TIMEOUT``: those apply it at their next poll.
    """
    from users.models import FaultProxyControl

    late = []
    for control in FaultProxyControl.objects.all():
        host, _, port = control.address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=SYNC_TIMEOUT) as sock:
                sock.sendall(control.token.encode("ascii") + b"\n")
                answer = sock.makefile("rb").readline(16)
        except TimeoutError:
            logger.warning("fault proxy at %s did not confirm the fault change", control.address)
            late.append(control.address)
            continue
        except OSError:
            answer = b""
        if answer != b"ok\n":  # no proxy of ours there any more
            control.delete()
    return late


def _bound_socket(host: str, port: int) -> socket.socket:
    """A bound, not (yet) listening socket: connecting to it is refused, and the port is
    ours. ``SO_REUSEADDR`` lets it bind while connections of an earlier listener linger.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, not a FIN: what the peer sees when a connection is reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _describe_request(head: bytes) -> tuple[str, str | None]:
    """The request line (as Users' access log shows it) and the ``X-Request-ID``, if any."""
    line = head.split(b"\r\n", 1)[0][:2100]
    match = _REQUEST_LINE.match(line)
    shown = match[0].decode("ascii", "replace") if match else "(not an HTTP request)"
    request_id = _REQUEST_ID.search(head[:CHUNK])
    return shown, request_id[1].decode("ascii") if request_id else None


@dataclass
class _Exchange:
    """One request and its response on a connection."""

    fault: Fault | None
    request: str
    request_id: str | None
    started: float = field(default_factory=time.monotonic)
    sent: int = 0  # response bytes passed to the client
    logged: bool = False


@dataclass(eq=False)  # identity: kept in a set
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None
    upstream: asyncio.StreamWriter | None = None
    pump: asyncio.Task[None] | None = None
    exchange: _Exchange | None = None
    awaiting_request: bool = True


class FaultProxy:
    """Forward ``listen`` to ``upstream``, breaking connections as ``faults`` says."""

    def __init__(
        self,
        *,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        faults: FaultSource,
        max_connections: int = 256,
        poll_interval: float = 0.25,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.host, self.port = listen
        self.upstream = upstream
        self.faults = faults
        self.max_connections = max_connections
        self.poll_interval = poll_interval
        self._connections: set[_Connection] = set()
        self._drains: set[asyncio.Task[None]] = set()
        self._sock: socket.socket | None = None
        self._server: asyncio.base_events.Server | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fault-proxy-db")
        self._stopped: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._db_failing = False
        self._down = False  # as last read: kept while the database cannot be read
        self._token = secrets.token_hex(16)
        self._following = asyncio.Lock()  # bound to serve()'s loop at first use

    # -- running ------------------------------------------------------------------------

    def bind(self) -> int:
        """Take the port (before anything else starts); the actual port, if 0 was asked."""
        if self._sock is None:
            self._sock = _bound_socket(self.host, self.port)
            self.port = self._sock.getsockname()[1]
        return self.port

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until ``stop()``; ``on_ready`` once the first fault check is done."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.bind()
        control = await asyncio.start_server(self._control, host=self.host, port=0)
        port = control.sockets[0].getsockname()[1]
        wildcard = self.host in ("0.0.0.0", "::", "")  # noqa: S104 - recognised, not bound
        address = f"{'127.0.0.1' if wildcard else self.host}:{port}"
        try:
            await self._in_db(lambda: self.faults.announce(address, self._token))
        except DatabaseError as exc:  # not told of changes: the poll still applies them
            logger.error("fault proxy: cannot register for fault changes (%s)", exc)
        try:
            await self._follow_down()
            if not self.listening:
                logger.warning(
                    "fault proxy %s:%s not listening: a simulated down is active",
                    self.host,
                    self.port,
                )
            if on_ready is not None:
                on_ready()
            while not self._stopped.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), self.poll_interval)
                await self._follow_down()
        finally:
            control.close()
            with contextlib.suppress(DatabaseError):
                await self._in_db(lambda: self.faults.withdraw(address))
            self._stop_listening()
            tasks = [c.task for c in self._connections if c.task is not None]
            tasks += self._drains
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._db.submit(_close_db_connections).result()
            self._db.shutdown()

    def stop(self) -> None:
        """Ask ``serve`` to return; safe from any thread."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def _in_db(self, call: Callable[[], object]) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._db, call)

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """``fault_proxies_sync`` saying the fault changed: apply it, then answer ``ok``."""
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                line = await reader.readline()
            if secrets.compare_digest(line.rstrip(b"\n"), self._token.encode()):
                await self._follow_down()
                writer.write(b"ok\n")
                await writer.drain()
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _follow_down(self) -> None:
        """Listen, or refuse connections, as the ``down`` fault says; one read at a time,
        so that an answer to ``fault_proxies_sync`` follows a read that began after it.
        """
        async with self._following:
            await self._apply_down()

    async def _apply_down(self) -> None:
        try:
            down = bool(await self._in_db(self.faults.is_down))
        except DatabaseError as exc:  # the database is away: as we were (at first: listen)
            if not self._db_failing:
                logger.error("fault proxy: cannot read the fault (%s); as before", exc)
            self._db_failing = True
            down = self._down
        else:
            if self._db_failing:
                logger.info("fault proxy: reading the fault again")
            self._db_failing = False
        self._down = down
        if down and self.listening:
            self._stop_listening()
            closed = len(self._connections)
            for conn in list(self._connections):
                conn.writer.close()  # a dead process's connections end too
                if conn.upstream is not None:
                    conn.upstream.close()
            logger.warning(
                "fault proxy %s:%s down: connections refused, %d open one(s) closed (simulated)",
                self.host,
                self.port,
                closed,
            )
        elif not down and not self.listening:
            if self._sock is None:
                try:
                    self._sock = _bound_socket(self.host, self.port)
                except OSError as exc:  # taken meanwhile: say so, try again at the next poll
                    logger.error("fault proxy: cannot listen on port %s: %s", self.port, exc)
                    return
            self._server = await asyncio.start_server(
                self._accept, sock=self._sock, limit=CHUNK, backlog=128
            )
            logger.info(
                "fault proxy %s:%s listening, forwarding to %s:%s",
                self.host,
                self.port,
                *self.upstream,
            )

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket
            self._server = None
            self._sock = None
            # Keep the port: bound but not listening, connecting to it is refused.
            with contextlib.suppress(OSError):
                self._sock = _bound_socket(self.host, self.port)

    # -- one connection ---------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections:
            logger.warning(
                "fault proxy: %d connections open (its limit): a new one was reset",
                len(self._connections),
            )
            _reset(writer)
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Users' runserver sends headers and body apart: with Nagle's algorithm the second
            # send would wait for the client's delayed ACK, ~40 ms a call.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(reader, writer, asyncio.current_task())
        self._connections.add(conn)
        try:
            await self._client_side(conn)
        except (ConnectionError, OSError):
            pass  # the client went away: nothing to answer
        finally:
            self._connections.discard(conn)
            if conn.pump is not None:
                conn.pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    await conn.pump
            if conn.upstream is not None:
                conn.upstream.close()
            if not writer.is_closing():
                writer.close()
            if conn.exchange is not None:
                self._log_end(conn.exchange, "then the client closed")

    async def _client_side(self, conn: _Connection) -> None:
        """Read the client's requests and forward them, unless the fault says otherwise."""
        while data := await conn.reader.read(CHUNK):
            if conn.awaiting_request:
                conn.awaiting_request = False
                if not await self._new_exchange(conn, data):
                    return
            upstream = conn.upstream or await self._connect_upstream(conn)
            if upstream is None:
                return
            upstream.write(data)
            await upstream.drain()

    async def _new_exchange(self, conn: _Connection, head: bytes) -> bool:
        """Start a request's exchange; ``False`` if the fault ends the connection here."""
        if conn.exchange is not None:
            self._log_end(conn.exchange, "response complete")
        try:
            fault = await self._in_db(self.faults.request_fault)
        except DatabaseError:  # the database is away: forward (the poll says so, once)
            fault = None
        request, request_id = _describe_request(head)
        exchange = _Exchange(fault if isinstance(fault, Fault) else None, request, request_id)
        conn.exchange = exchange
        if exchange.fault is None:
            conn.exchange = None  # healthy: nothing to log
            return True
        if exchange.fault.mode == "down":
            self._log(exchange, "down: connection closed (simulated)")
            conn.writer.close()
            return False
        if exchange.fault.mode == "hang":
            while await conn.reader.read(CHUNK):
                pass  # read, never answered: until the client gives up
            self._log(exchange, f"hang: read, never answered; {self._held(exchange)} (simulated)")
            conn.exchange = None
            return False
        return True

    async def _connect_upstream(self, conn: _Connection) -> asyncio.StreamWriter | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream, limit=CHUNK), UPSTREAM_CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            logger.error(
                "fault proxy: Users at %s:%s unreachable (%s): client connection reset",
                *self.upstream,
                exc.__class__.__name__,
            )
            _reset(conn.writer)
            return None
        conn.upstream = writer
        conn.pump = asyncio.create_task(self._upstream_side(conn, reader))
        return writer

    async def _upstream_side(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        """Pass Users' responses back, broken as the request's fault says."""
        try:
            while data := await reader.read(CHUNK):
                conn.awaiting_request = True  # what the client sends next is a new request
                exchange = conn.exchange
                fault = exchange.fault if exchange is not None else None
                if exchange is None or fault is None:
                    conn.writer.write(data)
                    await conn.writer.drain()
                elif fault.mode == "slow-bytes":
                    await self._trickle(conn, exchange, data, fault.size)
                else:  # reset, truncate: pass ``size`` bytes, then break the connection
                    allowed = max(fault.size - exchange.sent, 0)
                    if allowed:
                        conn.writer.write(data[:allowed])
                        exchange.sent += min(allowed, len(data))
                        await conn.writer.drain()
                    if len(data) > allowed:
                        self._break(conn, exchange, fault, reader)
                        return
        except (ConnectionError, OSError):
            pass
        # Users closed (or the client is gone): so does the client's connection.
        if not conn.writer.is_closing():
            conn.writer.close()

    def _break(
        self, conn: _Connection, exchange: _Exchange, fault: Fault, reader: asyncio.StreamReader
    ) -> None:
        if conn.upstream is not None:
            # Let Users finish its answer and log it as usual: no more requests on this
            # connection (a FIN), the rest of the answer read and dropped.
            drain = asyncio.create_task(self._drain(reader, conn.upstream))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
            conn.upstream = None
        if fault.mode == "reset":
            _reset(conn.writer)
            self._log(exchange, f"reset after {exchange.sent} response byte(s) (simulated)")
        else:
            conn.writer.close()
            self._log(exchange, f"truncated after {exchange.sent} byte(s), closed (simulated)")
        conn.exchange = None

    @staticmethod
    async def _drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(DRAIN_TIMEOUT):
                while await reader.read(CHUNK):
                    pass
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _trickle(
        self, conn: _Connection, exchange: _Exchange, data: bytes, per_second: int
    ) -> None:
        step = max(1, per_second // TRICKLE_STEPS_PER_SECOND)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            conn.writer.write(piece)
            await conn.writer.drain()
            exchange.sent += len(piece)
            await asyncio.sleep(len(piece) / per_second)

    # -- logs ---------------------------------------------------------------------------

    @staticmethod
    def _held(exchange: _Exchange) -> str:
        return f"the client gave up after {time.monotonic() - exchange.started:.2f} s"

    def _log_end(self, exchange: _Exchange, how: str) -> None:
        """The line of an exchange the proxy did not end itself: slow-bytes, or a reset or
        truncate whose response was shorter than its byte count.
        """
        if exchange.logged or exchange.fault is None:
            return
        fault, took = exchange.fault, time.monotonic() - exchange.started
        if fault.mode == "slow-bytes":
            what = f"slow-bytes at {fault.size} B/s: {exchange.sent} byte(s) in {took:.2f} s"
        else:
            what = f"{fault.mode}: the response, {exchange.sent} byte(s), was under {fault.size}"
        self._log(exchange, f"{what}, {how} (simulated)")

    @staticmethod
    def _log(exchange: _Exchange, what: str) -> None:
        """One line per faulted request, in the shape of Users' access log lines."""
        exchange.logged = True
        from resilient_http.request_id import bind_request_id

        bind_request_id(exchange.request_id)
        logger.warning('"%s" %s', exchange.request, what)


def _close_db_connections() -> None:
    from django.db import connections

    connections.close_all()
