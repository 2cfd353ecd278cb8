"""Which identity-provider identity a console account belongs to."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ProviderIdentity(models.Model):
    """A console account linked to one person at the identity provider: the token's issuer and
    subject (`iss` + `sub`), which never change, unlike the username the provider shows. Made at
    that person's first sign-in through the provider; a console account without one is never
    signed into through the provider."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_identity"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "identity-provider link"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="one_account_per_identity")
        ]

    def __str__(self) -> str:
        return f"{self.user} = {self.subject} at {self.issuer}"
