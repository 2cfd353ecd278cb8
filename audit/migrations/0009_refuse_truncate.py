"""On PostgreSQL, the database also refuses TRUNCATE of the audit table (a row trigger does not
see it), unless the transaction set `audit.allow_purge` like `audit_purge` does: the test suite's
flush does (tests/conftest.py). Like the row trigger, this stops mistakes and casual tampering; the
hash chain and the witnessed checkpoints are what show that someone with the owner's rights got
round it."""

from django.db import migrations

CREATE = """
CREATE FUNCTION audit_entry_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('audit.allow_purge', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: TRUNCATE refused'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_entry_no_truncate
    BEFORE TRUNCATE ON audit_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_no_truncate();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_no_truncate();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_chain_keys_checkpoints_and_actions")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
