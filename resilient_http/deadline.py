"""A wall-clock budget for one call: every timeout and sleep is clipped to what is left."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .digits import ascii_int

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on a monotonic ``clock``; ``remaining()`` never goes below 0."""

    expires_at: float
    clock: Clock = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock())

    @classmethod
    def from_header(cls, value: str | None, clock: Clock = time.monotonic) -> Deadline | None:
        """The deadline a caller sent as whole milliseconds left (``DEADLINE_HEADER``);
        ``None`` if absent or unreadable: it is a hint, and a bad one must not break a call.
        """
        millis = ascii_int(value, most_digits=12)
        return None if millis is None else cls.after(millis / 1000, clock)

    def earliest(self, seconds: float) -> Deadline:
        """This deadline or one ``seconds`` from now, whichever comes first."""
        return self if seconds >= self.remaining() else Deadline.after(seconds, self.clock)
