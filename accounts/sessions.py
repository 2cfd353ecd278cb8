"""How long a sign-in lasts: at most SESSION_COOKIE_AGE seconds after signing in, and no more
than SESSION_IDLE_TIMEOUT seconds after the agent last did something.

Times are kept in the session (the database), so every host agrees on them."""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

SIGNED_IN_AT = "console_signed_in_at"
ACTIVE_AT = "console_active_at"
# Recording activity writes the session; once a minute is precise enough for a 30-minute limit.
ACTIVITY_PRECISION = 60


def start(session: SessionBase, *, now: float) -> None:
    session[SIGNED_IN_AT] = now
    session[ACTIVE_AT] = now


def expiry_reason(session: SessionBase, *, now: float) -> str | None:
    """Why this sign-in has ended, written for the agent, or None while it is still good."""
    signed_in_at = session.get(SIGNED_IN_AT)
    active_at = session.get(ACTIVE_AT)
    if signed_in_at is None or active_at is None:
        # A sign-in from before these limits existed: they start counting now.
        start(session, now=now)
        return None
    if now - signed_in_at > settings.SESSION_COOKIE_AGE:
        return (
            f"You were signed out because sign-ins last at most "
            f"{_duration(settings.SESSION_COOKIE_AGE)}. Sign in again to continue."
        )
    if now - active_at > settings.SESSION_IDLE_TIMEOUT:
        return (
            f"You were signed out after {_duration(settings.SESSION_IDLE_TIMEOUT)} without "
            "activity. Sign in again to continue."
        )
    return None


def note_activity(session: SessionBase, *, now: float) -> None:
    if now - session.get(ACTIVE_AT, 0) >= ACTIVITY_PRECISION:
        session[ACTIVE_AT] = now


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
