from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: audit entries are written by the console, never edited."""

    list_display = ["at", "actor_username", "action", "via", "deployment", "meeting_id", "outcome"]
    list_filter = ["action", "via", "outcome", "deployment"]
    search_fields = ["actor_username", "meeting_id", "connvo_request_id"]
    date_hierarchy = "at"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
