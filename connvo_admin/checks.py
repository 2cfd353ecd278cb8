"""Refusing to serve production with a demo or missing secret.

The demo values in settings.py are fine for `make demo`, `manage.py` and the tests. Production
serving must not run with them: `manage.py check --deploy` reports them as errors, and
gunicorn.conf.py runs `serving_problems()` before it starts any worker and exits when there is
one (unless DEBUG is on)."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from cryptography.fernet import Fernet
from django.conf import settings
from django.core import checks

_KEY_HINT = {
    "SECRET_KEY": "Set SECRET_KEY to a long random value, e.g. python -c 'import secrets; "
    "print(secrets.token_urlsafe(50))'.",
    "TOKEN_ENCRYPTION_KEYS": "Set TOKEN_ENCRYPTION_KEYS to a Fernet key: python -c 'from "
    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'.",
    "AUDIT_CHAIN_KEY": "Set AUDIT_CHAIN_KEY to a long random value, e.g. python -c 'import "
    "secrets; print(secrets.token_urlsafe(48))'.",
}
LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@dataclass(frozen=True, slots=True)
class SecretProblem:
    variable: str
    message: str

    @property
    def hint(self) -> str:
        return _KEY_HINT[self.variable]


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode())
    except (ValueError, binascii.Error):
        return False
    return True


def secret_problems() -> list[SecretProblem]:
    """Every secret that is missing or is the public demo value. Names variables, never values."""
    problems = []
    if not settings.SECRET_KEY or settings.SECRET_KEY == settings.DEMO_SECRET_KEY:
        problems.append(SecretProblem("SECRET_KEY", "SECRET_KEY is missing or is the demo key."))
    elif settings.DEMO_SECRET_KEY in settings.SECRET_KEY_FALLBACKS:
        problems.append(
            SecretProblem("SECRET_KEY", "SECRET_KEY_FALLBACKS contains the demo key: remove it.")
        )

    keys = [key for key in settings.TOKEN_ENCRYPTION_KEYS if key]
    if not keys:
        problems.append(SecretProblem("TOKEN_ENCRYPTION_KEYS", "TOKEN_ENCRYPTION_KEYS is missing."))
    elif settings.DEMO_TOKEN_ENCRYPTION_KEY in keys:
        problems.append(
            SecretProblem(
                "TOKEN_ENCRYPTION_KEYS",
                "TOKEN_ENCRYPTION_KEYS contains the demo key: tokens encrypted with it are "
                "readable by anyone who has this source code.",
            )
        )
    elif not all(_is_fernet_key(key) for key in keys):
        problems.append(
            SecretProblem(
                "TOKEN_ENCRYPTION_KEYS",
                "TOKEN_ENCRYPTION_KEYS contains something that is not a Fernet key.",
            )
        )

    # The audit chain's keys (audit/chain.py): the current one and any earlier ones.
    chain_keys = [key for key in settings.AUDIT_CHAIN_KEYS if key]
    if not chain_keys or settings.DEMO_AUDIT_CHAIN_KEY in chain_keys:
        problems.append(
            SecretProblem("AUDIT_CHAIN_KEY", "AUDIT_CHAIN_KEY is missing or is the demo key.")
        )
    return problems


def serving_problems() -> list[SecretProblem]:
    """What stops gunicorn from serving: the secret problems, unless DEBUG is on."""
    return [] if settings.DEBUG else secret_problems()


@checks.register(checks.Tags.security, deploy=True)
def check_secrets(app_configs, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Error(problem.message, hint=problem.hint, id="connvo.E001")
        for problem in secret_problems()
    ]


@checks.register(checks.Tags.caches, deploy=True)
def check_shared_cache(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.CACHES["default"]["BACKEND"] in LOCAL_CACHES:
        return [
            checks.Warning(
                "CACHE_URL is a cache inside each process, so the lookup rate limit is counted "
                "per gunicorn worker and per host.",
                hint="Set CACHE_URL to the Redis that every host shares, e.g. "
                "redis://cache.intranet.example:6379/0.",
                id="connvo.W001",
            )
        ]
    return []
