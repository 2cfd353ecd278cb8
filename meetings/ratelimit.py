"""The console's own limit on lookups per staff member (CONNVO_LOOKUPS_PER_MINUTE), so that a
stuck script or a pile of open tabs cannot hammer Connvo with someone's token.

Counted in the shared cache, so every worker and every host counts against the same limit: a
window opens at a staff member's first lookup and lasts a minute. Pages, live refreshes and
`manage.py connvo_lookup` all count; one open meeting page refreshes 60 / CONNVO_POLL_INTERVAL
times a minute (6 by default), far below the default limit of 60."""

from __future__ import annotations

import logging
import math
import os
import threading
import time

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script

from connvo_admin.outcomes import LookupFailed, Outcome

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class LookupLimitReached(LookupFailed):
    """The console refused the lookup before calling Connvo (not Connvo's own 429).
    `retry_after`: whole seconds until the staff member's window closes and lookups pass again."""

    outcome = Outcome.LOOKUP_LIMIT

    def __init__(self, message: str, *, retry_after: int = WINDOW_SECONDS, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def _key(user: AbstractBaseUser) -> str:
    return f"lookups-per-minute:{user.pk}"


def _opened_key(key: str) -> str:
    # When a window opened, for caches that cannot say how long a key has left (not Redis).
    return f"{key}:opened"


# A Lua script runs atomically: it counts, and opens the window (a minute's expiry) with the
# first lookup in it, so the window cannot close between the two (which would leave a counter that
# never expires); a counter found without an expiry gets one. One command, one round trip.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""

_client_lock = threading.Lock()
# Per process and cache location: the client, and the counting script registered on it (redis-py
# sends the script's SHA, and the script itself only when the server lacks it, e.g. after a
# restart).
_client: tuple[tuple[int, str], redis.Redis, Script] | None = None


def _connect() -> tuple[redis.Redis, Script] | None:
    """One client (and connection pool) per process for the counter, made again after a fork
    (or when the cache's location changes); None when the cache is not Redis (the embedded
    default counts in the cache's own way)."""
    global _client
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    config = settings.CACHES["default"]
    location = config["LOCATION"]
    location = location if isinstance(location, str) else location[0]
    owner = (os.getpid(), location)
    if _client is None or _client[0] != owner:
        with _client_lock:
            if _client is None or _client[0] != owner:
                options = config.get("OPTIONS", {})
                client = redis.Redis.from_url(
                    location,
                    socket_connect_timeout=options.get("socket_connect_timeout"),
                    socket_timeout=options.get("socket_timeout"),
                )
                _client = (owner, client, client.register_script(_COUNT))
    return _client[1], _client[2]


def _redis() -> redis.Redis | None:
    connected = _connect()
    return None if connected is None else connected[0]


def count_in_window(key: str, seconds: int) -> int:
    """One more on the shared cache's counter `key`, whose window opens with its first count and
    closes `seconds` later (the counter then gone); the count now, the same on every worker and
    host. Raises what the cache raises when it does not answer."""
    connected = _connect()
    if connected is None:
        try:
            if not cache.add(key, 1, timeout=seconds):
                return cache.incr(key)
        except ValueError:
            # The window closed between add() and incr(): this count opens the next one.
            cache.set(key, 1, timeout=seconds)
        return 1
    # The key is the cache's own (prefix and version), so the cache API reads the same counter.
    _, count = connected
    return int(count(keys=[cache.make_and_validate_key(key)], args=[seconds]))


def _count(key: str) -> int:
    count = count_in_window(key, WINDOW_SECONDS)
    if count == 1 and _connect() is None:
        cache.set(_opened_key(key), time.time(), timeout=WINDOW_SECONDS)
    return count


def _seconds_left(key: str) -> int:
    """Whole seconds until the window of `key` closes (asked only when a lookup is refused);
    the whole window when the cache cannot say."""
    left: float | None = None
    client = _redis()
    if client is None:
        opened = cache.get(_opened_key(key))
        if isinstance(opened, float | int):
            left = opened + WINDOW_SECONDS - time.time()
    else:
        milliseconds = client.pttl(cache.make_and_validate_key(key))
        if milliseconds >= 0:  # -1: no expiry, -2: gone
            left = milliseconds / 1000
    if left is None:
        return WINDOW_SECONDS
    return min(WINDOW_SECONDS, max(1, math.ceil(left)))


def count_lookup(*, user: AbstractBaseUser) -> None:
    """Count one lookup by `user`; raise `LookupLimitReached` when it is over the limit."""
    limit = settings.CONNVO_LOOKUPS_PER_MINUTE
    try:
        count = _count(_key(user))
    except Exception:
        # Without its cache the console cannot count; it keeps serving rather than refuse every
        # lookup (the cache's outage also shows on /readyz).
        logger.exception("lookup rate limit not checked: the cache did not answer")
        return
    if count > limit:
        try:
            retry_after = _seconds_left(_key(user))
        except Exception:
            logger.exception("lookup rate limit: the cache did not say when the window closes")
            retry_after = WINDOW_SECONDS
        raise LookupLimitReached(
            f"You have made more than {limit} lookups in the last minute, which is as many as the "
            "console allows one person (this is the console's own limit, not Connvo's). Wait a "
            "minute and try again. If a script or a pile of open tabs is using your account, stop "
            "it first.",
            retry_after=retry_after,
        )


def first_stream_of(*, user: AbstractBaseUser, page: str) -> bool:
    """True once per page key of `user` within a window, for the first push stream the page
    opens (meetings/lookups.py `open_subscriptions`): one atomic add in the shared cache, so that
    of any number of streams opened at once under one key, on any worker or host, one is first.
    False too when the cache does not answer (the stream is then counted in full)."""
    try:
        return bool(cache.add(f"first-stream:{user.pk}:{page}", 1, timeout=WINDOW_SECONDS))
    except Exception:
        logger.exception("lookup rate limit: the cache did not answer for a page's first stream")
        return False
