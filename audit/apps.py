from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from . import signals  # noqa: F401 (connects the sign-in receivers)

        post_migrate.connect(_ensure_partitions, sender=self, dispatch_uid="audit_partitions")


def _ensure_partitions(sender, **kwargs) -> None:
    """After `migrate`: this month's partition of the audit log and the next few (nothing on
    SQLite, nor on PostgreSQL migrated back to before the partitioning)."""
    from .partitions import ensure_partitions

    ensure_partitions()
