"""Make the running Users service misbehave, from another process, to watch Orders cope.

The fault is written to the database; every Users server process applies it from its
next request on. Faults given ``--for`` end by themselves. The transport faults (down,
reset, hang, truncate, slow-bytes) are served by the fault proxy in front of Users
(``manage.py fault_proxy``, started by ``make run``), which reads the same row.
``--replica N`` (before the mode) faults, clears or shows one Users replica only.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from users.outages import (
    FIELD_PARSERS,
    fault_spec_parse,
    outage_active,
    outage_clear,
    outage_describe,
    outage_get,
    outage_list,
    outage_start,
    parse_replica,
)

#: The flag naming a ``FaultSpec`` field in messages, where it is not ``--field-name``.
FLAGS = {"count": "N", "duration": "--for"}
SIZE_FLAGS = {"reset": "--after-bytes", "truncate": "--bytes", "slow-bytes": "--bytes-per-second"}


class Command(BaseCommand):
    help = (
        "Simulate a Users outage: error, slow, fail-next, drip (Users answers badly); down, "
        "reset, hang, truncate, slow-bytes (the fault proxy breaks the connection); "
        "or show status, clear."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--replica",
            metavar="N",
            help=(
                "before MODE: fault (or clear, or show) only Users replica N; a replica obeys"
                " its own fault, else the one for all. Default: every replica (a fault for"
                " all replaces every fault)"
            ),
        )
        modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE")

        def fault(name: str, help_text: str) -> argparse.ArgumentParser:
            sub = modes.add_parser(name, help=help_text)
            sub.add_argument(
                "--for",
                dest="duration",
                metavar="SECONDS",
                help="end the fault by itself after this long (at most a day)",
            )
            return sub

        error = fault("error", "answer every (or --rate of) Users request with an error")
        error.add_argument("--status", default="502", help="HTTP status (default 502)")
        error.add_argument(
            "--retry-after",
            metavar="SECONDS",
            help="send a Retry-After header with the error",
        )
        error.add_argument("--rate", default="1", help="fraction of requests hit")

        slow = fault("slow", "delay every (or --rate of) Users response")
        slow.add_argument("--delay", required=True, metavar="SECONDS", help="at most an hour")
        slow.add_argument("--rate", default="1", help="fraction of requests hit")

        fail_next = fault("fail-next", "fail exactly the next N Users requests, then heal")
        fail_next.add_argument("count", metavar="N")
        fail_next.add_argument("--status", default="502", help="HTTP status (default 502)")
        fail_next.add_argument("--retry-after", metavar="SECONDS")

        drip = fault("drip", "answer 200 but send the body a few bytes at a time")
        drip.add_argument(
            "--interval",
            dest="delay",
            required=True,
            metavar="SECONDS",
            help="pause between pieces of the body (at most an hour)",
        )
        drip.add_argument("--rate", default="1", help="fraction of requests hit")

        # Transport faults, served by the fault proxy (users.fault_proxy).
        fault("down", "refuse connections, as when the Users process is gone (fault proxy)")
        reset = fault("reset", "reset the connection once the request reached Users (fault proxy)")
        reset.add_argument(
            "--after-bytes",
            dest="size",
            default="0",
            metavar="N",
            help="let N response bytes through first: a reset mid-response (default 0)",
        )
        reset.add_argument("--rate", default="1", help="fraction of requests hit")
        hang = fault("hang", "read the request, never answer (fault proxy)")
        hang.add_argument("--rate", default="1", help="fraction of requests hit")
        truncate = fault("truncate", "cut the response after N bytes, close (fault proxy)")
        truncate.add_argument(
            "--bytes", dest="size", required=True, metavar="N", help="bytes let through"
        )
        truncate.add_argument("--rate", default="1", help="fraction of requests hit")
        slow_bytes = fault("slow-bytes", "send every response byte at a slow rate (fault proxy)")
        slow_bytes.add_argument(
            "--bytes-per-second",
            dest="size",
            required=True,
            metavar="N",
            help="the rate, status line and headers included",
        )
        slow_bytes.add_argument("--rate", default="1", help="fraction of requests hit")

        modes.add_parser("status", help="show each fault and its target, time left, requests hit")
        modes.add_parser("clear", help="end every fault now (--replica N: only N's own)")

    def handle(self, *args: Any, **options: Any) -> None:
        mode = options["mode"]
        replica = self._replica(options["replica"])
        if mode == "status":
            self.stdout.write(self._status(replica))
            return
        if mode == "clear":
            had = outage_clear(replica=replica)
            self._say(options, self.style.SUCCESS("Cleared." if had else "Nothing to clear."))
            return
        if not settings.OUTAGE_SIMULATION:
            raise CommandError(
                "Outage simulation is off here; "
                "it is on with DJANGO_DEBUG=1 or OUTAGE_SIMULATION=1."
            )
        # Numbers arrive as text and are parsed here, as the page parses them: a bad one is
        # a one-line CommandError (an argparse type error would print the usage as well).
        flags = {**FLAGS, "size": SIZE_FLAGS.get(mode, "--bytes")}
        if mode == "drip":
            flags["delay"] = "--interval"
        spec, problems = fault_spec_parse(
            mode=mode, text={name: options.get(name) for name in FIELD_PARSERS}, flags=flags
        )
        if spec is None:
            raise CommandError("; ".join(problems))
        try:
            outage = outage_start(spec=spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self._say(options, self.style.SUCCESS(outage_describe(outage, targeted=bool(replica))))

    @staticmethod
    def _replica(raw: str | None) -> int | None:
        try:
            return parse_replica(raw)
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    @staticmethod
    def _status(replica: int | None) -> str:
        """Today's one line while one fault targets all replicas; else one line per fault
        led by its target, or with ``--replica N`` the fault N obeys.
        """
        if replica is not None:
            outage = outage_active(replica=replica) or outage_get(replica=replica)
            return f"Replica {replica}: {outage_describe(outage)}"
        faults = outage_list()
        if all(outage.replica is None for outage in faults):
            return outage_describe(faults[0] if faults else None)
        return "\n".join(outage_describe(outage, targeted=True) for outage in faults)

    def _say(self, options: dict[str, Any], message: str) -> None:
        """Confirmations respect ``--verbosity 0``; ``status`` always answers."""
        if options["verbosity"] > 0:
            self.stdout.write(message)
