"""Receivers: an account deleted anywhere (the admin, a shell, a script) forgets its Connvo
credentials first, each ended at WorkOS and recorded (`connect.forget_every`: every session ended
before anything is recorded), instead of vanishing with the account."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from audit.services import Origin, acting_origin

from . import connect
from .models import StaffToken


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="meetings_forget_on_delete")
def forget_credentials_of_a_deleted_account(sender, instance, **kwargs) -> None:
    # In the name of whoever is acting (the admin says, accounts/admin.py); nobody otherwise (a
    # shell, a script). Never of the account being deleted: its row is going.
    username = instance.get_username()
    acting = acting_origin() or Origin(
        user=None, username="", user_agent="account deleted outside the admin"
    )
    connect.forget_every(
        StaffToken.objects.filter(user=instance),
        origin=acting.outliving(instance.pk),
        detail=lambda stored: f"{username}'s credential, forgotten as the account was deleted",
    )
