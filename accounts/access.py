"""Who may do what in the console, as the audit log records its changes: an account's access
(active, admin-site staff, superuser, groups, permissions of its own, identity-provider link)
read before and after a change, and the difference recorded as one chained "Access changed"
entry naming the account, whoever made it: an administrator in the admin, or the identity
provider's groups claim at a sign-in."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from audit.models import Action
from audit.records import about_account
from audit.services import Origin, record


@dataclass(frozen=True, slots=True)
class Access:
    active: bool
    staff: bool
    superuser: bool
    groups: frozenset[str]
    permissions: frozenset[str]
    identity: str  # "subject at issuer", or "" when not linked


def access_of(user_pk: int | None) -> Access | None:
    """The account's access as stored now; None when there is no such account."""
    user = (
        get_user_model()
        .objects.filter(pk=user_pk)
        .select_related("provider_identity")
        .prefetch_related("groups", "user_permissions__content_type")
        .first()
        if user_pk is not None
        else None
    )
    if user is None:
        return None
    identity = getattr(user, "provider_identity", None)
    return Access(
        active=user.is_active,
        staff=user.is_staff,
        superuser=user.is_superuser,
        groups=frozenset(group.name for group in user.groups.all()),
        permissions=frozenset(
            f"{permission.content_type.app_label}.{permission.codename}"
            for permission in user.user_permissions.all()
        ),
        identity=f"{identity.subject} at {identity.issuer}" if identity else "",
    )


def _flag(before: bool, after: bool, on: str, off: str) -> list[str]:
    return [] if before == after else [on if after else off]


def _sets(before: frozenset[str], after: frozenset[str], added: str, removed: str) -> list[str]:
    words = []
    if after - before:
        words.append(f"{added} {', '.join(sorted(after - before))}")
    if before - after:
        words.append(f"{removed} {', '.join(sorted(before - after))}")
    return words


def changes(before: Access | None, after: Access | None) -> list[str]:
    """What changed, in words for an auditor; empty when nothing did that touches access."""
    if before is None and after is None:
        return []
    if after is None:
        return ["account deleted"]
    # A new account is active and nothing else until it is given more.
    was = before or Access(True, False, False, frozenset(), frozenset(), "")
    words = ["account created"] if before is None else []
    words += _flag(was.active, after.active, "activated", "deactivated")
    words += _flag(was.staff, after.staff, "may use the admin site", "may no longer use the admin")
    words += _flag(was.superuser, after.superuser, "made superuser", "no longer superuser")
    words += _sets(was.groups, after.groups, "added to", "removed from")
    words += _sets(was.permissions, after.permissions, "given", "no longer given")
    if was.identity != after.identity:
        if was.identity:
            words.append(f"unlinked from the identity provider's {was.identity}")
        if after.identity:
            words.append(f"linked to the identity provider's {after.identity}")
    return words


def record_access_change(
    *, origin: Origin, username: str, before: Access | None, after: Access | None, how: str = ""
) -> None:
    """One chained entry naming the account and what changed, when anything did."""
    words = changes(before, after)
    if words:
        record(
            origin=origin,
            action=Action.ACCESS_CHANGED,
            detail=about_account(username) + "; ".join(words) + (f" ({how})" if how else ""),
        )


def record_password_set(*, origin: Origin, username: str) -> None:
    """An administrator set the account's password: they could then sign in as its owner."""
    record(
        origin=origin,
        action=Action.ACCESS_CHANGED,
        detail=about_account(username) + "password set in the admin",
    )


def record_group_permissions(
    *, origin: Origin, group: str, before: frozenset[str], after: frozenset[str]
) -> None:
    """A group's permissions changed: every member's access with them."""
    words = _sets(before, after, "given", "no longer given")
    if words:
        record(
            origin=origin,
            action=Action.ACCESS_CHANGED,
            detail=f"group {group}: {'; '.join(words)}",
        )


def group_permissions(group_pk: int | None) -> frozenset[str]:
    if group_pk is None:
        return frozenset()
    return frozenset(
        f"{app}.{codename}"
        for app, codename in Group.objects.filter(pk=group_pk).values_list(
            "permissions__content_type__app_label", "permissions__codename"
        )
        if codename
    )


def record_group_deleted(*, origin: Origin, group: str, members: list[str]) -> None:
    """A group deleted: its members lose what it gave them."""
    record(
        origin=origin,
        action=Action.ACCESS_CHANGED,
        detail=f"group {group} deleted"
        + (f"; its members were {', '.join(members)}" if members else "; it had no members"),
    )
