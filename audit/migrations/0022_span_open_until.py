"""A span stores when its page counts as closed (`open_until`) instead of how many seconds after
its last call (`quiet_after`): a pushed page, which asks nothing, holds its spans open every
minute, so "until when is it open" grew apart from the last call and was answered three ways.
Spans are open pages (a few thousand rows at most): each one's deadline is carried over as is."""

from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone


def deadline_from_quiet_after(apps, schema_editor):
    Span = apps.get_model("audit", "Span")
    for span in Span.objects.only("id", "last_at", "quiet_after").iterator():
        span.open_until = span.last_at + timedelta(seconds=span.quiet_after)
        span.save(update_fields=["open_until"])


def quiet_after_from_deadline(apps, schema_editor):
    Span = apps.get_model("audit", "Span")
    for span in Span.objects.only("id", "last_at", "open_until").iterator():
        seconds = (span.open_until - span.last_at).total_seconds()
        span.quiet_after = max(0, int(-(-seconds // 1)))  # rounded up: never sooner
        span.save(update_fields=["quiet_after"])


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0021_summary_counts_bigint"),
    ]

    operations = [
        migrations.AddField(
            model_name="span",
            name="open_until",
            field=models.DateTimeField(default=timezone.now),
        ),
        migrations.RunPython(deadline_from_quiet_after, quiet_after_from_deadline),
        migrations.RemoveField(
            model_name="span",
            name="quiet_after",
        ),
    ]
