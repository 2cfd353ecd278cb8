"""Sessions read from the shared cache, written through to the database
(accounts/session_store.py): no database query to read one, signing out ends it everywhere, and a
cache that fails signs nobody out."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from hypothesis import example, given
from hypothesis import strategies as st

from accounts.session_store import SessionStore

pytestmark = pytest.mark.django_db


class BrokenCache:
    """A cache whose server is down."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("the cache is down")

        return fail

    def __contains__(self, key):
        raise ConnectionError("the cache is down")


def test_a_saved_session_is_read_without_a_database_query(django_assert_num_queries):
    session = SessionStore()
    session["where"] = "prod"
    session.save()

    with django_assert_num_queries(0):
        assert SessionStore(session.session_key).load() == {"where": "prod"}
    assert Session.objects.filter(session_key=session.session_key).exists()


def test_with_the_cache_down_sessions_are_read_and_written_in_the_database(monkeypatch, caplog):
    session = SessionStore()
    session["where"] = "prod"
    session.save()
    monkeypatch.setattr(cached_db, "caches", {"default": BrokenCache()})

    again = SessionStore(session.session_key)
    assert again.load() == {"where": "prod"}
    assert again.exists(session.session_key)
    again["where"] = "dev"
    again.save()
    assert SessionStore(session.session_key).load() == {"where": "dev"}
    again.delete()
    assert not Session.objects.filter(session_key=session.session_key).exists()
    assert "session cache down (ConnectionError)" in caplog.text


def test_signing_out_ends_the_cached_session(agent_client: Client):
    cookie = agent_client.cookies["sessionid"].value
    assert agent_client.get(reverse("meetings:lookup")).status_code == 200
    assert caches["default"].get(SessionStore.cache_key_prefix + cookie) is not None

    agent_client.post(reverse("accounts:logout"))

    stolen = Client()
    stolen.cookies["sessionid"] = cookie
    response = stolen.get(reverse("meetings:lookup"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_an_agent_stays_signed_in_while_the_cache_is_down(agent_client: Client, monkeypatch):
    agent_client.get(reverse("meetings:lookup"))
    monkeypatch.setattr(cached_db, "caches", {"default": BrokenCache()})

    response = agent_client.get(reverse("meetings:lookup"))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "cookie",
    [
        'sessionid="abcdefgh\\000ijklmnop"',  # a NUL, written as the cookie syntax allows
        "sessionid=" + "a" * 400,
        'sessionid="ABCDEFGH-ijklmnop"',
    ],
)
def test_a_session_cookie_django_never_made_is_no_session(cookie):
    """Django only ever makes keys of lowercase letters and digits; anything else is not looked
    up (PostgreSQL refuses a NUL even in a query: that was "database unavailable")."""
    response = Client(HTTP_COOKIE=cookie).get(reverse("meetings:lookup"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@given(key=st.text(max_size=60))
@example(key="abcdefgh\x00")
@example(key="abcdefghijklmnop")
def test_any_session_key_is_a_session_or_none(key):
    session = SessionStore(key)

    assert session.load() == {}
    assert session.session_key is None or set(session.session_key) <= set(VALID_KEY_CHARS)
