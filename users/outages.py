"""Simulated outages of the Users API: start, inspect, end, and decide per request.

The state is database rows, so ``manage.py simulate_outage`` in one process changes
what the running servers do on their next request, with no restart. A fault given a
duration stores its expiry time and so ends by itself even if nobody runs ``clear``.

A fault targets every Users replica (the default) or one. A fault for all replaces every
fault; one for replica N replaces only N's; a replica obeys its own active fault if it has
one, else the one for all (``outage_active``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from users.fault_proxy import fault_proxies_sync
from users.models import Outage

Mode = Outage.Mode
#: Faults of the connection itself: served by the fault proxy in front of Users
#: (``users.fault_proxy``), never by Users' middleware. The others are HTTP answers.
TRANSPORT_MODES = frozenset({Mode.DOWN, Mode.RESET, Mode.HANG, Mode.TRUNCATE, Mode.SLOW_BYTES})

#: Bounds on what a fault may ask for: long enough for any demonstration, small enough that
#: no value overflows a ``timedelta``, a ``time.sleep`` or the database column (2**31 - 1).
MAX_DELAY = 3600.0  # seconds: slow's delay, drip's interval
MAX_DURATION = 86_400.0  # seconds: --for
MAX_RETRY_AFTER = 86_400  # seconds
MAX_COUNT = 1_000_000  # fail-next's N
MAX_BYTES = 1_000_000_000  # reset/truncate byte counts, slow-bytes' bytes per second
MAX_REPLICA = 99  # replica numbers: 1..99

# ASCII digits only: int() and float() also take '١٢' (Arabic-Indic digits) and '1_0'.
_INT = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_int(raw: str) -> int:
    """A whole number typed by a person; ``ValueError`` with the message to show if not."""
    text = raw.strip()
    try:
        if _INT.fullmatch(text):
            return int(text)  # may still raise: more digits than int() converts
    except ValueError:
        pass
    raise ValueError(f"invalid int value: {raw!r}")


def parse_fraction(raw: str) -> float:
    """A plain decimal number (``--rate``); its range is ``FaultSpec.problems``' to check."""
    text = raw.strip()
    if not _NUMBER.fullmatch(text) or not math.isfinite(value := float(text)):
        raise ValueError(f"invalid float value: {raw!r}")
    return value


def parse_seconds(raw: str) -> float:
    """A finite number of seconds (``1.5``, ``2e3``); ``ValueError`` with the message if not."""
    text = raw.strip()
    if text.lstrip("+-").lower() in ("nan", "inf", "infinity"):
        raise ValueError(f"{raw!r} is not a finite number of seconds")
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{raw!r} is not a number of seconds")
    if not math.isfinite(value := float(text)):
        raise ValueError(f"{raw!r} is not a finite number of seconds")
    return value


def parse_replica(raw: str | None) -> int | None:
    """``--replica``'s text: ``None`` (every replica) or a replica number, else ``ValueError``
    with the message ``FaultSpec.problems`` gives.
    """
    if raw is None or not raw.strip():
        return None
    try:
        replica = parse_int(raw)
    except ValueError as exc:
        raise ValueError(f"argument --replica: {exc}") from None
    problems = FaultSpec(mode=Mode.ERROR, replica=replica).problems()
    if problems:
        raise ValueError("; ".join(problems))
    return replica


