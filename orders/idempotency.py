"""``Idempotency-Key`` for POST (IETF httpapi draft "The Idempotency-Key HTTP Header Field").

- First request with a key: runs, and if it succeeds its response is stored for ``ttl``.
- Same key, same body: the stored response, replayed (``Idempotent-Replayed: true``);
  nothing runs again.
- Same key, different body: 422. Same key while the first is still running: 409.
- A request that fails (Users unavailable, say) stores nothing and frees its key: nothing
  was created, so the client may retry it with the same key and succeed later.

In memory and per process, like the orders themselves.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from project.problems import ServiceProblem
from project.resilience.deadline import Clock

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: Keys are compared as sent (the draft's quoted "..." form included): same header value,
#: same key. The OpenAPI schema states exactly this, so what it allows is what we accept.
MAX_KEY_LENGTH = 255
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[ -~]+$"}


class KeyInUse(ServiceProblem):
    status_code = 409
    default_code = "idempotency_key_in_use"
    default_detail = "A request with this Idempotency-Key is still being processed; retry later."


class KeyReused(ServiceProblem):
    status_code = 422
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was used with a different request body."


class BadKey(ServiceProblem):
    status_code = 400
    default_code = "invalid_idempotency_key"
    default_detail = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: Any
    replayed: bool


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    expires_at: float
    result: Stored | None = None  # None while in progress


def parse_key(raw: str | None) -> str | None:
    """The key from the header; ``None`` if absent; ``BadKey`` if malformed."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in raw):
        raise BadKey
    return raw


def fingerprint(body: Any) -> str:
    """Same data, same fingerprint, whatever the key order or spacing of the JSON sent."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, *, ttl: float = 24 * 3600, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def run_once(
        self, key: str, body_fingerprint: str, create: Callable[[], tuple[int, Any]]
    ) -> Stored:
        """``create()`` at most once per key; its ``(status, body)``, or the stored one."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is not None:
                if entry.fingerprint != body_fingerprint:
                    raise KeyReused
                if entry.result is None:
                    raise KeyInUse
                return Stored(entry.result.status, entry.result.body, replayed=True)
            self._entries[key] = _Entry(body_fingerprint, self._clock() + self.ttl)
        try:
            status, body = create()  # no lock held: other keys proceed in parallel
        except BaseException:
            with self._lock:
                self._entries.pop(key, None)  # nothing was created: the key is free again
            raise
        stored = Stored(status, body, replayed=False)
        with self._lock:
            self._entries[key].result = stored
        return stored

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.expires_at <= now and e.result]:
            del self._entries[key]
