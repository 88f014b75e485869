"""A hostile Users: a real TCP server that writes raw bytes, one mode per way to misbehave.

Not a WSGI app: a polite framework cannot drip a status line, send endless ``100 Continue``
or stop half-way through a chunk-size line. Each connection gets the current ``mode``;
every mode is bounded (``MAX_SECONDS``), so a client that never gives up cannot keep a
server thread alive past the test. Handler threads are named ``hostile-*`` so a test can
tell them from the client's own.
"""

from __future__ import annotations

import functools
import gzip
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

USER = b'{"id": 1, "name": "Aaron Apple", "phone": "99992222"}'
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
DRIP = 0.05  # seconds between dripped bytes or lines
MAX_SECONDS = 30.0  # no mode runs longer, whoever is (not) listening
CAP = 1024 * 1024  # Orders' body cap (UpstreamConfig.max_body_bytes)

Mode = Callable[[socket.socket], None]


class _Stop(Exception):
    """The mode ran out of time; end the connection."""


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)


def _drip(sock: socket.socket, pieces: Iterator[bytes], interval: float = DRIP) -> None:
    """Send each piece ``interval`` apart, until the client leaves or time runs out."""
    ends = time.monotonic() + MAX_SECONDS
    for piece in pieces:
        if time.monotonic() > ends:
            raise _Stop
        sock.sendall(piece)
        time.sleep(interval)