#: How each ``FaultSpec`` field is read from text, by the command and the page alike.
FIELD_PARSERS: Mapping[str, Callable[[str], object]] = {
    "status": parse_int,
    "retry_after": parse_int,
    "rate": parse_fraction,
    "delay": parse_seconds,
    "count": parse_int,
    "duration": parse_seconds,
    "size": parse_int,
    "replica": parse_int,
}


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault to start. ``delay`` is the slow delay or the drip interval, in seconds;
    ``size`` the bytes after which ``reset`` resets or ``truncate`` cuts, or the bytes per
    second of ``slow-bytes``.
    """

    mode: str
    status: int = 502
    retry_after: int | None = None
    rate: float = 1.0
    delay: float = 0.0
    count: int | None = None
    duration: float | None = None
    size: int | None = None
    replica: int | None = None  # the one Users replica to fault; None: every replica

    def problems(self) -> list[str]:
        """What is wrong with this spec, in words a person can act on; empty if nothing."""
        found = []
        if self.mode not in Mode.values:
            found.append(f"unknown mode {self.mode!r}; choose one of {', '.join(Mode.values)}")
        if self.mode in Mode.values:
            found += self._bound_problems()
        if not 400 <= self.status <= 599:
            found.append(f"--status must be an HTTP error status, 400..599; got {self.status}")
        if not 0.0 <= self.rate <= 1.0:
            found.append(f"--rate must be a fraction between 0 and 1; got {self.rate:g}")
        if self.delay < 0:
            found.append(f"the delay/interval must not be negative; got {self.delay:g}")
        if self.mode in (Mode.SLOW, Mode.DRIP) and self.delay <= 0:
            found.append(f"{self.mode} needs a positive --delay/--interval in seconds")
        if self.retry_after is not None and self.retry_after < 0:
            found.append(f"--retry-after must not be negative; got {self.retry_after}")
        if self.mode == Mode.FAIL_NEXT and (self.count is None or self.count < 1):
            found.append(f"fail-next needs a count of at least 1; got {self.count}")
        if self.mode == Mode.DOWN and self.rate != 1.0:
            found.append("down takes no --rate: a port either refuses connections or not")
        if self.mode == Mode.TRUNCATE and self.size is None:
            found.append("truncate needs --bytes N, the response bytes to let through")
        if self.mode == Mode.SLOW_BYTES and (self.size is None or self.size < 1):
            found.append(f"slow-bytes needs --bytes-per-second of at least 1; got {self.size}")
        elif self.size is not None and self.size < 0:
            found.append(f"a byte count must not be negative; got {self.size}")
        if self.duration is not None and self.duration <= 0:
            found.append(f"--for must be a positive number of seconds; got {self.duration:g}")
        if self.replica is not None and not 1 <= self.replica <= MAX_REPLICA:
            found.append(
                f"--replica must be a replica number, 1..{MAX_REPLICA}; got {self.replica}"
            )
        return found

    def _bound_problems(self) -> list[str]:
        """Values too large to mean anything (see ``MAX_DELAY`` and the others)."""
        limits = [
            ("the delay/interval", self.delay, MAX_DELAY, "s (an hour)"),
            ("--for", self.duration, MAX_DURATION, "s (a day)"),
            ("--retry-after", self.retry_after, MAX_RETRY_AFTER, "s (a day)"),
            ("fail-next's count", self.count, MAX_COUNT, ""),
            ("a byte count", self.size, MAX_BYTES, ""),
        ]
        return [
            f"{name} must be at most {_shown(limit)}{unit and ' '}{unit}; got {_shown(value)}"
            for name, value, limit, unit in limits
            if value is not None and value > limit
        ]


def _shown(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


def fault_spec_parse(
    *, mode: str, text: Mapping[str, str | None], flags: Mapping[str, str]
) -> tuple[FaultSpec | None, list[str]]:
    """The spec that ``text`` (``FaultSpec`` field -> text as typed; ``None``: the default)
    describes, or ``None`` and every problem; ``flags`` names the fields in the messages
    where ``--field-name`` would not.
    """
    fields: dict[str, object] = {}
    problems = []
    for name, raw in text.items():
        if raw is None:
            continue
        try:
            fields[name] = FIELD_PARSERS[name](raw)
        except ValueError as exc:
            flag = flags.get(name) or "--" + name.replace("_", "-")
            problems.append(f"argument {flag}: {exc}")
    if problems:
        return None, problems
    spec = FaultSpec(mode=mode, **fields)  # type: ignore[arg-type]
    problems = spec.problems()
    return (None, problems) if problems else (spec, [])


def outage_start(*, spec: FaultSpec, now: datetime | None = None) -> Outage:
    """Replace any fault with ``spec``; raises ``ValueError`` (and writes nothing) if invalid.

    In force for every request that starts after this returns, in Users (which reads the row
    per request) as in the fault proxies (told, and waited for: ``fault_proxies_sync``).
    """
    problems = spec.problems()
    if problems:
        raise ValueError("; ".join(problems))
    now = now or timezone.now()
    with transaction.atomic():
        if spec.replica is None:  # a fault for all replaces every fault
            Outage.objects.exclude(pk=Outage.SINGLETON).delete()
        outage = _outage_write(spec, now)
    transaction.on_commit(fault_proxies_sync)  # the proxies apply it before we return
    return outage


def _outage_write(spec: FaultSpec, now: datetime) -> Outage:
    outage, _ = Outage.objects.update_or_create(
        pk=Outage.pk_for(spec.replica),
        defaults={
            "replica": spec.replica,
            "mode": spec.mode,
            "status": spec.status,
            "retry_after": spec.retry_after,
            "rate": spec.rate,
            "delay": spec.delay,
            "remaining": spec.count if spec.mode == Mode.FAIL_NEXT else None,
            "size": spec.size if spec.mode in TRANSPORT_MODES else None,
            "started_at": now,
            "expires_at": now + timedelta(seconds=spec.duration) if spec.duration else None,
            "hits": 0,
        },
    )
    return outage


def outage_clear(*, replica: int | None = None) -> bool:
    """End every fault, or only ``replica``'s own; ``True`` if there was one."""
    rows = Outage.objects.all() if replica is None else Outage.objects.filter(replica=replica)
    deleted, _ = rows.delete()
    transaction.on_commit(fault_proxies_sync)
    return bool(deleted)


