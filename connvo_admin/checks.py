"""Deployment checks: a demo or missing secret, a cache that is not shared, proxies that disagree.

Production mode (DEBUG off) already refuses to load settings with a demo or missing secret
(settings.py); `manage.py check --deploy` reports the same as errors when DEBUG is on, and
/readyz reports it whenever the running process is not in debug mode."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from connvo_admin.secrets import SecretProblem, find_secret_problems

LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


def secret_problems() -> list[SecretProblem]:
    """Every secret that is missing or is the public demo value. Names variables, never values."""
    return find_secret_problems(
        secret_key=settings.SECRET_KEY,
        secret_key_fallbacks=settings.SECRET_KEY_FALLBACKS,
        token_encryption_keys=settings.TOKEN_ENCRYPTION_KEYS,
        audit_chain_keys=settings.AUDIT_CHAIN_KEYS,
    )


def serving_problems() -> list[SecretProblem]:
    """What makes this process unfit to serve (/readyz): the secret problems, unless DEBUG is on."""
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


@checks.register(deploy=True)
def check_push_relay(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.CONNVO_PUSH and not settings.CONNVO_PUSH_RELAY:
        return [
            checks.Warning(
                "CONNVO_PUSH_RELAY is empty, so pushed answers are recorded in the push workers: "
                "a push worker that dies loses the answers Connvo had sent it and it had not yet "
                "recorded.",
                hint="Run the host's push relay (manage.py push_relay, docs/deploy.md 3c) and "
                "leave CONNVO_PUSH_RELAY at its default, or set it to the relay's socket.",
                id="connvo.W002",
            )
        ]
    return []


@checks.register(checks.Tags.security, deploy=True)
def check_proxies_agree(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Behind a proxy for the scheme, but none trusted for the client's address: every client has
    the proxy's address, in the audit log and in the sign-in lockouts, where one client's failed
    sign-ins then lock everyone out."""
    if settings.SECURE_PROXY_SSL_HEADER and not settings.TRUSTED_PROXIES:
        return [
            checks.Warning(
                "SECURE_PROXY_SSL_HEADER says the console is behind a proxy, but TRUSTED_PROXIES "
                "is empty: every client gets the proxy's address, in the audit log and in the "
                "sign-in lockouts (one client's failed sign-ins lock everyone out).",
                hint="List the proxy that connects to gunicorn in TRUSTED_PROXIES (nginx on the "
                "same host: leave it unset, 127.0.0.1,::1).",
                id="connvo.W003",
            )
        ]
    return []
