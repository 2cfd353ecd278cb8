"""Per-staff Connvo tokens, encrypted at rest (see meetings/tokens.py for the only code that
encrypts and decrypts them)."""

from django.conf import settings
from django.db import models


class StaffToken(models.Model):
    """One staff member's Connvo user token for one deployment.

    Only the ciphertext is stored, plus what the agent needs to recognise the token without seeing
    it: its last four characters and the `sub`/`exp` claims read from its payload.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connvo_tokens"
    )
    deployment = models.CharField(max_length=64)
    ciphertext = models.BinaryField()
    last4 = models.CharField(max_length=4)
    subject = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "deployment"], name="one_token_per_deployment"),
        ]
        permissions = [("lookup_meeting", "Can look up Connvo meetings")]

    def __str__(self) -> str:
        return f"{self.user} on {self.deployment} (…{self.last4})"
