"""The Auditor group reads and exports the audit log."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

AUDITOR_PERMISSIONS = ["view_auditentry", "export_auditentry"]


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure ours exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    auditor, _ = Group.objects.get_or_create(name="Auditor")
    auditor.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="audit", codename__in=AUDITOR_PERMISSIONS
        )
    )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for auditor in Group.objects.filter(name="Auditor"):
        auditor.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="audit", codename__in=AUDITOR_PERMISSIONS
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_append_only_trigger"),
        ("meetings", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