def outage_get(*, replica: int | None = None) -> Outage | None:
    """The stored fault for every replica, or ``replica``'s own: active or not (expired,
    or fail-next used up).
    """
    return Outage.objects.filter(pk=Outage.pk_for(replica)).first()


def outage_list() -> list[Outage]:
    """Every stored fault: the one for all replicas first, then each replica's."""
    return list(Outage.objects.order_by("pk"))


def outage_is_active(outage: Outage, *, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    if outage.expires_at is not None and now >= outage.expires_at:
        return False
    return not (outage.mode == Mode.FAIL_NEXT and not outage.remaining)


def outage_active(*, replica: int | None = None) -> Outage | None:
    """The fault ``replica`` serves now: its own if active, else the one for all replicas
    (``None``: only the one for all), in one query.
    """
    keys = {Outage.SINGLETON, Outage.pk_for(replica)}
    stored = sorted(Outage.objects.filter(pk__in=keys), key=lambda o: o.pk, reverse=True)
    return next((outage for outage in stored if outage_is_active(outage)), None)


def outage_target(outage: Outage) -> str:
    return "all replicas" if outage.replica is None else f"replica {outage.replica}"


def outage_hits_request(outage: Outage, *, rng: random.Random | None = None) -> bool:
    """Does the fault hit this request? Counts the hit in the database if it does.

    ``fail-next`` decrements atomically in the database, so N concurrent requests across
    processes fail exactly N times in all.
    """
    rows = Outage.objects.filter(pk=outage.pk)
    if outage.mode == Mode.FAIL_NEXT:
        return (
            rows.filter(remaining__gt=0).update(remaining=F("remaining") - 1, hits=F("hits") + 1)
            == 1
        )
    if outage.rate < 1.0 and (rng or random).random() >= outage.rate:
        return False
    rows.update(hits=F("hits") + 1)
    return True


def outage_describe(
    outage: Outage | None, *, now: datetime | None = None, targeted: bool = False
) -> str:
    """One line for ``simulate_outage status`` and the admin; ``targeted``: led by the
    replicas it targets (``All replicas: ...``), for when faults differ by replica.
    """
    if outage is None:
        return "No simulated outage: Users is healthy."
    if targeted:
        line = outage_describe(outage, now=now)
        return f"{outage_target(outage).capitalize()}: {line}"
    now = now or timezone.now()
    what = {
        Mode.ERROR: f"error {outage.status}",
        Mode.SLOW: f"slow, {outage.delay:g} s delay",
        Mode.FAIL_NEXT: f"fail-next, {outage.remaining} more request(s) fail with {outage.status}",
        Mode.DRIP: f"drip, a few bytes every {outage.delay:g} s",
        Mode.DOWN: "down, connections refused",
        Mode.RESET: (
            f"reset after {outage.size} response byte(s)"
            if outage.size
            else "reset once the request has reached Users"
        ),
        Mode.HANG: "hang, requests read and never answered",
        Mode.TRUNCATE: f"truncate, responses cut after {outage.size} byte(s)",
        Mode.SLOW_BYTES: f"slow-bytes, responses sent at {outage.size} byte(s)/s",
    }[Mode(outage.mode)]
    if outage.retry_after is not None and outage.mode in (Mode.ERROR, Mode.FAIL_NEXT):
        what += f", Retry-After {outage.retry_after} s"
    if outage.rate < 1.0 and outage.mode != Mode.FAIL_NEXT:
        what += f", hitting {outage.rate:.0%} of requests"
    state = "active" if outage_is_active(outage, now=now) else "ended"
    if outage.expires_at is None:
        left = "until cleared"
    elif outage.expires_at > now:
        left = f"{(outage.expires_at - now).total_seconds():.1f} s left"
    else:
        left = "expired"
    if outage.mode == Mode.DOWN:
        counted = "refused connections are not counted"  # the kernel refuses them, not us
    else:
        counted = f"{outage.hits} request(s) hit"
    where = " (through the fault proxy)" if outage.mode in TRANSPORT_MODES else ""
    return f"Simulated outage {state}: {what}{where}; {left}; {counted}."
