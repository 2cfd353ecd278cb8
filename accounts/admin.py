from django.contrib import admin

from .models import ProviderIdentity


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(admin.ModelAdmin):
    """Administrators may link an existing console account to a provider identity (the subject
    is in the log line of the refused sign-in), or unlink one."""

    list_display = ["user", "subject", "issuer", "linked_at"]
    search_fields = ["user__username", "subject"]
    raw_id_fields = ["user"]
