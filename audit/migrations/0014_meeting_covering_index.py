from django.db import migrations, models


class AddIndexWhileWriting(migrations.AddIndex):
    """On PostgreSQL, CREATE INDEX CONCURRENTLY: lookups keep writing their audit entries while
    the index is built (about 20 s at ten million entries); elsewhere a plain CREATE INDEX."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)


class RemoveIndexWhileWriting(migrations.RemoveIndex):
    """On PostgreSQL, DROP INDEX CONCURRENTLY; elsewhere a plain DROP INDEX."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, index, concurrently=True)
        else:
            schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    # CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("audit", "0013_staff_hour"),
    ]

    operations = [
        # The new index first, so that a meeting's pages always have one.
        AddIndexWhileWriting(
            model_name="auditentry",
            index=models.Index(
                fields=["meeting_id", "-at", "-id"],
                include=["action", "via", "outcome", "actor_username", "deployment"],
                name="audit_by_meeting_covering",
            ),
        ),
        RemoveIndexWhileWriting(model_name="auditentry", name="audit_by_meeting"),
    ]
