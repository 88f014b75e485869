"""Delete expired ``Idempotency-Key`` records, so the table holds only live keys.

Each request that claims a new key already deletes a few expired records; this command
deletes all of them, for an operator to schedule (cron, a Kubernetes CronJob) where few
new keys arrive. Safe to run at any time, from any host, beside the servers: it deletes
only records past ``expires_at``, which no request would replay any more.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from orders.idempotency import idempotency_purge_expired
from orders.models import IdempotencyRecord


def _limit(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r}: at least 1")
    return value


class Command(BaseCommand):
    help = "Delete expired Idempotency-Key records of POST /orders/."

    # Bad arguments (--limit 0, --limit x) are argparse errors: CommandError when called
    # with call_command, a usage message and exit status 2 on the command line.

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit",
            type=_limit,
            metavar="N",
            help="delete at most N records (default: every expired one)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="count the expired records, delete nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["dry_run"]:
            expired = IdempotencyRecord.objects.filter(expires_at__lte=now).count()
            self._say(options, f"{expired} expired Idempotency-Key record(s); none deleted.")
            return
        deleted = idempotency_purge_expired(now=now, limit=options["limit"])
        left = IdempotencyRecord.objects.filter(expires_at__lte=now).count()
        message = f"Deleted {deleted} expired Idempotency-Key record(s)"
        self._say(options, self.style.SUCCESS(f"{message}; {left} expired left."))

    def _say(self, options: dict[str, Any], message: str) -> None:
        """Respects ``--verbosity 0`` (cron mails only errors)."""
        if options["verbosity"] > 0:
            self.stdout.write(message)
