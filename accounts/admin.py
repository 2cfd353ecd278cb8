from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from audit.services import Origin, acting

from . import access
from .models import ProviderIdentity

# Every change an administrator makes here to who may do what is one chained "Access changed"
# entry (accounts/access.py): the account's access read before the change is saved and after
# its groups and permissions are (`save_related`), within the admin's one transaction.
_BEFORE = "_connvo_access_before"


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(admin.ModelAdmin):
    """Administrators may link an existing console account to a provider identity (the subject
    is in the log line of the refused sign-in), or unlink one."""

    list_display = ["user", "subject", "issuer", "linked_at"]
    search_fields = ["user__username", "subject"]
    raw_id_fields = ["user"]

    def save_model(self, request, obj: ProviderIdentity, form, change) -> None:
        was = ProviderIdentity.objects.filter(pk=obj.pk).values_list("user_id", flat=True).first()
        accounts = {pk for pk in (was, obj.user_id) if pk is not None}
        before = {pk: access.access_of(pk) for pk in accounts}
        super().save_model(request, obj, form, change)
        _record_each(request, before)

    def delete_model(self, request, obj: ProviderIdentity) -> None:
        before = {obj.user_id: access.access_of(obj.user_id)}
        super().delete_model(request, obj)
        _record_each(request, before)

    def delete_queryset(self, request, queryset) -> None:
        for link in queryset:
            self.delete_model(request, link)


def _record_each(request, before: dict[int, access.Access | None]) -> None:
    for pk, was in before.items():
        now = access.access_of(pk)
        user = get_user_model().objects.filter(pk=pk).first()
        if user is not None:
            access.record_access_change(
                origin=Origin.from_request(request),
                username=user.get_username(),
                before=was,
                after=now,
            )


User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class ConsoleUserAdmin(UserAdmin):
    """Django's user admin, with every change to an account's access recorded in the audit log
    (above). An account deleted here forgets its Connvo credentials as it goes, as the Tokens
    page's Remove would, recorded as done by the administrator (meetings/signals.py, told who
    is acting). Deactivating an account, the documented way to end someone's access, keeps
    them."""

    def save_model(self, request, obj, form, change) -> None:
        setattr(request, _BEFORE, access.access_of(obj.pk) if change else None)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        access.record_access_change(
            origin=Origin.from_request(request),
            username=form.instance.get_username(),
            before=getattr(request, _BEFORE, None),
            after=access.access_of(form.instance.pk),
        )

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = self.get_object(request, id)
            access.record_password_set(
                origin=Origin.from_request(request), username=user.get_username()
            )
        return response

    def delete_model(self, request, obj) -> None:
        self.delete_queryset(request, get_user_model().objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset) -> None:
        origin = Origin.from_request(request)
        for user in queryset:
            pk, before = user.pk, access.access_of(user.pk)
            # Its Connvo credentials are forgotten as it goes, in the administrator's name
            # (meetings/signals.py): each session ended at WorkOS before anything is recorded.
            with acting(origin):
                user.delete()
            # Recorded after: the record takes the audit chain's lock to the end of the admin's
            # transaction, and WorkOS is not waited for holding it.
            access.record_access_change(
                origin=origin.outliving(pk),
                username=user.get_username(),
                before=before,
                after=None,
            )


@admin.register(Group)
class ConsoleGroupAdmin(GroupAdmin):
    """Django's group admin, with a change to a group's permissions (every member's access)
    recorded in the audit log."""

    def save_model(self, request, obj, form, change) -> None:
        setattr(request, _BEFORE, access.group_permissions(obj.pk))
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        access.record_group_permissions(
            origin=Origin.from_request(request),
            group=form.instance.name,
            before=getattr(request, _BEFORE, frozenset()),
            after=access.group_permissions(form.instance.pk),
        )

    def delete_model(self, request, obj: Group) -> None:
        members = sorted(obj.user_set.values_list("username", flat=True))
        access.record_group_deleted(
            origin=Origin.from_request(request), group=obj.name, members=members
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for group in queryset:
            self.delete_model(request, group)
