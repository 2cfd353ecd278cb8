"""Django's ModelBackend, except that the signed-in user and their permissions (their own and
their groups') are read with plain SQL written once from the models, the permissions in one query
instead of two: every page and every live refresh reads both, and building the ORM's queries cost
more than running them (docs/performance.md)."""

from __future__ import annotations

from functools import cache

from django.contrib.auth import backends, get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connections, router

from connvo_admin.plain_sql import select_where


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id):
        """The user a session names, as `UserModel._default_manager.get(pk=user_id)` finds it."""
        manager = get_user_model()._default_manager
        sql = select_where(manager.model, manager.db, "pk")
        user = next(iter(manager.raw(sql, [user_id])), None)
        return user if user is not None and self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            if user_obj.is_superuser:
                rows = Permission.objects.values_list("content_type__app_label", "codename")
            else:
                alias = router.db_for_read(Permission)
                with connections[alias].cursor() as cursor:
                    cursor.execute(_permissions_sql(alias), [user_obj.pk, user_obj.pk])
                    rows = cursor.fetchall()
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in rows}
        return user_obj._perm_cache


@cache
def _permissions_sql(alias: str) -> str:
    """The permissions granted to a user directly or through a group: `(app_label, codename)`
    rows, duplicates removed. Table and column names come from the models (a custom user model
    included), so this is the query Django's backend makes, written once."""
    quote = connections[alias].ops.quote_name
    user_model = get_user_model()
    own = user_model._meta.get_field("user_permissions").remote_field.through._meta
    membership = user_model._meta.get_field("groups").remote_field.through._meta
    granted = Group._meta.get_field("permissions").remote_field.through._meta
    permission, content_type = Permission._meta, ContentType._meta

    def column(meta, to) -> str:
        """The column of `meta`'s table that points at model `to`."""
        (field,) = (f for f in meta.concrete_fields if getattr(f, "related_model", None) is to)
        return quote(field.column)

    def table(meta) -> str:
        return quote(meta.db_table)

    return (
        f"SELECT ct.{quote(content_type.get_field('app_label').column)}, "  # noqa: S608 (names from the models)
        f"p.{quote(permission.get_field('codename').column)} "
        f"FROM {table(permission)} p "
        f"JOIN {table(content_type)} ct ON ct.{quote(content_type.pk.column)} = "
        f"p.{column(permission, ContentType)} "
        f"WHERE p.{quote(permission.pk.column)} IN ("
        f"SELECT {column(own, Permission)} FROM {table(own)} "
        f"WHERE {column(own, user_model)} = %s "
        f"UNION SELECT g.{column(granted, Permission)} FROM {table(granted)} g "
        f"JOIN {table(membership)} m ON m.{column(membership, Group)} = g.{column(granted, Group)} "
        f"WHERE m.{column(membership, user_model)} = %s)"
    )
