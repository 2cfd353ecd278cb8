"""Reading the console's settings from the environment (settings.py): django-environ's reader, with
numbers, addresses and the database URL refused by name when they cannot be read, and every value
read as written."""

from __future__ import annotations

import re
import urllib.parse
import warnings
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from connvo_admin.client_address import valid_ip

_DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _shown(text: str) -> str:
    """A wrong entry as a refusal quotes it: short, and never a URL's password."""
    text = re.sub(r"//[^/@]*@", "//…@", text)
    return repr(text if len(text) <= 60 else text[:60] + "…")


def _number_problem(raw: str) -> str:
    """What is wrong with a value that is not a number, without repeating it (a secret pasted
    into the wrong line must not end up in a log)."""
    if "#" in raw:
        # systemd's EnvironmentFile and django-environ's .env alike keep "60  # a comment" whole.
        return (
            "its value goes on after the number with a '#': an environment file keeps a comment "
            "on the same line as part of the value, so put comments on lines of their own"
        )
    if any(character.isalpha() for character in raw):
        return "its value has letters in it (no unit: seconds, counts and limits are digits only)"
    return "its value is not one"


class Env(environ.Env):
    """django-environ's reader, with numbers and a database URL that a typo cannot turn into a
    bare traceback, and a value starting with "$" read as written. django-environ (0.14, which has
    no switch to turn it off) takes such a value for the name of another variable to read instead:
    SECRET_KEY='$k9!x…' was read as that variable's empty default, and refused as "missing or is
    the demo key"."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        raw = self.ENVIRON.get(f"{self.prefix}{var}")
        if isinstance(raw, str) and raw.startswith("$"):
            return raw if cast is None else self.parse_value(raw, cast)
        return super().get_value(var, cast=cast, default=default, parse_default=parse_default)

    def list(self, var, cast=None, default=environ.Env.NOTSET):
        """django-environ's comma-separated list, each item without the spaces around it and
        empty items dropped: "a, b" is ["a", "b"], not ["a", " b"] (a host, group or deployment
        " b" that nothing ever matches, and nothing says so)."""
        items = super().list(var, cast=cast, default=default)
        if not isinstance(items, list):
            return items
        stripped = [item.strip() if isinstance(item, str) else item for item in items]
        return [item for item in stripped if item != ""]

    def deployments(self, name: str, default: dict[str, str]) -> dict[str, str]:
        """`name=url` pairs, comma-separated, spaces around each taken off. A name is what the
        meeting pages' addresses and the WorkOS variables hold: letters, digits, '-' and '_'; a
        pair without both, or any other name, is refused by name."""
        if f"{self.prefix}{name}" not in self.ENVIRON:
            return default
        pairs = {}
        for entry in self.str(name).split(","):
            if not entry.strip():
                continue
            deployment, _, url = (part.strip() for part in entry.partition("="))
            if not _DEPLOYMENT_NAME.fullmatch(deployment) or not url:
                raise ImproperlyConfigured(
                    f"{name} lists name=url pairs, comma-separated, each name made of letters, "
                    f"digits, '-' and '_'; not {_shown(entry.strip())}."
                )
            pairs[deployment] = url
        if not pairs:
            raise ImproperlyConfigured(f"{name} names no deployment.")
        return pairs

    def addresses(self, name: str, default: list[str]) -> list[str]:
        """Comma-separated IP addresses, each in the normal form client_address.py compares
        with; `default` when unset, none when set empty. Anything else (a network, a host name)
        is refused by name: it would never match, and the proxy would stay untrusted."""
        if f"{self.prefix}{name}" not in self.ENVIRON:
            return default
        entries = [entry.strip() for entry in self.str(name).split(",") if entry.strip()]
        wrong = [entry for entry in entries if valid_ip(entry) is None]
        if wrong:
            raise ImproperlyConfigured(
                f"{name} lists exact IP addresses, comma-separated; not "
                f"{', '.join(repr(entry) for entry in wrong)}."
            )
        return list(dict.fromkeys(valid_ip(entry) for entry in entries))

    def database(self, name: str, default: str) -> dict[str, Any]:
        """Django's DATABASES entry from the URL in `name`. A URL that cannot be read is refused
        by name without a word of it (it holds the password): django-environ's own errors and
        warnings quote it ("Port could not be cast to integer value as '<what follows the first
        colon>'", "Engine not recognized from url: {…'PASSWORD': …}")."""
        url = self.str(name, default="") or default
        refused = ImproperlyConfigured(
            f"{name} is not a database URL the console can use (postgres://user:password@host:"
            "5432/name or sqlite:////path/to/db.sqlite3): check its scheme, host and port, and "
            "that any '/', '@' or '%' in the password is written as %2F, %40 or %25."
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                config = self.db_url_config(url)
        except (ValueError, TypeError, KeyError, ImproperlyConfigured):
            raise refused from None
        # An unknown scheme comes back as its own name for an ENGINE, not a backend's module.
        if "." not in config.get("ENGINE", ""):
            raise refused
        return config

    def shared_cache(self, name: str, default: str) -> dict[str, Any]:
        """Django's CACHES entry from the URL in `name`: `locmemcache://` (one process) or a
        Redis (`redis://`, `rediss://`; several locations comma-separated). Anything else, or a
        Redis URL that cannot be read, is refused by name at startup without a word of it (it
        may hold a password): a bad port was otherwise found by the first request that used the
        cache, and every request after it failed, sessions included."""
        url = self.str(name, default="") or default
        refused = ImproperlyConfigured(
            f"{name} is not a cache URL the console can use (redis://host:6379/0, "
            "rediss://host:6380/0, or locmemcache:// for one process): check its scheme, host "
            "and port, and that any '/', '@' or '%' in the password is written as %2F, %40 or "
            "%25."
        )
        try:
            config = self.cache_url_config(url)
        except (ValueError, TypeError, KeyError, ImproperlyConfigured):
            raise refused from None
        backend = config.get("BACKEND", "")
        if backend == "django.core.cache.backends.locmem.LocMemCache":
            return config
        if backend != "django.core.cache.backends.redis.RedisCache":
            raise refused
        # Only here: redis-py takes a quarter of a second to import, which a process on the
        # embedded default (locmem) would pay at every start for nothing.
        import redis.connection

        locations = config["LOCATION"]
        # As Django's Redis cache reads it: several servers comma-separated.
        for location in locations.split(",") if isinstance(locations, str) else locations:
            try:
                parsed = redis.connection.parse_url(location)
                database = urllib.parse.urlsplit(location).path.strip("/")
            except (ValueError, TypeError):
                raise refused from None
            if not (parsed.get("host") or parsed.get("path")):
                raise refused
            # redis-py takes a database it cannot read ("/cache") for database 0, unsaid.
            if location.startswith(("redis", "rediss")) and not re.fullmatch("[0-9]*", database):
                raise refused
        return config

    def _number(self, name: str, default: Any, pattern: re.Pattern, kind: str) -> str | None:
        raw = self.str(name, default="").strip()
        if raw == "":
            return None  # unset or empty: the default
        if not pattern.fullmatch(raw):
            raise ImproperlyConfigured(f"{name} must be {kind}, and {_number_problem(raw)}.")
        return raw

    def whole_number(self, name: str, default: int) -> int:
        """The variable as an int (digits, optionally signed), `default` when unset or empty;
        anything else is refused by name."""
        raw = self._number(name, default, _WHOLE, "a whole number")
        return default if raw is None else int(raw)

    def decimal_number(self, name: str, default: float) -> float:
        """The variable as a float ("10", "3.05"; no exponent, no inf or nan), `default` when
        unset or empty; anything else is refused by name."""
        raw = self._number(name, default, _DECIMAL, "a number such as 10 or 3.05")
        return default if raw is None else float(raw)
