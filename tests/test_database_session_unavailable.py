"""A database that cannot be reached while Django reads or saves the session (outside any view):
the same clear 503 page, and on a live refresh the failing state with back-off, instead of the
generic 500 page or a bare 400. (tests/test_deployment.py restarts a real PostgreSQL.)"""

from __future__ import annotations

from importlib import import_module
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import DatabaseError, InterfaceError, OperationalError
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from tests.test_live_refresh import HTMX, poll_state

pytestmark = pytest.mark.django_db

# The session engine the console ships (sessions in the cache, written through to the database).
SessionStore = import_module(settings.SESSION_ENGINE).SessionStore

UNAVAILABLE = "The console&#x27;s database is unavailable; nothing was changed."


@pytest.fixture
def signed_in(agent) -> Client:
    """The agent's browser, its exceptions answered as in production (not raised)."""
    client = Client(raise_request_exception=False)
    client.force_login(agent)
    return client


def database_down(error: Exception | None = None):
    """Every read of a session fails, as every query does when PostgreSQL is gone."""
    error = error or OperationalError("connection refused")
    return mock.patch.object(SessionStore, "load", side_effect=error)


@pytest.mark.parametrize("error", [OperationalError("gone"), InterfaceError("connection closed")])
def test_a_page_says_the_database_is_unavailable(signed_in, error):
    with database_down(error):
        response = signed_in.get(reverse("meetings:lookup"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert UNAVAILABLE in response.content.decode()
    assert "Something went wrong" not in response.content.decode()


def test_a_form_post_says_nothing_was_changed(signed_in):
    with database_down():
        response = signed_in.post(
            reverse("meetings:token_save", args=["dev"]),
            {"dev-token": "x", "dev-deployment": "dev"},
        )
    assert response.status_code == 503
    assert UNAVAILABLE in response.content.decode()


def test_a_live_refresh_shows_the_failing_state_and_backs_off(
    signed_in, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLL_INTERVAL = 5
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    span = "page-span-key-0123456789"
    with database_down():
        first = signed_in.get(url, {"failures": 0, "seen": "abc", "span": span}, **HTMX)
        second = signed_in.get(url, {"failures": 1, "seen": "abc"}, **HTMX)
    # 200, so that htmx swaps the fragment in and keeps polling, slower (in the same span).
    assert first.status_code == second.status_code == 200
    assert poll_state(first.content.decode()) == {
        "interval": 10,
        "seen": "abc",
        "failures": 1,
        "status": "failing",
        "span": span,
    }
    assert poll_state(second.content.decode())["interval"] == 20
    assert "the console&#x27;s database is unavailable" in first.content.decode().lower()
    assert fake_connvo.call_count == 0
    assert not AuditEntry.objects.filter(action="lookup").exists()

    # Back: the next refresh shows the meeting again, at the normal pace.
    recovered = signed_in.get(url, {"failures": 2, "seen": "abc"}, **HTMX)
    assert poll_state(recovered.content.decode())["status"] == "live"
    assert poll_state(recovered.content.decode())["interval"] == 5


def test_other_errors_still_get_the_generic_page(signed_in):
    with mock.patch.object(SessionStore, "load", side_effect=RuntimeError("a bug")):
        response = signed_in.get(reverse("meetings:lookup"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_a_session_that_cannot_be_saved_after_the_page_says_the_database_is_unavailable(
    signed_in, agent_token, fake_connvo
):
    """The database went away while the page was being made: the session (the meeting page
    remembers the deployment) cannot be saved, which Django would answer with a bare 400."""
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    with mock.patch.object(Session, "save", side_effect=OperationalError("server closed")):
        response = signed_in.get(url)
    assert response.status_code == 503
    assert UNAVAILABLE in response.content.decode()


def test_a_session_deleted_meanwhile_keeps_djangos_answer(signed_in, agent_token, fake_connvo):
    """Signed out in another tab while this page was made: not a database outage."""
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    deleted = DatabaseError("Forced update did not affect any rows.")
    with mock.patch.object(Session, "save", side_effect=deleted):
        response = signed_in.get(url)
    assert response.status_code == 400
    assert "database" not in response.content.decode()
