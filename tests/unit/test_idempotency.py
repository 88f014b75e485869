"""IdempotencyStore: once per key, replay, mismatch, in-progress, failure frees, expiry."""

from __future__ import annotations

import pytest

from orders.idempotency import (
    BadKey,
    IdempotencyStore,
    KeyInUse,
    KeyReused,
    fingerprint,
    parse_key,
)


def test_runs_once_then_replays(clock):
    store, calls = IdempotencyStore(ttl=60, clock=clock), []

    def create():
        calls.append(1)
        return 201, {"id": len(calls)}

    first = store.run_once("k", "f", create)
    second = store.run_once("k", "f", create)
    assert (first.body, first.replayed) == ({"id": 1}, False)
    assert (second.body, second.replayed) == ({"id": 1}, True)
    assert calls == [1]


def test_other_body_is_refused(clock):
    store = IdempotencyStore(ttl=60, clock=clock)
    store.run_once("k", "f1", lambda: (201, {}))
    with pytest.raises(KeyReused):
        store.run_once("k", "f2", lambda: (201, {}))


def test_in_progress_is_refused(clock):
    store = IdempotencyStore(ttl=60, clock=clock)

    def create():
        with pytest.raises(KeyInUse):
            store.run_once("k", "f", lambda: (201, {}))
        return 201, {}

    assert store.run_once("k", "f", create).status == 201


def test_a_failure_frees_the_key(clock):
    store = IdempotencyStore(ttl=60, clock=clock)

    def boom():
        raise RuntimeError("Users down")

    with pytest.raises(RuntimeError):
        store.run_once("k", "f", boom)
    assert not store.run_once("k", "f", lambda: (201, {"ok": True})).replayed


def test_keys_expire_after_the_ttl(clock):
    store = IdempotencyStore(ttl=60, clock=clock)
    store.run_once("k", "f", lambda: (201, {"n": 1}))
    clock.advance(59)
    assert store.run_once("k", "f", lambda: (201, {"n": 2})).body == {"n": 1}
    clock.advance(1)
    assert store.run_once("k", "f", lambda: (201, {"n": 2})).body == {"n": 2}


def test_fingerprint_ignores_key_order():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


@pytest.mark.parametrize(("raw", "key"), [(None, None), ("abc", "abc"), ('"abc"', '"abc"')])
def test_keys_are_taken_as_sent(raw, key):
    assert parse_key(raw) == key


@pytest.mark.parametrize("raw", ["", "x" * 256, "naïve", "a\nb"])
def test_malformed_keys(raw):
    with pytest.raises(BadKey):
        parse_key(raw)
