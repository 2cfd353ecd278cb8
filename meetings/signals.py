"""Receivers: an account deleted anywhere (the admin, a shell, a script) forgets its Connvo
credentials first, each ended at WorkOS and recorded, instead of vanishing with the account."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from audit.services import Origin

from . import connect
from .models import StaffToken


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="meetings_forget_on_delete")
def forget_credentials_of_a_deleted_account(sender, instance, **kwargs) -> None:
    # The admin forgets them first with the administrator as the one acting (accounts/admin.py);
    # this catches every other way. Nobody is known to be acting here, and the entry cannot name
    # the account being deleted as its actor (its row is going).
    username = instance.get_username()
    connect.forget_every(
        StaffToken.objects.filter(user=instance),
        origin=Origin(user=None, username="", user_agent="account deleted outside the admin"),
        detail=lambda stored: f"{username}'s credential, forgotten as the account was deleted",
    )
