"""IdempotencyKeys on the database: once per key, replay, mismatch, in progress, failure
frees, expiry, a crashed request's claim reclaimed after the lock timeout, the purge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from orders.idempotency import (
    IdempotencyKeys,
    KeyInUse,
    KeyReused,
    idempotency_purge_expired,
)
from orders.models import IdempotencyRecord, Order

pytestmark = pytest.mark.django_db(transaction=True)

TTL, LOCK_TIMEOUT = 3600.0, 10.0


class DateClock:
    """An aware ``datetime`` clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> DateClock:
    return DateClock()


@pytest.fixture
def keys(clock: DateClock) -> IdempotencyKeys:
    return IdempotencyKeys(ttl=TTL, lock_timeout=LOCK_TIMEOUT, clock=clock)


def create_order(product: str = "Pen"):
    """A commit step that writes a real row, so a rollback is visible."""
    return lambda _: (201, Order.objects.create(user_id=1, product=product).as_json())


def nothing() -> None:
    return None


def crashed_claim(key: str, fp: str, at: datetime) -> None:
    """What a process killed after phase 1 leaves behind: an in-progress record, no order."""
    IdempotencyRecord.objects.create(
        key=key,
        fingerprint=fp,
        state=IdempotencyRecord.State.IN_PROGRESS,
        lock_token=uuid.uuid4(),
        locked_at=at,
        created_at=at,
        expires_at=at + timedelta(seconds=TTL),
    )


def test_runs_once_then_replays(keys):
    first = keys.run_once("k", "f", nothing, create_order())
    second = keys.run_once("k", "f", nothing, create_order())
    assert (first.status, first.replayed) == (201, False)
    assert (second.body, second.replayed) == (first.body, True)
    assert Order.objects.count() == 1


def test_other_body_is_refused(keys):
    keys.run_once("k", "f1", nothing, create_order())
    with pytest.raises(KeyReused):
        keys.run_once("k", "f2", nothing, create_order())
    assert Order.objects.count() == 1


def test_in_progress_is_refused(keys):
    def prepare() -> None:
        with pytest.raises(KeyInUse):
            keys.run_once("k", "f", nothing, create_order())

    assert keys.run_once("k", "f", prepare, create_order()).status == 201
    assert Order.objects.count() == 1


def test_a_failed_prepare_frees_the_key(keys):
    def users_down() -> None:
        raise RuntimeError("Users down")

    with pytest.raises(RuntimeError):
        keys.run_once("k", "f", users_down, create_order())
    assert not IdempotencyRecord.objects.exists()
    assert not keys.run_once("k", "f", nothing, create_order()).replayed


def test_a_failed_commit_rolls_the_order_back_and_frees_the_key(keys):
    def half_written(_: None) -> tuple[int, dict]:
        Order.objects.create(user_id=1, product="half")
        raise RuntimeError("database went away mid-transaction")

    with pytest.raises(RuntimeError):
        keys.run_once("k", "f", nothing, half_written)
    assert not Order.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_keys_expire_after_the_ttl(keys, clock):
    first = keys.run_once("k", "f", nothing, create_order("one"))
    clock.advance(TTL - 1)
    assert keys.run_once("k", "f", nothing, create_order("two")).body == first.body
    clock.advance(1)
    again = keys.run_once("k", "other body: the key is new again", nothing, create_order("two"))
    assert (again.body["product"], again.replayed) == ("two", False)


def test_a_crashed_claim_blocks_until_the_lock_timeout_then_is_reclaimed(keys, clock):
    crashed_claim("k", "f", at=clock.now)
    clock.advance(LOCK_TIMEOUT - 0.001)
    with pytest.raises(KeyInUse):
        keys.run_once("k", "f", nothing, create_order())
    clock.advance(0.001)
    stored = keys.run_once("k", "f", nothing, create_order())
    assert (stored.status, stored.replayed) == (201, False)
    assert Order.objects.count() == 1
    assert keys.run_once("k", "f", nothing, create_order()).replayed


