"""Sessions in the shared cache (Redis), written through to the database: Django's `cached_db`,
so that a request reads its session in one cache round trip instead of a database query.

Unlike Django's, a cache that fails is only logged: the session is read from (and kept in) the
database, so a Redis outage signs nobody out and breaks no page. Signing out deletes the session
from both; if the cache cannot be reached at that moment, the copy left there still carries the
sign-in's own time limits (accounts/sessions.py), and it is logged as an error."""

from __future__ import annotations

import logging

from django.contrib.sessions.backends import cached_db, db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS

logger = logging.getLogger(__name__)

_KEY_CHARS = frozenset(VALID_KEY_CHARS)


class SessionStore(cached_db.SessionStore):
    def _validate_session_key(self, key: str | None) -> bool:
        # The key comes from the cookie: Django checks only its length, so a NUL (which the cookie
        # syntax can carry as "\000") reached the database query, and PostgreSQL refuses NUL even
        # there ("database unavailable"). Django only ever makes keys of these characters.
        return bool(super()._validate_session_key(key)) and set(key) <= _KEY_CHARS

    def load(self) -> dict:
        try:
            data = self._cache.get(self.cache_key)
        except Exception as exc:  # whatever the cache backend raises: read the database
            logger.warning("session cache down (%s): reading the database", type(exc).__name__)
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=stored.expire_date))
        except Exception as exc:
            logger.warning("session cache unreachable (%s): not cached", type(exc).__name__)
        return data

    def exists(self, session_key: str) -> bool:
        try:
            if session_key and (self.cache_key_prefix + session_key) in self._cache:
                return True
        except Exception as exc:
            logger.warning("session cache down (%s): asking the database", type(exc).__name__)
        return db.SessionStore.exists(self, session_key)

    def delete(self, session_key: str | None = None) -> None:
        db.SessionStore.delete(self, session_key)
        session_key = session_key or self.session_key
        if session_key is None:
            return
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except Exception:
            logger.exception("a deleted session could not be removed from the session cache")
