"""Serve the transport faults of ``simulate_outage`` from a TCP proxy in front of Users.

``make run`` starts it on the address Orders calls (:8202), forwarding to Users (:8200),
whose own port stays reachable directly. See ``users.fault_proxy`` for what each fault does.
With several Users replicas, each has its own proxy, told its number with ``--replica``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from users.fault_proxy import DatabaseFaults, FaultProxy
from users.outages import MAX_REPLICA, parse_int

logger = logging.getLogger("users.fault_proxy")


def _address(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _number(raw: str) -> int:
    """A whole number in ASCII digits (``int()`` alone takes '١٢')."""
    try:
        return parse_int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Command(BaseCommand):
    help = "A TCP proxy in front of Users that serves simulate_outage's transport faults."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", type=_address, default=("127.0.0.1", 8202))
        parser.add_argument("--upstream", type=_address, default=("127.0.0.1", 8200))
        parser.add_argument(
            "--replica",
            type=_number,
            default=1,
            metavar="N",
            help="the Users replica behind it: its faults, else those for all (default 1)",
        )
        parser.add_argument(
            "--max-connections",
            type=_number,
            default=256,
            help="client connections at once; more are reset (default 256)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max_connections"] < 1:
            raise CommandError("--max-connections must be at least 1")
        if not 1 <= options["replica"] <= MAX_REPLICA:
            raise CommandError(f"--replica must be 1..{MAX_REPLICA}; got {options['replica']}")
        proxy = FaultProxy(
            listen=options["listen"],
            upstream=options["upstream"],
            faults=DatabaseFaults(replica=options["replica"]),
            max_connections=options["max_connections"],
        )
        try:
            proxy.bind()
        except OSError as exc:
            host, port = options["listen"]
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        if not settings.OUTAGE_SIMULATION:
            logger.warning("outage simulation is off here: the fault proxy only forwards")
        asyncio.run(self._serve(proxy))

    @staticmethod
    async def _serve(proxy: FaultProxy) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, proxy.stop)
        await proxy.serve()
