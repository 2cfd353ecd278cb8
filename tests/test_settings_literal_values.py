"""Values read as written (connvo_admin/environment.py): django-environ takes a value starting with
"$" for the name of another variable, so a secret such as '$k9!x…' was read as empty and refused as
"missing or demo"; and a DATABASE_URL that cannot be read is refused by name, never quoted (it
holds the password)."""

from __future__ import annotations

import secrets
import warnings

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import example, given
from hypothesis import strategies as st

from connvo_admin.environment import Env
from tests.settings_loader import load_settings, production_environment


def env_with(**values: str) -> Env:
    env = Env()
    env.ENVIRON = values
    return env


def test_secrets_starting_with_a_dollar_are_used_as_written():
    secret_key = "$k9!x" + secrets.token_urlsafe(50)
    chain_key = "$" + secrets.token_urlsafe(48)
    fallback = "$old" + secrets.token_urlsafe(50)

    loaded = load_settings(
        production_environment(
            SECRET_KEY=secret_key, AUDIT_CHAIN_KEY=chain_key, SECRET_KEY_FALLBACKS=fallback
        )
    )

    assert loaded["SECRET_KEY"] == secret_key
    assert loaded["AUDIT_CHAIN_KEYS"] == [chain_key]
    assert loaded["SECRET_KEY_FALLBACKS"] == [fallback]


@given(st.text(st.characters(exclude_categories=["Cs"])))
@example("$SECRET_KEY")
@example("$")
@example(r"\$escaped")
def test_any_value_is_read_as_written(value):
    env = env_with(OTHER="not this", OIDC_RP_CLIENT_SECRET=value, SECRET_KEY="$OTHER")

    assert env.str("OIDC_RP_CLIENT_SECRET", default="") == value
    assert env.str("SECRET_KEY", default="") == "$OTHER"
    assert env.list("SECRET_KEY", default=[]) == ["$OTHER"]


REFUSAL = (
    "DATABASE_URL is not a database URL the console can use (postgres://user:password@host:5432/"
    "name or sqlite:////path/to/db.sqlite3): check its scheme, host and port, and that any '/', "
    "'@' or '%' in the password is written as %2F, %40 or %25."
)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://console:s3cr/et-pw@db.intranet.example:5432/console",  # a '/' in the password
        "postgres://console:s3cret-pw@db.intranet.example:99999/console",
        "postgress://console:s3cret-pw@db.intranet.example:5432/console",  # a scheme misspelt
        "console:s3cret-pw@db.intranet.example/console",
    ],
)
def test_a_database_url_that_cannot_be_read_stops_the_settings_without_its_password(url):
    assert refusal_of(DATABASE_URL=url) == REFUSAL


def refusal_of(**environment: str) -> str:
    """The settings' refusal of `environment`, checked to quote nothing of it elsewhere: no
    warning (django-environ's own quotes the password) and nothing chained that a traceback
    would print, such as ValueError("… as 's3cr'")."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImproperlyConfigured) as refused:
            load_settings(production_environment(**environment))

    refusal = refused.value
    assert refusal.__cause__ is None
    assert refusal.__context__ is None or refusal.__suppress_context__
    return str(refusal)


@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1))
@example("s3cr/et")
@example("a:b")
@example("[::1")
def test_any_password_is_either_read_or_refused_without_a_word_of_it(password):
    env = env_with(DATABASE_URL=f"postgres://console:{password}@db.intranet.example:5432/console")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            config = env.database("DATABASE_URL", default="sqlite:///x")
        except ImproperlyConfigured as exc:
            assert str(exc) == REFUSAL
            return
    assert config["ENGINE"] == "django.db.backends.postgresql"


CACHE_REFUSAL = (
    "CACHE_URL is not a cache URL the console can use (redis://host:6379/0, rediss://host:6380/0, "
    "or locmemcache:// for one process): check its scheme, host and port, and that any '/', '@' "
    "or '%' in the password is written as %2F, %40 or %25."
)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret-pw@cache.intranet.example:63790x/0",  # a port that is not one
        "redis://:s3cret-pw@cache.intranet.example:99999/0",
        "redis://:s3cret-pw@cache.intranet.example:6379/cache",  # a database that is not one
        "redis://cache.intranet.example:6379/0,redis://:s3cret-pw@replica:x/0",
        "redi://:s3cret-pw@cache.intranet.example:6379/0",  # a scheme misspelt
        "memcache://cache.intranet.example:11211",  # no backend for it in Django 6
        "redis://",
    ],
)
def test_a_cache_url_that_cannot_be_used_stops_the_settings_without_its_password(url):
    """Such a URL was taken as it came: the first request to use the cache failed (a bad
    port's ValueError), and so did every one after it, sessions included."""
    assert refusal_of(CACHE_URL=url) == CACHE_REFUSAL


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("redis://:s3cret-pw@cache.intranet.example:6379/0", None),
        ("rediss://cache.intranet.example:6380/2", None),
        ("redis://a.example:6379/0,redis://b.example:6379/0", None),
        ("redis:///run/redis/redis.sock", "unix:///run/redis/redis.sock"),
    ],
)
def test_the_documented_cache_urls_load(url, location):
    loaded = load_settings(production_environment(CACHE_URL=url))

    assert loaded["CACHES"]["default"]["BACKEND"] == "connvo_admin.cache.RedisCache"
    assert loaded["CACHES"]["default"]["LOCATION"] == (location or url)


@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1))
@example("s3cr/et")
@example("a:b")
@example("p@ss")
def test_any_cache_password_is_either_read_or_refused_without_a_word_of_it(password):
    env = env_with(CACHE_URL=f"redis://:{password}@cache.intranet.example:6379/0")

    try:
        config = env.shared_cache("CACHE_URL", default="locmemcache://")
    except ImproperlyConfigured as exc:
        assert str(exc) == CACHE_REFUSAL
        return
    assert config["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
