"""Seed the tutorial's users, so a fresh database answers GET /users/1 as the tutorial does."""

from django.db import migrations

TUTORIAL_USERS = [
    (1, "Aaron Apple", "99992222"),
    (2, "Bobby Brown", "99993333"),
]


def seed(apps, schema_editor):
    User = apps.get_model("users", "User")
    for pk, name, phone in TUTORIAL_USERS:
        User.objects.update_or_create(pk=pk, defaults={"name": name, "phone": phone})
    # Explicit ids leave PostgreSQL's sequence at 1: move it past them (no-op on SQLite).
    connection = schema_editor.connection
    from django.core.management.color import no_style

    for sql in connection.ops.sequence_reset_sql(no_style(), [User]):
        schema_editor.execute(sql)


def unseed(apps, schema_editor):
    apps.get_model("users", "User").objects.filter(pk__in=[u[0] for u in TUTORIAL_USERS]).delete()


class Migration(migrations.Migration):
    dependencies = [("users", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
