"""Chain heads remember the key the chain is written under; checkpoints are kept for the audit
pages; two new actions (a key rotation, an auditor viewing the log)."""

import django.utils.timezone
from django.db import migrations, models
from django.utils import timezone

from audit.chain import CHAINED_FIELDS, GENESIS, compute_mac, current_key_id, keys


def adopt_head(apps, schema_editor):
    """The chain so far is under the key configured now. A chain an earlier `audit_purge` already
    trimmed gets the purge entry that `audit_verify` now asks for, vouching for the start the
    head remembers (the only record of that purge)."""
    ChainHead = apps.get_model("audit", "ChainHead")
    AuditEntry = apps.get_model("audit", "AuditEntry")
    head = ChainHead.objects.filter(pk=1).first()
    if head is None:
        return
    head.key_id = current_key_id()
    if head.purged_through_id is not None:
        entry = AuditEntry(
            at=timezone.now(),
            actor_username="",
            action="audit_purged",
            user_agent="manage.py migrate",
            detail=(
                f"Vouching, at the upgrade that chained purges, for the entries an earlier "
                f"audit_purge deleted: count=0 last={head.purged_through_id} "
                f"last_mac={head.purged_through_mac}"
            ),
        )
        entry.mac = compute_mac(
            {name: getattr(entry, name) for name in CHAINED_FIELDS},
            prev_mac=head.last_mac or GENESIS,
            key=keys()[head.key_id],
        )
        entry.save(force_insert=True)
        head.last_entry_id, head.last_mac = entry.pk, entry.mac
    head.save()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0007_activity_summary"),
    ]

    operations = [
        migrations.AddField(
            model_name="chainhead",
            name="key_id",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("lookup", "Meeting lookup"),
                    ("token_saved", "Token saved"),
                    ("token_replaced", "Token replaced"),
                    ("token_removed", "Token removed"),
                    ("sign_in", "Signed in"),
                    ("sign_out", "Signed out"),
                    ("sign_in_failed", "Sign-in failed"),
                    ("permission_denied", "Permission denied"),
                    ("audit_exported", "Audit log exported"),
                    ("audit_purged", "Old audit entries deleted"),
                    ("audit_key_rotated", "Audit chain key rotated"),
                    ("audit_viewed", "Audit log viewed"),
                    ("connvo_connected", "Connvo account connected"),
                    ("connvo_disconnected", "Connvo account disconnected"),
                    ("connvo_connect_failed", "Connvo account connection failed"),
                    ("token_refreshed", "Connvo access token refreshed"),
                    ("token_refresh_failed", "Connvo access token refresh failed"),
                ],
                max_length=32,
            ),
        ),
        migrations.CreateModel(
            name="ChainCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_entry_id", models.BigIntegerField(blank=True, null=True)),
                ("last_mac", models.CharField(max_length=64)),
                ("entries", models.BigIntegerField()),
                ("key_id", models.CharField(max_length=16)),
            ],
            options={
                "ordering": ["-at", "-id"],
                "indexes": [models.Index(fields=["-at", "-id"], name="checkpoint_newest_first")],
            },
        ),
        migrations.RunPython(adopt_head, migrations.RunPython.noop),
    ]
