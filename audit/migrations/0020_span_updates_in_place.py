"""#22: a refresh updates its span's row in place. Without an index on the columns a call changes
(`last_at`), and with room left on each page (fillfactor), PostgreSQL rewrites the row within its
page (a HOT update) instead of adding a new entry to every index of the table per refresh."""

from django.db import migrations

# Half of each page left free for the new versions of its rows: the tables hold one row per open
# page and meeting (a few thousand at most), so the space costs nothing.
FILLFACTOR = 50


def roomy(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in ("audit_span", "audit_spancount"):
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def packed(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in ("audit_span", "audit_spancount"):
            schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0019_chain_storage"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="span",
            name="span_by_last_call",
        ),
        migrations.RunPython(roomy, packed),
    ]
