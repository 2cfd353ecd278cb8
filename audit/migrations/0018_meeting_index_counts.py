"""A meeting's page counts Connvo calls (issue #22): its covering index also holds `calls` and
`repeats`, and a small partial index finds the meeting's sealed spans and counted records, so the
page still reads a busy meeting's history from indexes alone."""

from importlib import import_module

from django.db import migrations, models

# CREATE and DROP INDEX CONCURRENTLY on PostgreSQL, as when the covering index was made.
_concurrently = import_module("audit.migrations.0014_meeting_covering_index")
AddIndexWhileWriting = _concurrently.AddIndexWhileWriting
RemoveIndexWhileWriting = _concurrently.RemoveIndexWhileWriting


class Migration(migrations.Migration):
    # CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("audit", "0017_refusals_repeat_kind"),
    ]

    operations = [
        # The new index first, so that a meeting's pages always have one.
        AddIndexWhileWriting(
            model_name="auditentry",
            index=models.Index(
                fields=["meeting_id", "-at", "-id"],
                include=[
                    "action",
                    "via",
                    "outcome",
                    "actor_username",
                    "deployment",
                    "calls",
                    "repeats",
                ],
                name="audit_by_meeting_counts",
            ),
        ),
        RemoveIndexWhileWriting(model_name="auditentry", name="audit_by_meeting_covering"),
        AddIndexWhileWriting(
            model_name="auditentry",
            index=models.Index(
                condition=models.Q(tally__isnull=False),
                fields=["meeting_id"],
                name="audit_records_by_meeting",
            ),
        ),
    ]
