"""Idempotency-Key parsing and fingerprints (the stored records: integration tests)."""

from __future__ import annotations

import pytest

from orders.idempotency import BadKey, fingerprint, parse_key


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
