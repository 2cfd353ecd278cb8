"""Per-staff Connvo tokens, encrypted at rest (see meetings/credentials.py for the only code that
encrypts and decrypts them)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from connvo_admin.plain_sql import select_where


class StaffTokenManager(models.Manager):
    def of(self, user, deployment: str) -> StaffToken | None:
        """The user's credential for the deployment, or None: what every lookup and live refresh
        reads first, in plain SQL (connvo_admin/plain_sql.py). At most one row: the
        `one_token_per_deployment` constraint."""
        sql = select_where(self.model, self.db, "user", "deployment")
        return next(iter(self.raw(sql, [user.pk, deployment])), None)


class StaffToken(models.Model):
    """One staff member's Connvo credential for one deployment.

    Either a pasted access token, or a Connvo session connected through WorkOS AuthKit: then the
    current (short-lived) access token plus the refresh token that renews it. Only ciphertexts are
    stored, plus what the agent needs to recognise the credential without seeing it: the access
    token's last four characters, its `sub`/`exp` claims, and the account's email.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connvo_tokens"
    )
    deployment = models.CharField(max_length=64)
    ciphertext = models.BinaryField()
    # Set for a WorkOS-connected session: single-use, replaced at every refresh.
    refresh_ciphertext = models.BinaryField(null=True, blank=True)
    session_id = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=254, blank=True)
    last4 = models.CharField(max_length=4)
    subject = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # A connected session that WorkOS refused to renew (revoked, expired, refresh token spent):
    # remembered, tokens wiped, so that every page and command says "reconnect" until the agent
    # reconnects or removes it, instead of "no token saved".
    session_ended_at = models.DateTimeField(null=True, blank=True)
    session_end_reason = models.CharField(max_length=500, blank=True)
    # A renewal in flight (meetings/credentials.py): claimed in a short transaction, so that no
    # database lock is held while WorkOS answers, and exactly one request spends the refresh token.
    renewal_claim = models.CharField(max_length=32, blank=True)
    renewal_claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StaffTokenManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "deployment"], name="one_token_per_deployment"),
        ]
        permissions = [("lookup_meeting", "Can look up Connvo meetings")]

    def __str__(self) -> str:
        return f"{self.user} on {self.deployment} (…{self.last4})"

    @property
    def is_connected_session(self) -> bool:
        return self.refresh_ciphertext is not None

    @property
    def session_ended(self) -> bool:
        return self.session_ended_at is not None


class WatchedMeeting(models.Model):
    """A meeting one staff member added to their watch list. Never shared: every query goes
    through the owner. Nothing of the meeting is stored here: the watch list looks each one up
    when it is opened (a finished meeting is told apart by that look)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watched_meetings"
    )
    deployment = models.CharField(max_length=64)
    meeting_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "deployment", "meeting_id"], name="watch_once_per_meeting"
            ),
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} watches {self.meeting_id} on {self.deployment}"
