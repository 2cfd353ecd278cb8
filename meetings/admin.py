from django.contrib import admin

from audit.services import Origin

from . import connect
from .models import StaffToken


@admin.register(StaffToken)
class StaffTokenAdmin(admin.ModelAdmin):
    """Shows which tokens exist; never the token itself (only its last four characters). Deleting
    one forgets it as the agent's own Remove or Disconnect would (`connect.forget_every`): a
    connected session is ended at WorkOS, and the audit log records it, as done by the
    administrator."""

    list_display = ["user", "deployment", "last4", "subject", "expires_at", "updated_at"]
    list_filter = ["deployment"]
    search_fields = ["user__username", "subject"]
    fields = ["user", "deployment", "last4", "subject", "expires_at", "created_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: StaffToken) -> None:
        self.delete_queryset(request, StaffToken.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset) -> None:
        connect.forget_every(
            queryset,
            origin=Origin.from_request(request),
            detail=lambda stored: (
                f"{stored.user.get_username()}'s credential, removed in the admin"
            ),
        )
