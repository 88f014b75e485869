"""``Idempotency-Key`` for POST (IETF httpapi draft "The Idempotency-Key HTTP Header Field"),
stored in the database every Orders process shares.

- First request with a key: runs, and if it succeeds its response is stored for ``ttl``.
- Same key, same body: the stored response, replayed (``Idempotent-Replayed: true``);
  nothing runs again, in whichever process the retry lands.
- Same key, different body: 422. Same key while the first is still running: 409.
- A request that fails (Users unavailable, say) stores nothing and frees its key: nothing
  was created, so the client may retry it with the same key and succeed later.

The design is Brandur Leach's "Implementing Stripe-like idempotency keys in Postgres", cut
to this service's one foreign call, which only reads: three atomic phases.

1. **Claim** (own short transaction): insert the key *in progress*. The unique constraint
   decides a race between processes; the loser looks at the winner's record under a row
   lock: other body 422, completed replay, in progress 409.
2. **Prepare** (no transaction open): the Users call. No database lock is held across it.
3. **Commit** (one transaction): the order row and the key's stored response together,
   only if this request still holds the claim (``lock_token``).

A process killed between 1 and 3 leaves an in-progress record and nothing else (phase 3
is one transaction). Its claim is stale after ``lock_timeout`` (longer than any request
may run), and the next request with the key reclaims it and starts again from phase 2:
the Users call is a read, so running it again is safe (the "recovery point" is the start).
A request that outlives its claim finds it taken at phase 3 and rolls back: one order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.models import IdempotencyRecord
from resilient_http.problems import ServiceProblem

logger = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

REPLAYED_HEADER = "Idempotent-Replayed"
#: Keys are compared as sent (the draft's quoted "..." form included): same header value,
#: same key. The OpenAPI schema states exactly this, so what it allows is what we accept.
MAX_KEY_LENGTH = 255
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[ -~]+$"}
#: Expired records deleted, at most, by a request that claims a new key.
PURGE_ON_WRITE = 10
#: Claim attempts when the record that beat us is deleted (freed) before we can read it.
_CLAIM_ATTEMPTS = 3

_RECORD = IdempotencyRecord.objects
_IN_PROGRESS = IdempotencyRecord.State.IN_PROGRESS
_COMPLETED = IdempotencyRecord.State.COMPLETED


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


def idempotency_purge_expired(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Delete expired records (all, or at most ``limit``); how many were deleted.

    An expired in-progress record goes too: its request has outlived the key itself.
    """
    now = now or timezone.now()
    expired = _RECORD.filter(expires_at__lte=now)
    if limit is not None:
        # Still expired at the delete: a key reclaimed in between (a new expiry) is kept.
        chosen = list(expired.values_list("pk", flat=True)[:limit])
        expired = _RECORD.filter(pk__in=chosen, expires_at__lte=now)
    return expired.delete()[0]


class IdempotencyKeys:
    """Runs work at most once per key, across every process on the database.

    ``ttl``: seconds a key is remembered. ``lock_timeout``: seconds after which an
    in-progress claim is taken to be dead (its process crashed) and may be reclaimed; keep
    it above the longest a request may run. ``clock``: aware ``datetime`` now (tests).
    """

    def __init__(self, *, ttl: float, lock_timeout: float, clock: Clock = timezone.now) -> None:
        self.ttl = timedelta(seconds=ttl)
        self.lock_timeout = timedelta(seconds=lock_timeout)
        self._clock = clock

    @classmethod
    def from_settings(cls) -> IdempotencyKeys:
        return cls(ttl=settings.IDEMPOTENCY_KEY_TTL, lock_timeout=settings.IDEMPOTENCY_LOCK_TIMEOUT)

    def run_once(
        self,
        key: str,
        body_fingerprint: str,
        prepare: Callable[[], T],
        commit: Callable[[T], tuple[int, Any]],
    ) -> Stored:
        """``prepare()`` outside any transaction, then ``commit(prepared)`` -> ``(status,
        body)`` in the transaction that stores that response under the key; or the stored
        response. ``KeyReused`` (422) or ``KeyInUse`` (409) otherwise.
        """
        claimed = self._claim(key, body_fingerprint)
        if isinstance(claimed, Stored):
            return claimed
        token = claimed
        try:
            idempotency_purge_expired(now=self._clock(), limit=PURGE_ON_WRITE)  # a few, cheap
            prepared = prepare()
            with transaction.atomic():
                status, body = commit(prepared)
                held = _RECORD.filter(key=key, state=_IN_PROGRESS, lock_token=token).update(
                    state=_COMPLETED,
                    response_status=status,
                    response_body=body,
                    lock_token=None,
                    locked_at=None,
                )
                if not held:  # our claim went stale and another request took it over
                    raise _LostClaim
        except _LostClaim:
            logger.warning("Idempotency-Key %r: claim lost to a newer request; rolled back", key)
            raise KeyInUse from None
        except BaseException:
            # Nothing was created (phase 3 rolled back, or never ran): free the key.
            _RECORD.filter(key=key, lock_token=token).delete()
            raise
        return Stored(status, body, replayed=False)

    def _claim(self, key: str, body_fingerprint: str) -> uuid.UUID | Stored:
        """Phase 1: the key, ours (a lock token), or the stored response to replay."""
        for _ in range(_CLAIM_ATTEMPTS):
            now, token = self._clock(), uuid.uuid4()
            try:
                with transaction.atomic():
                    _RECORD.create(
                        key=key,
                        fingerprint=body_fingerprint,
                        state=_IN_PROGRESS,
                        lock_token=token,
                        locked_at=now,
                        created_at=now,
                        expires_at=now + self.ttl,
                    )
            except IntegrityError:  # the key exists: another request's, or an old one
                pass
            else:
                return token
            with transaction.atomic():
                record = _RECORD.select_for_update().filter(key=key).first()
                if record is None:  # freed by a failed request meanwhile: claim it again
                    continue
                return self._decide(record, body_fingerprint, now, token)
        raise KeyInUse

    def _decide(
        self, record: IdempotencyRecord, body_fingerprint: str, now: datetime, token: uuid.UUID
    ) -> uuid.UUID | Stored:
        """Under the record's row lock: replay, refuse, or reclaim it for this request."""
        if record.expires_at <= now:  # forgotten: the key is new again
            record.fingerprint, record.created_at = body_fingerprint, now
            record.expires_at = now + self.ttl
            record.response_status = record.response_body = None
            return self._take(record, now, token)
        if record.fingerprint != body_fingerprint:
            raise KeyReused
        if record.state == _COMPLETED:
            return Stored(record.response_status, record.response_body, replayed=True)
        if record.locked_at is not None and record.locked_at > now - self.lock_timeout:
            raise KeyInUse
        logger.warning(
            "Idempotency-Key %r: in progress since %s, past the lock timeout; reclaimed",
            record.key,
            record.locked_at,
        )
        return self._take(record, now, token)

    def _take(self, record: IdempotencyRecord, now: datetime, token: uuid.UUID) -> uuid.UUID:
        record.state, record.lock_token, record.locked_at = _IN_PROGRESS, token, now
        record.save()
        return token


class _LostClaim(Exception):
    """Phase 3 found the claim taken over: roll the order back."""
