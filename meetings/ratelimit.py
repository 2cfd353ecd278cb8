"""The console's own limit on lookups per staff member (CONNVO_LOOKUPS_PER_MINUTE), so that a
stuck script or a pile of open tabs cannot hammer Connvo with someone's token.

Counted in the shared cache, so every worker and every host counts against the same limit: a
window opens at a staff member's first lookup and lasts a minute. Pages, live refreshes and
`manage.py connvo_lookup` all count; one open meeting page refreshes 60 / CONNVO_POLL_INTERVAL
times a minute (6 by default), far below the default limit of 60."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache

from connvo_admin.outcomes import LookupFailed, Outcome

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class LookupLimitReached(LookupFailed):
    """The console refused the lookup before calling Connvo (not Connvo's own 429)."""

    outcome = Outcome.LOOKUP_LIMIT
    title = "Too many lookups from your account"


def _key(user: AbstractBaseUser) -> str:
    return f"lookups-per-minute:{user.pk}"


def count_lookup(*, user: AbstractBaseUser) -> None:
    """Count one lookup by `user`; raise `LookupLimitReached` when it is over the limit."""
    limit = settings.CONNVO_LOOKUPS_PER_MINUTE
    key = _key(user)
    try:
        count = 1 if cache.add(key, 1, timeout=WINDOW_SECONDS) else cache.incr(key)
    except ValueError:
        # The window closed between add() and incr(): this lookup opens the next one.
        cache.set(key, 1, timeout=WINDOW_SECONDS)
        count = 1
    except Exception:
        # Without its cache the console cannot count; it keeps serving rather than refuse every
        # lookup (the cache's outage also shows on /readyz).
        logger.exception("lookup rate limit not checked: the cache did not answer")
        return
    if count > limit:
        raise LookupLimitReached(
            f"You have made more than {limit} lookups in the last minute, which is as many as the "
            "console allows one person (this is the console's own limit, not Connvo's). Wait a "
            "minute and try again. If a script or a pile of open tabs is using your account, stop "
            "it first.",
        )
