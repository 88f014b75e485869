"""Created orders' ids start at 8: ids 1..7 are the tutorial's orders (``orders/data.py``).

Moves the id sequence to 7 on each supported database: SQLite's AUTOINCREMENT reads its
next id from ``sqlite_sequence``, PostgreSQL's identity column from its sequence. A real
sequence, not an offset added in code: the id the database hands out is the id the API
shows, in the admin too. The check constraint (0001) makes a collision impossible rather
than unlikely: should the sequence ever go back (``manage.py flush``, a restore, SQLite
rebuilding the empty table in a future migration), an insert fails loudly instead of
serving a second order 7; running ``reserve`` again fixes it.
"""

from django.db import migrations

SEED_MAX_ID = 7  # frozen here: orders.data.SEED_MAX_ID when this was written


def reserve(apps, schema_editor):
    conn = schema_editor.connection
    table = "orders_order"  # the model's table, 0001 created it
    with conn.cursor() as cursor:
        if conn.vendor == "sqlite":
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) "
                "SELECT %s, MAX(%s, COALESCE(MAX(id), 0)) FROM orders_order",
                [table, SEED_MAX_ID],
            )
        elif conn.vendor == "postgresql":
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST(%s, MAX(id))) "
                "FROM orders_order",
                [table, SEED_MAX_ID],
            )
        else:
            raise NotImplementedError(f"reserve order ids 1..{SEED_MAX_ID} on {conn.vendor}")


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [migrations.RunPython(reserve, migrations.RunPython.noop)]
