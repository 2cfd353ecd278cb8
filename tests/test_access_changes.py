"""Changes to who may do what are in the audit chain (accounts/access.py, accounts/admin.py): an
administrator's, in the admin (groups, permissions, active, staff, superuser, a password set,
an account added or deleted, a group's permissions, a group deleted, an identity-provider link),
and the identity provider's groups claim at a sign-in. Each is one "Access changed" entry naming
the account and what changed; a save that changes no access writes none."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts import access
from accounts.models import ProviderIdentity
from audit.models import Action, AuditEntry

pytestmark = pytest.mark.django_db


def access_entries() -> list[tuple[str, str]]:
    return list(
        AuditEntry.objects.filter(action=Action.ACCESS_CHANGED)
        .order_by("pk")
        .values_list("actor_username", "detail")
    )


def change_form(user: User, **changes) -> dict:
    """What the admin's change form sends for `user` as it is, with `changes`."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "groups": [group.pk for group in user.groups.all()],
        "user_permissions": [permission.pk for permission in user.user_permissions.all()],
    }
    for flag in ("is_active", "is_staff", "is_superuser"):
        if getattr(user, flag):
            data[flag] = "on"
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def save(admin_client, user: User, **changes):
    response = admin_client.post(
        reverse("admin:auth_user_change", args=[user.pk]), change_form(user, **changes)
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def test_an_agent_made_an_auditor_in_the_admin_is_recorded_as_the_administrators_doing(
    admin_client, agent
):
    auditor_group = Group.objects.get_or_create(name="Auditor")[0]

    save(admin_client, agent, groups=[*agent.groups.values_list("pk", flat=True), auditor_group.pk])

    assert access_entries() == [("admin", "agent: added to Auditor")]
    assert call_command("audit_verify", stdout=io.StringIO()) is None


def test_every_kind_of_access_change_in_one_save_is_one_entry(admin_client, agent):
    permission = Permission.objects.get(codename="view_auditentry")

    save(
        admin_client,
        agent,
        is_active=None,
        is_staff="on",
        is_superuser="on",
        groups=[],
        user_permissions=[permission.pk],
    )

    ((actor, detail),) = access_entries()
    assert actor == "admin"
    assert detail == (
        "agent: deactivated; may use the admin site; made superuser; removed from Support; "
        "given audit.view_auditentry"
    )


def test_a_save_that_changes_no_access_writes_no_entry(admin_client, agent):
    save(admin_client, agent, first_name="Agnes", email="agnes@example.com")

    assert access_entries() == []
    assert User.objects.get(pk=agent.pk).first_name == "Agnes"


def test_a_password_set_in_the_admin_is_recorded(admin_client, agent):
    response = admin_client.post(
        reverse("admin:auth_user_password_change", args=[agent.pk]),
        {"password1": "a new Passphrase 91", "password2": "a new Passphrase 91"},
    )

    assert response.status_code == 302
    assert access_entries() == [("admin", "agent: password set in the admin")]


def test_a_password_refused_by_the_form_records_nothing(admin_client, agent):
    response = admin_client.post(
        reverse("admin:auth_user_password_change", args=[agent.pk]),
        {"password1": "a new Passphrase 91", "password2": "another"},
    )

    assert response.status_code == 200
    assert access_entries() == []


def test_an_account_added_and_deleted_in_the_admin_is_recorded(admin_client):
    response = admin_client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "password1": "a new Passphrase 91",
            "password2": "a new Passphrase 91",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    newbie = User.objects.get(username="newbie")

    admin_client.post(reverse("admin:auth_user_delete", args=[newbie.pk]), {"post": "yes"})

    assert access_entries() == [
        ("admin", "newbie: account created"),
        ("admin", "newbie: account deleted"),
    ]
    assert not User.objects.filter(username="newbie").exists()


def test_a_groups_permissions_changed_or_the_group_deleted_is_recorded(admin_client, agent):
    support = Group.objects.get(name="Support")
    before = list(support.permissions.values_list("pk", flat=True))
    extra = Permission.objects.get(codename="view_auditentry")

    response = admin_client.post(
        reverse("admin:auth_group_change", args=[support.pk]),
        {"name": "Support", "permissions": [*before, extra.pk]},
    )
    assert response.status_code == 302
    admin_client.post(reverse("admin:auth_group_delete", args=[support.pk]), {"post": "yes"})

    assert access_entries() == [
        ("admin", "group Support: given audit.view_auditentry"),
        ("admin", "group Support deleted; its members were agent"),
    ]


def test_an_identity_provider_link_made_or_removed_in_the_admin_is_recorded(admin_client, agent):
    response = admin_client.post(
        reverse("admin:accounts_provideridentity_add"),
        {"user": agent.pk, "issuer": "https://sso.example", "subject": "00u1"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    link = ProviderIdentity.objects.get(user=agent)
    admin_client.post(
        reverse("admin:accounts_provideridentity_delete", args=[link.pk]), {"post": "yes"}
    )

    assert access_entries() == [
        ("admin", "agent: linked to the identity provider's 00u1 at https://sso.example"),
        ("admin", "agent: unlinked from the identity provider's 00u1 at https://sso.example"),
    ]


def test_the_audit_log_shows_an_access_change(admin_client, agent, auditor_client):
    save(admin_client, agent, is_active=None)

    page = auditor_client.get(reverse("audit:list")).content.decode()

    assert "Access changed" in page
    assert "agent: deactivated" in page


names = st.frozensets(st.sampled_from(["Support", "Auditor", "Other"]))
accesses = st.builds(
    access.Access,
    active=st.booleans(),
    staff=st.booleans(),
    superuser=st.booleans(),
    groups=names,
    permissions=st.frozensets(st.sampled_from(["a.b", "c.d"])),
    identity=st.sampled_from(["", "1 at https://x", "2 at https://x"]),
)


@given(accesses, accesses)
def test_an_access_change_is_described_exactly_when_there_is_one(before, after):
    words = access.changes(before, after)

    assert (words == []) == (before == after)
    # Each group added or removed is named once, on the side it moved to.
    text = "; ".join(words)
    for group in after.groups ^ before.groups:
        assert len(re.findall(rf"\b{group}\b", text)) == 1


def test_the_staff_members_page_lists_the_changes_to_their_access(
    admin_client, agent, auditor_client
):
    auditor_group = Group.objects.get_or_create(name="Auditor")[0]
    save(admin_client, agent, groups=[*agent.groups.values_list("pk", flat=True), auditor_group.pk])
    save(admin_client, User.objects.get(pk=agent.pk), is_active=None)

    page = auditor_client.get(reverse("audit:staff", args=["agent"])).content.decode()
    admins = auditor_client.get(reverse("audit:staff", args=["admin"])).content.decode()

    assert "Changes to this account's access" in page
    changes = page[page.index("access-changes-title") :]
    assert changes.index("deactivated") < changes.index("added to Auditor")  # newest first
    assert "by admin" in changes
    assert "Changes to this account" not in admins  # made by admin, not to admin's access


def test_an_administrator_deleting_their_own_account_is_recorded_under_their_name(
    admin_client, admin_user
):
    """The record cannot link to the account it records the deletion of: it keeps the name."""
    response = admin_client.post(
        reverse("admin:auth_user_delete", args=[admin_user.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    (entry,) = AuditEntry.objects.filter(action=Action.ACCESS_CHANGED)
    assert (entry.actor_username, entry.actor_id, entry.detail) == (
        "admin",
        None,
        "admin: account deleted",
    )
    assert call_command("audit_verify", stdout=io.StringIO()) is None
