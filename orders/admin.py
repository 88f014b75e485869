"""Admin for the Orders service: created orders, and the idempotency keys behind them.

Both read-only: an order is created through the API (which checks the user with Users),
and a key's record is the service's memory of a response, not something to edit.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from orders.models import IdempotencyRecord, Order


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(_ReadOnly):
    list_display = ("id", "user_id", "product", "created_at")
    list_filter = ("created_at",)
    search_fields = ("product", "user_id")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(_ReadOnly):
    list_display = ("key", "state", "response_status", "created_at", "locked_at", "expires_at")
    list_filter = ("state",)
    search_fields = ("key",)
