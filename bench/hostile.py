"""Hostile callers on raw sockets: what the front server is there to absorb.

Shared by the hostile-caller tests (``tests/e2e/test_hostile_callers.py``) and the front
door benchmark (``bench/front_door.py``). Loopback only.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

#: A request line and then, a byte a second, headers that never end (slowloris).
SLOWLORIS = (b"GET /healthz HTTP/1.1\r\n", b"X-a: b\r\n")


class Hostile:
    """``count`` raw connections to ``port``, each sent ``opening``; then, while
    ``dripping``, one more byte of ``drip`` a second on each (a connection the server
    closed is replaced, as slowloris does). ``open_count()``: how many the server still holds."""

    def __init__(self, port: int, count: int, opening: bytes, drip: bytes = b"") -> None:
        self.port, self.opening, self.drip = port, opening, drip
        self.sockets = [self._connect() for _ in range(count)]
        self.dripping = threading.Event()
        self._thread: threading.Thread | None = None
        if drip:
            self.dripping.set()
            self._thread = threading.Thread(target=self._drip, daemon=True)
            self._thread.start()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(self.opening)
        return sock

    def _drip(self) -> None:
        sent = 0
        while self.dripping.is_set():
            byte = self.drip[sent % len(self.drip) : sent % len(self.drip) + 1]
            for i, sock in enumerate(self.sockets):
                try:
                    sock.send(byte)
                except OSError:
                    sock.close()
                    with contextlib.suppress(OSError):  # refused: the next round tries again
                        self.sockets[i] = self._connect()
            sent += 1
            self.dripping.wait(1.0)

    def stop_sending(self) -> None:
        self.dripping.clear()
        if self._thread is not None:
            self._thread.join()

    def open_count(self) -> int:
        """How many of the attack's sockets the server has not closed yet."""
        still_open = 0
        for sock in self.sockets:
            if sock.fileno() == -1:
                continue
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                still_open += 1
                continue
            try:
                while sock.recv(65536):  # an answer (an error page) first, then the close
                    if not select.select([sock], [], [], 0)[0]:
                        still_open += 1
                        break
            except OSError:
                pass  # reset: closed
        return still_open

    def close(self) -> None:
        self.stop_sending()
        for sock in self.sockets:
            sock.close()

    def __enter__(self) -> Hostile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
