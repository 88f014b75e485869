"""Whole numbers from outside (headers, query strings, upstream responses): ASCII only.

``str.isdigit()`` is true for ``"²"`` and other Unicode digits, which ``int()`` then refuses
(a ``ValueError`` where a 400 or a 502 belonged) or reads (``int("١٢")`` is 12): a number
that came over the wire is ``[0-9]`` or it is not a number.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def ascii_int(value: str | None, *, most_digits: int = 18) -> int | None:
    """``value`` (spaces around it allowed) as a whole number if it is 1 to ``most_digits``
    ASCII digits; ``None`` otherwise."""
    if value is None:
        return None
    digits = value.strip(" \t")
    if len(digits) > most_digits or not _DIGITS.fullmatch(digits):
        return None
    return int(digits)
