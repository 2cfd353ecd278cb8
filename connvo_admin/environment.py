"""Reading the console's settings from the environment (settings.py): django-environ's reader, with
numbers refused by name when they cannot be read."""

from __future__ import annotations

import re
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


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
    """django-environ's reader, with numbers that a typo cannot turn into a bare traceback."""

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