def _bytes(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def _forever(make: Callable[[int], bytes]) -> Iterator[bytes]:
    n = 0
    while True:
        yield make(n)
        n += 1


def _full(body: bytes = USER, extra: bytes = b"") -> bytes:
    return OK_HEAD + b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


def _chunked_head(extra: bytes = b"") -> bytes:
    return OK_HEAD + b"Transfer-Encoding: chunked\r\n" + extra + b"\r\n"


@functools.cache
def _zeros_compressed(kind: str, megabytes: int = 128) -> bytes:
    """``megabytes`` MiB of zeros compressed (~1000:1), built once, streaming."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}[kind]
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1024 * 1024)
    out = [compressor.compress(block) for _ in range(megabytes)]
    out.append(compressor.flush())
    return b"".join(out)


# -- the modes ---------------------------------------------------------------------------


def healthy(sock: socket.socket) -> None:
    _send(sock, _full())


def headers_byte_at_a_time(sock: socket.socket) -> None:
    _drip(sock, _bytes(_full()))


def slow_header_lines(sock: socket.socket) -> None:
    _send(sock, b"HTTP/1.1 200 OK\r\n")
    _drip(sock, _forever(lambda n: b"X-Slow-%d: y\r\n" % n), interval=0.2)  # < 100 in 20 s


def endless_100_continue(sock: socket.socket) -> None:
    _drip(sock, _forever(lambda n: b"HTTP/1.1 100 Continue\r\n\r\n"))


def endless_chunk_size_line(sock: socket.socket) -> None:
    _send(sock, _chunked_head() + b"5;ext=")
    _drip(sock, _forever(lambda n: b"a"))


def trailers_byte_at_a_time(sock: socket.socket) -> None:
    _send(sock, _chunked_head() + b"%x\r\n%s\r\n0\r\n" % (len(USER), USER))
    line = b"X-Trailer: t\r\n"  # trailer lines, a byte at a time, never the blank line
    _drip(sock, _forever(lambda n: line[n % len(line) : n % len(line) + 1]))


def drip_chunked(sock: socket.socket) -> None:
    _send(sock, _chunked_head())
    _drip(sock, (b"1\r\n%s\r\n" % USER[i : i + 1] for i in range(len(USER))), interval=0.1)


def drip_content_length(sock: socket.socket) -> None:
    _send(sock, OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(USER))
    _drip(sock, _bytes(USER), interval=0.1)


def never_answer(sock: socket.socket) -> None:
    """Accept, read the request, say nothing: until the client leaves."""
    sock.settimeout(MAX_SECONDS)
    while sock.recv(4096):
        pass


def close_before_status(sock: socket.socket) -> None:
    pass  # the handler closes the socket after the mode returns


def reset_after_request(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close: RST


def short_body(sock: socket.socket) -> None:
    _send(sock, OK_HEAD + b"Content-Length: 100\r\n\r\n" + USER[:10])


def content_length_not_ascii(sock: socket.socket) -> None:
    """``Content-Length: ²``: ``str.isdigit()`` says yes, ``int()`` says no."""
    _send(sock, OK_HEAD + "Content-Length: ²\r\n\r\n".encode("latin-1") + USER)


def content_length_negative(sock: socket.socket) -> None:
    _send(sock, OK_HEAD + b"Content-Length: -1\r\n\r\n" + USER)


def not_http(sock: socket.socket) -> None:
    _send(sock, b"SSH-2.0-OpenSSH_9.6\r\n")


def too_many_headers(sock: socket.socket) -> None:
    _send(sock, _full(extra=b"".join(b"X-H-%d: v\r\n" % n for n in range(150))))


def header_line_over_64k(sock: socket.socket) -> None:
    _send(sock, _full(extra=b"X-Big: " + b"a" * (70 * 1024) + b"\r\n"))


def gzip_bomb(sock: socket.socket) -> None:
    body = _zeros_compressed("gzip")
    _send(sock, _full(body, b"Content-Encoding: gzip\r\n"))


def deflate_bomb(sock: socket.socket) -> None:
    body = _zeros_compressed("deflate")
    _send(sock, _full(body, b"Content-Encoding: deflate\r\n"))


def stacked_encoding_bomb(sock: socket.socket) -> None:
    body = gzip.compress(_zeros_compressed("deflate"), compresslevel=9)  # deflate, then gzip
    _send(sock, _full(body, b"Content-Encoding: deflate, gzip\r\n"))


def over_cap_with_content_length(sock: socket.socket) -> None:
    _send(sock, _full(b"x" * (2 * CAP)))


def over_cap_chunked(sock: socket.socket) -> None:
    piece = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    _send(sock, _chunked_head() + piece * 32 + b"0\r\n\r\n")


def over_cap_until_close(sock: socket.socket) -> None:
    _send(sock, OK_HEAD + b"Connection: close\r\n\r\n" + b"x" * (2 * CAP))


def redirect_other_host(sock: socket.socket) -> None:
    head = b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/users/1\r\n"
    _send(sock, head + b"Content-Length: 0\r\n\r\n")


# -- the server --------------------------------------------------------------------------


class HostileUsers:
    """Listens on a free loopback port; each connection gets ``self.mode``."""

    def __init__(self) -> None:
        self.mode: Mode = healthy
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._closing = threading.Event()
        self._handlers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def busy(self) -> bool:
        """Is any connection still being served?"""
        with self._lock:
            return any(t.is_alive() for t in self._handlers)

    def wait_idle(self, timeout: float = 15.0) -> bool:
        """Poll until every connection has ended; ``False`` if one outlives ``timeout``."""
        ends = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() > ends:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self._closing.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        self.wait_idle()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._handlers = [t for t in self._handlers if t.is_alive()]
                handler = threading.Thread(
                    target=self._serve, args=(conn, self.mode), name="hostile-conn", daemon=True
                )
                self._handlers.append(handler)
            handler.start()

    def _serve(self, conn: socket.socket, mode: Mode) -> None:
        with conn:
            try:
                conn.settimeout(MAX_SECONDS)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                mode(conn)
            except (OSError, _Stop):
                pass  # the client left (or the mode ran out of time): that is the point


@contextmanager
def hostile_users() -> Iterator[HostileUsers]:
    for kind in ("gzip", "deflate"):
        _zeros_compressed(kind)  # now, not while a client is timing its call
    server = HostileUsers()
    try:
        yield server
    finally:
        server.close()
