from django.contrib import admin

from .models import StaffToken


@admin.register(StaffToken)
class StaffTokenAdmin(admin.ModelAdmin):
    """Shows which tokens exist; never the token itself (only its last four characters)."""

    list_display = ["user", "deployment", "last4", "subject", "expires_at", "updated_at"]
    list_filter = ["deployment"]
    search_fields = ["user__username", "subject"]
    fields = ["user", "deployment", "last4", "subject", "expires_at", "created_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
