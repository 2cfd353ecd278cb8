"""On PostgreSQL, the database itself refuses to change or delete audit entries.

Two exceptions: deleting a console account sets `actor_id` to NULL (nothing else may change, and
the MAC does not cover it), and `manage.py audit_purge` may delete inside a transaction that set
`audit.allow_purge` to 'on' (see audit/chain.py). Anyone who can run SQL as the table's owner can
still get round this; the hash chain is what shows that they did."""

from django.db import migrations

CREATE = """
CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF coalesce(current_setting('audit.allow_purge', true), '') = 'on' THEN
            RETURN OLD;
        END IF;
    ELSIF NEW.actor_id IS NULL
          AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % of entry % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_entry_append_only
    BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_chain_and_filters")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
