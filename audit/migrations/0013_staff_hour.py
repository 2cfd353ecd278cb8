from datetime import UTC

from django.db import migrations, models
from django.db.models import Count, Q
from django.db.models.functions import TruncHour


def hours_of_the_counted_entries(apps, schema_editor):
    """Count every entry the other summaries hold (up to the rollup's progress) into staff hours;
    the rollup adds to all of them from then on (each starts closed: the first batch that touches
    it counts its meetings again from the entries). Holds the rollup's progress row so that no
    count runs in between."""
    AuditEntry = apps.get_model("audit", "AuditEntry")
    StaffHour = apps.get_model("audit", "StaffHour")
    RollupProgress = apps.get_model("audit", "RollupProgress")
    progress = RollupProgress.objects.select_for_update().filter(pk=1).first()
    if progress is None or not progress.last_entry_id:
        return
    rows = (
        AuditEntry.objects.filter(id__lte=progress.last_entry_id, action="lookup")
        .exclude(via="refresh")
        .order_by()
        .values("actor_username", hour=TruncHour("at", tzinfo=UTC))
        .annotate(
            lookups=Count("id"),
            not_visible=Count("id", filter=Q(outcome="not_visible")),
            meetings=Count("meeting_id", distinct=True, filter=~Q(meeting_id="")),
        )
    )
    batch = []
    for row in rows.iterator(chunk_size=5000):
        batch.append(StaffHour(**row))
        if len(batch) == 5000:
            StaffHour.objects.bulk_create(batch)
            batch = []
    StaffHour.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0012_activity_day"),
    ]

    operations = [
        migrations.CreateModel(
            name="StaffHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField()),
                ("actor_username", models.CharField(blank=True, max_length=150)),
                ("lookups", models.PositiveIntegerField(default=0)),
                ("not_visible", models.PositiveIntegerField(default=0)),
                ("meetings", models.PositiveIntegerField(default=0)),
                ("meeting_ids", models.JSONField(blank=True, null=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("hour", "actor_username"), name="staff_hour_unique"
                    )
                ],
                "indexes": [
                    models.Index(
                        condition=models.Q(("meeting_ids__isnull", False)),
                        fields=["hour"],
                        name="staff_hour_open",
                    )
                ],
            },
        ),
        migrations.RunPython(hours_of_the_counted_entries, migrations.RunPython.noop),
    ]
