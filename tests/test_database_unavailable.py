"""When the console's own database fails (read-only, or gone), every page says so plainly with a
503 ("nothing was changed"), a live refresh shows its failing state and backs off, and /readyz
reports a database that cannot be written."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse

from meetings.models import StaffToken
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
MESSAGE = "The console's database is unavailable"


@contextmanager
def database(state: str) -> Iterator[None]:
    """Every query fails ("gone"), or every write fails ("read-only"), as the driver reports it."""

    def fail(execute, sql, params, many, context):
        if state == "gone":
            raise OperationalError("server closed the connection unexpectedly")
        if WRITES.match(sql):
            raise OperationalError("attempt to write a readonly database")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield


def signed_in(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def assert_database_page(response) -> None:
    page = html.unescape(response.content.decode())
    assert response.status_code == 503
    assert MESSAGE in page
    assert "nothing was changed" in page
    assert "Traceback" not in page
    assert response["Retry-After"]


def test_sign_in_on_a_read_only_database(agent):
    client = Client(raise_request_exception=False)

    with database("read-only"):
        response = client.post("/accounts/login/", {"username": "agent", "password": PASSWORD})

    assert_database_page(response)


def test_sign_out_on_a_read_only_database(agent):
    client = signed_in(agent)

    with database("read-only"):
        response = client.post("/accounts/logout/")

    assert_database_page(response)


def test_saving_a_token_on_a_read_only_database_saves_nothing(agent, fake_connvo):
    client = signed_in(agent)

    with database("read-only"):
        response = client.post(
            reverse("meetings:token_save", args=["dev"]),
            {"dev-deployment": "dev", "dev-token": fake_connvo.token_for("agent")},
        )

    assert_database_page(response)
    assert not StaffToken.objects.filter(user=agent).exists()


def test_the_meeting_page_when_the_database_is_gone(agent, agent_token, fake_connvo):
    client = signed_in(agent)
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])

    with database("gone"):
        response = client.get(url)

    assert_database_page(response)


def test_a_refresh_when_the_database_is_gone_shows_the_failing_state_and_backs_off(
    agent, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLL_INTERVAL = 10
    client = signed_in(agent)
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])

    with database("gone"):
        first = client.get(url, {"failures": 0, "seen": ""}, headers={"HX-Request": "true"})
        second = client.get(url, {"failures": 1, "seen": ""}, headers={"HX-Request": "true"})

    assert first.status_code == 200
    fragment = html.unescape(first.content.decode())
    assert 'data-status="failing"' in fragment
    assert MESSAGE in fragment
    assert 'data-interval="20"' in fragment
    assert 'data-interval="40"' in second.content.decode()


@pytest.mark.parametrize("page", ["table", "watching"])
def test_a_tables_refresh_when_the_database_is_gone_says_so_in_words_the_page_shows(
    agent, agent_token, fake_connvo, page
):
    """A triage table's and the watch list's live refresh have no failing state of their own:
    the answer is the database's words as plain text, which the page's live line shows as they
    are (static/js/console.js), not as "the console is busy"."""
    client = signed_in(agent)
    ids = ",".join(fake_connvo.meeting_id(name) for name in ("standup", "retro"))
    name, args = ("meetings:table", ["dev"]) if page == "table" else ("meetings:watching", [])
    url = reverse(name, args=args)

    with database("gone"):
        refresh = client.get(
            url,
            {"ids": ids},
            headers={"HX-Request": "true", "HX-Trigger": "live-poller"},
        )

    assert refresh.status_code == 503
    assert refresh["Content-Type"] == "text/plain; charset=utf-8"
    assert refresh.content.decode() == f"{MESSAGE}; nothing was changed.\n"
    assert int(refresh["Retry-After"]) > 0
    assert refresh["Cache-Control"] == "no-store"


def test_readyz_reports_a_database_that_cannot_be_written(client):
    with database("read-only"):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "read-only"


def test_readyz_still_ready_with_a_writable_database(client):
    assert client.get("/readyz").json()["checks"]["database"] == "ok"
