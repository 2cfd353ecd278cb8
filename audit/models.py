"""The audit log: one append-only row per Connvo lookup and per security-relevant event."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Action(models.TextChoices):
    LOOKUP = "lookup", "Meeting lookup"
    TOKEN_SAVED = "token_saved", "Token saved"
    TOKEN_REPLACED = "token_replaced", "Token replaced"
    TOKEN_REMOVED = "token_removed", "Token removed"
    SIGN_IN = "sign_in", "Signed in"
    SIGN_OUT = "sign_out", "Signed out"
    SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
    PERMISSION_DENIED = "permission_denied", "Permission denied"
    CONNVO_CONNECTED = "connvo_connected", "Connvo account connected"
    CONNVO_DISCONNECTED = "connvo_disconnected", "Connvo account disconnected"
    CONNVO_CONNECT_FAILED = "connvo_connect_failed", "Connvo account connection failed"
    TOKEN_REFRESHED = "token_refreshed", "Connvo access token refreshed"
    TOKEN_REFRESH_FAILED = "token_refresh_failed", "Connvo access token refresh failed"


class Via(models.TextChoices):
    PAGE = "page", "Page"
    REFRESH = "refresh", "Live refresh"
    CLI = "cli", "Command line"


class AuditEntry(models.Model):
    """Never updated or deleted by the app. Holds no token and none of a meeting's contents: only
    who asked for what, when, from where, and how it ended."""

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Kept as written at the time, so the record survives the account being renamed or deleted.
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    via = models.CharField(max_length=16, choices=Via.choices, blank=True)
    deployment = models.CharField(max_length=64, blank=True)
    meeting_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    connvo_request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at", "-id"], name="audit_newest_first"),
            models.Index(fields=["actor", "-at", "-id"], name="audit_by_actor"),
            models.Index(fields=["meeting_id", "-at", "-id"], name="audit_by_meeting"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {self.meeting_id}"
