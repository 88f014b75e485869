"""Admin for the Users service: its users, and the simulated outage (see it, end it).

Faults are started with ``manage.py simulate_outage`` (which validates them); the admin
shows the active one read-only and ends it, so nobody hand-edits an invalid fault.
"""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from users.fault_proxy import fault_proxies_sync
from users.models import Outage, User
from users.outages import outage_describe, outage_is_active, outage_target


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "phone")
    search_fields = ("name", "phone")


@admin.register(Outage)
class OutageAdmin(admin.ModelAdmin):
    list_display = ("mode", "target", "summary", "active", "hits", "started_at", "expires_at")
    readonly_fields = [f.name for f in Outage._meta.fields]
    actions = ["end_outage"]

    @admin.display(description="Users replicas")
    def target(self, outage: Outage) -> str:
        return outage_target(outage)

    @admin.display(description="what it does")
    def summary(self, outage: Outage) -> str:
        return outage_describe(outage)

    @admin.display(boolean=True)
    def active(self, outage: Outage) -> bool:
        return outage_is_active(outage)

    @admin.action(description="End the simulated outage")
    def end_outage(self, request: HttpRequest, queryset: object) -> None:
        ended = queryset.delete()[0]  # type: ignore[attr-defined]
        transaction.on_commit(fault_proxies_sync)
        self.message_user(request, f"Ended {ended} simulated outage(s).")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # start faults with manage.py simulate_outage: it validates them

    def has_change_permission(self, request: HttpRequest, obj: Outage | None = None) -> bool:
        return False
