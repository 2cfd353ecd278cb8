"""How long a sign-in lasts: at most SESSION_COOKIE_AGE seconds after signing in, and no more
than SESSION_IDLE_TIMEOUT seconds after the agent last did something.

Times are kept in the session (the database), so every host agrees on them."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest

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


def is_kept_current_by_the_page(request: HttpRequest) -> bool:
    """A request an open page makes by itself to stay current, which is not the agent doing
    something: its live refresh (htmx) or its push stream (an EventSource, which sends no htmx
    header and reconnects by itself each time a stream ends)."""
    return bool(request.htmx) or request.headers.get("Accept") == "text/event-stream"


def still_signed_in(
    session: SessionBase, user_pk: object, *, now: float, permission: str | None = None
) -> bool:
    """Whether the sign-in a long-lived request (a push stream) was let in with still holds: its
    session read afresh, as the page's next request would read it: not signed out (here or on
    another host), not past the limits above, the account still active and its password
    unchanged (Django's own check, `get_user`), and, when named, the `permission` the request
    needed still the account's (a group left meanwhile). Only reads: what that next request
    changes (a spent session flushed, the agent told why) is left to it."""
    fresh = _read_only(type(session))(session.session_key)
    user = get_user(SimpleNamespace(session=fresh))
    return (
        user.pk is not None
        and user.pk == user_pk
        and expiry_reason(fresh, now=now) is None
        and (permission is None or user.has_perm(permission))
    )


@cache
def _read_only(store: type[SessionBase]) -> type[SessionBase]:
    """The session store, changing nothing: Django's `get_user` flushes a session that no longer
    verifies, and moves one verified by an old secret to a new key, which only a response that
    can set the cookie may do."""

    class ReadOnly(store):
        def save(self, must_create: bool = False) -> None:
            pass

        def delete(self, session_key: str | None = None) -> None:
            pass

        def cycle_key(self) -> None:
            pass

    return ReadOnly


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
