"""Orders created through ``POST /orders/`` and the ``Idempotency-Key`` records behind them.

Both live in the database every Orders process shares, so an accepted order survives a
restart and a key is one key across workers and instances. The tutorial's seven orders
are not rows: they stay the module-level list in ``orders/data.py``; created ids start
after them (migration 0002 reserves 1..7, a check constraint refuses a collision).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from orders.data import SEED_MAX_ID


class Order(models.Model):
    """An order created through the API. ``user_id`` names a Users record (another
    service, maybe another database): an integer, not a foreign key."""

    user_id = models.PositiveIntegerField(db_index=True)
    product = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(id__gt=SEED_MAX_ID), name="order_id_after_tutorial_seed"
            )
        ]

    def __str__(self) -> str:
        return f"order {self.pk}: {self.product} for user {self.user_id}"

    def as_json(self) -> dict[str, object]:
        """The tutorial's shape: ``{"id": ..., "user": ..., "product": ...}``."""
        return {"id": self.pk, "user": self.user_id, "product": self.product}


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key``: claimed (in progress) before the work, completed with the
    response in the same transaction as the order. The unique key decides races between
    processes; ``lock_token`` says which request holds an in-progress claim, so a request
    whose stale claim was reclaimed cannot complete it afterwards.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "in progress"
        COMPLETED = "completed", "completed"

    key = models.CharField(max_length=255, unique=True)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical body")
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    lock_token = models.UUIDField(null=True, blank=True, help_text="in progress: who holds it")
    locked_at = models.DateTimeField(null=True, blank=True, help_text="in progress: since when")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"Idempotency-Key {self.key!r} ({self.state})"
