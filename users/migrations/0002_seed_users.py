"""Seed the tutorial's users, so a fresh database answers GET /users/1 as the tutorial does."""

from django.db import migrations

from users.migrations._seed import TUTORIAL_USERS, seed_tutorial_users


def seed(apps, schema_editor):
    seed_tutorial_users(apps.get_model("users", "User"), schema_editor)


def unseed(apps, schema_editor):
    ids = [pk for pk, _, _ in TUTORIAL_USERS]
    apps.get_model("users", "User").objects.filter(pk__in=ids).delete()


class Migration(migrations.Migration):
    dependencies = [("users", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
