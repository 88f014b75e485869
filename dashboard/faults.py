"""The page's fault controls: one form per ``Outage.Mode``, validated as the command does.

A mode's controls come from ``Outage.Mode`` and ``MAIN_ARGUMENT``: a new mode appears on
the page by itself (with no argument), and gets one with one line in that table. Input
becomes the same ``FaultSpec`` the command builds, and ``outage_start`` validates it, so the
page shows the command's own error messages and writes nothing when they apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from users.models import Outage
from users.outages import fault_spec_parse, outage_start, parse_replica

#: What ``simulate_outage`` says when simulation is off; the page says the same.
SIMULATION_OFF = (
    "Outage simulation is off here; it is on with DJANGO_DEBUG=1 or OUTAGE_SIMULATION=1."
)


@dataclass(frozen=True, slots=True)
class Argument:
    """A mode's main argument: the ``FaultSpec`` field, the command's name for it, a default."""

    field: str
    flag: str
    default: str
    what: str  # "int" or "seconds", for the input's step

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "flag": self.flag, "default": self.default, "what": self.what}


#: Each mode's main argument (the command's flag). A mode not listed takes none.
MAIN_ARGUMENT: Mapping[str, Argument] = {
    "error": Argument("status", "--status", "502", "int"),
    "slow": Argument("delay", "--delay", "3", "seconds"),
    "fail-next": Argument("count", "N", "2", "int"),
    "drip": Argument("delay", "--interval", "0.5", "seconds"),
    "reset": Argument("size", "--after-bytes", "0", "int"),
    "truncate": Argument("size", "--bytes", "0", "int"),
    "slow-bytes": Argument("size", "--bytes-per-second", "50", "int"),
}


def fault_replica(data: Mapping[str, str]) -> tuple[int | None, list[str]]:
    """The form's ``target``: ``None`` for all replicas (the default), or a replica number;
    what is wrong with it, as the command says it, if anything.
    """
    target = (data.get("target") or "").strip()
    try:
        return (None if target == "all" else parse_replica(target)), []
    except ValueError as exc:
        return None, [str(exc)]


def fault_modes() -> list[dict[str, Any]]:
    """The controls to draw: every mode, with its main argument if it has one."""
    modes = []
    for value in Outage.Mode.values:
        argument = MAIN_ARGUMENT.get(value)
        modes.append({"mode": value, "argument": argument.as_dict() if argument else None})
    return modes


def fault_start_from_form(data: Mapping[str, str]) -> tuple[Outage | None, list[str]]:
    """Start the fault the form describes: the outage, or ``None`` and what is wrong.

    ``data``: ``mode``, ``value`` (the main argument), ``for`` (seconds, optional) and
    ``target`` (``all``, the default, or a replica number).
    """
    if not settings.OUTAGE_SIMULATION:
        return None, [SIMULATION_OFF]
    mode = data.get("mode", "")
    text: dict[str, str | None] = {"duration": (data.get("for") or "").strip() or None}
    flags = {"duration": "--for"}
    target = (data.get("target") or "").strip()
    if target != "all":
        text["replica"] = target or None
    argument = MAIN_ARGUMENT.get(mode)
    if argument is not None:
        raw = (data.get("value") or "").strip()
        if not raw:
            return None, [f"{mode} needs {argument.flag}"]
        text[argument.field] = raw
        flags[argument.field] = argument.flag
    spec, problems = fault_spec_parse(mode=mode, text=text, flags=flags)
    if spec is None:  # the command's own messages, one per problem
        return None, problems
    try:
        return outage_start(spec=spec), []
    except ValueError as exc:
        return None, [str(exc)]
