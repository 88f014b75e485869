"""A testing switch in the manner of stamina's ``set_testing()``.

Django-level tests call real views over real HTTP, where injecting a clock into the
process-wide client is awkward. With testing on, the loop computes every wait as usual
(the events and the history show it) but does not sleep it, and full jitter takes its
ceiling, so retries are instant and their waits deterministic.
"""

from __future__ import annotations

_testing = False


def set_testing(testing: bool = True) -> None:
    """Turn testing mode on (or off) for every upstream in this process. Either way, the
    default log listener forgets the refusals it was summing (``events.REFUSALS``): a
    test's first refusal logs its line, whatever an earlier test refused."""
    global _testing
    _testing = testing
    from .events import REFUSALS  # (not at the top: the loop imports this module early)

    REFUSALS.clear()


def is_testing() -> bool:
    return _testing
