"""The Users service's data, and the simulated fault it can be told to serve."""

from __future__ import annotations

from django.db import models


class User(models.Model):
    """A shop user as the Users API serves it (not a login account: that is contrib.auth)."""

    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=32)

    class Meta:
        ordering = ["id"]
        # Not "user": the admin lists contrib.auth's login accounts as "Users" already.
        verbose_name = "shop user"

    def __str__(self) -> str:
        return f"{self.name} ({self.pk})"


class Outage(models.Model):
    """A simulated fault, in the database so that the command and every server process
    agree on it; read on each Users API request, and by the fault proxy (``manage.py
    fault_proxy``) on each request it forwards. The fault for every replica is row
    ``pk=1``; replica N's own fault, if any, is row ``pk=1+N`` (``pk_for``): fixed keys, so
    no sequence is involved and one row per target is guaranteed.
    """

    class Mode(models.TextChoices):
        # HTTP-level: served by Users itself (users.middleware)
        ERROR = "error", "error"
        SLOW = "slow", "slow"
        FAIL_NEXT = "fail-next", "fail-next"
        DRIP = "drip", "drip"
        # Transport-level: served by the fault proxy in front of Users (users.fault_proxy)
        DOWN = "down", "down"
        RESET = "reset", "reset"
        HANG = "hang", "hang"
        TRUNCATE = "truncate", "truncate"
        SLOW_BYTES = "slow-bytes", "slow-bytes"

    SINGLETON = 1  # the fault for every replica

    replica = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="the one Users replica it targets; empty: all"
    )

    mode = models.CharField(max_length=16, choices=Mode.choices)
    status = models.PositiveSmallIntegerField(default=502, help_text="error, fail-next")
    retry_after = models.PositiveIntegerField(null=True, blank=True, help_text="seconds")
    rate = models.FloatField(default=1.0, help_text="fraction of requests hit, 0..1")
    delay = models.FloatField(default=0.0, help_text="slow: delay; drip: interval (seconds)")
    remaining = models.PositiveIntegerField(null=True, blank=True, help_text="fail-next")
    size = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="reset: after these response bytes; truncate: bytes; slow-bytes: bytes/s",
    )
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "simulated outage"

    def __str__(self) -> str:
        return f"simulated {self.mode}"

    @classmethod
    def pk_for(cls, replica: int | None) -> int:
        """The row of the fault for ``replica`` (``None``: for every replica)."""
        return cls.SINGLETON if replica is None else cls.SINGLETON + replica


class FaultProxyControl(models.Model):
    """A running fault proxy's control address. ``simulate_outage`` (and the page) tell each
    one of a new fault and wait for its answer, so ``down`` and its end are in force before
    the command returns (``users.fault_proxy.fault_proxies_sync``).
    """

    address = models.CharField(max_length=300, unique=True, help_text="host:port")
    token = models.CharField(max_length=64, help_text="what the proxy expects: proves it is it")
    registered_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"fault proxy control at {self.address}"
