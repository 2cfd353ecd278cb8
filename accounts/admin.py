from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from audit.services import Origin
from meetings import connect

from .models import ProviderIdentity


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(admin.ModelAdmin):
    """Administrators may link an existing console account to a provider identity (the subject
    is in the log line of the refused sign-in), or unlink one."""

    list_display = ["user", "subject", "issuer", "linked_at"]
    search_fields = ["user__username", "subject"]
    raw_id_fields = ["user"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class ConsoleUserAdmin(UserAdmin):
    """Django's user admin, except that deleting an account first forgets its Connvo
    credentials as the Tokens page's Remove would (`connect.forget_all`: a connected session
    ended at WorkOS, each recorded as done by the administrator). Deactivating an account, the
    documented way to end someone's access, keeps them."""

    def delete_model(self, request, obj) -> None:
        connect.forget_all(
            user=obj,
            origin=Origin.from_request(request),
            detail=f"{obj.get_username()}'s credential, forgotten as the account was deleted "
            "in the admin",
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for user in queryset:
            self.delete_model(request, user)
