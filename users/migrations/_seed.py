"""The tutorial's users; shared by the data migration and tests that flush the database."""

from __future__ import annotations

from typing import Any

from django.core.management.color import no_style
from django.db import connection

TUTORIAL_USERS = [
    (1, "Aaron Apple", "99992222"),
    (2, "Bobby Brown", "99993333"),
]


def seed_tutorial_users(user_model: Any = None, schema_editor: Any = None) -> None:
    """Upsert the tutorial's users, then move PostgreSQL's id sequence past them."""
    if user_model is None:
        from users.models import User as user_model
    for pk, name, phone in TUTORIAL_USERS:
        user_model.objects.update_or_create(pk=pk, defaults={"name": name, "phone": phone})
    conn = schema_editor.connection if schema_editor else connection
    with conn.cursor() as cursor:
        for sql in conn.ops.sequence_reset_sql(no_style(), [user_model]):
            cursor.execute(sql)