def test_a_stale_claim_with_another_body_is_still_422(keys, clock):
    crashed_claim("k", "f", at=clock.now)
    clock.advance(LOCK_TIMEOUT * 2)
    with pytest.raises(KeyReused):
        keys.run_once("k", "other", nothing, create_order())


def test_a_request_that_outlived_its_claim_cannot_complete_it(keys, clock):
    """The first request stalls past the lock timeout; a retry reclaims the key and
    creates the order; the first then finds its claim gone and rolls back: one order."""
    retried = []

    def stall() -> None:
        clock.advance(LOCK_TIMEOUT + 1)
        retried.append(keys.run_once("k", "f", nothing, create_order("retry")))

    with pytest.raises(KeyInUse):
        keys.run_once("k", "f", stall, create_order("stalled"))
    assert list(Order.objects.values_list("product", flat=True)) == ["retry"]
    assert keys.run_once("k", "f", nothing, create_order()).body == retried[0].body


def test_a_new_key_purges_a_few_expired_records(keys, clock):
    for n in range(15):
        keys.run_once(f"old-{n}", "f", nothing, lambda _: (201, {}))
    clock.advance(TTL)
    keys.run_once("new", "f", nothing, lambda _: (201, {}))
    assert IdempotencyRecord.objects.count() == 1 + 15 - 10  # PURGE_ON_WRITE
    assert idempotency_purge_expired(now=clock.now) == 5


def test_the_purge_command_deletes_only_expired_records(keys, clock, capsys):
    """The command reads the real time: one record expired in 2000, one in 2999."""
    for key in ("old", "live"):
        keys.run_once(key, "f", nothing, lambda _: (201, {}))
    IdempotencyRecord.objects.filter(key="old").update(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    IdempotencyRecord.objects.filter(key="live").update(expires_at=datetime(2999, 1, 1, tzinfo=UTC))
    call_command("idempotency_purge", "--dry-run")
    assert "1 expired" in capsys.readouterr().out
    assert IdempotencyRecord.objects.count() == 2
    call_command("idempotency_purge")
    assert "Deleted 1 expired" in capsys.readouterr().out
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["live"]
    call_command("idempotency_purge", "--limit", "5", "--verbosity", "0")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_the_purge_command_refuses_a_bad_limit(limit):
    with pytest.raises(CommandError):
        call_command("idempotency_purge", "--limit", limit)


def test_a_request_that_lost_its_claim_and_failed_frees_nothing_of_the_new_owner(keys, clock):
    """The first request stalls past the lock timeout, a retry completes meanwhile, then
    the first fails: it must not delete the retry's stored answer (its token is stale)."""
    retried = []

    def stall_then_fail() -> None:
        clock.advance(LOCK_TIMEOUT + 1)
        retried.append(keys.run_once("k", "f", nothing, create_order("retry")))
        raise RuntimeError("Users down")

    with pytest.raises(RuntimeError):
        keys.run_once("k", "f", stall_then_fail, create_order("stalled"))
    replay = keys.run_once("k", "f", nothing, create_order("third"))
    assert replay.replayed
    assert replay.body == retried[0].body
    assert list(Order.objects.values_list("product", flat=True)) == ["retry"]


def test_a_request_cannot_commit_over_a_claim_taken_from_it(keys, clock):
    """The first request stalls past the lock timeout and another takes the key over (still
    in progress): the first's commit is refused and rolled back, the new claim kept."""

    def stall_and_be_overtaken() -> None:
        clock.advance(LOCK_TIMEOUT + 1)
        keys._claim("k", "f")  # a retry claimed it and is still calling Users

    with pytest.raises(KeyInUse):
        keys.run_once("k", "f", stall_and_be_overtaken, create_order("stalled"))
    assert not Order.objects.exists()
    record = IdempotencyRecord.objects.get(key="k")
    assert record.state == IdempotencyRecord.State.IN_PROGRESS
