"""How long a sign-in lasts: SESSION_IDLE_TIMEOUT without activity, SESSION_COOKIE_AGE at most.
The meeting page's live refresh is not activity, and a refresh after the end moves the whole page
to the sign-in page."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from accounts.sessions import ACTIVE_AT, SIGNED_IN_AT
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

IDLE = 30 * 60
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def limits(settings):
    settings.SESSION_IDLE_TIMEOUT = IDLE
    settings.SESSION_COOKIE_AGE = 8 * 60 * 60


def set_clock(client: Client, **seconds_ago: float) -> None:
    session = client.session
    now = time.time()
    for key, ago in seconds_ago.items():
        session[{"signed_in": SIGNED_IN_AT, "active": ACTIVE_AT}[key]] = now - ago
    session.save()


def test_signing_in_starts_both_clocks(agent):
    client = Client()
    before = time.time()
    client.post("/accounts/login/", {"username": "agent", "password": PASSWORD})

    assert client.session[SIGNED_IN_AT] >= before
    assert client.session[ACTIVE_AT] == client.session[SIGNED_IN_AT]


def test_an_idle_agent_is_signed_out_with_a_reason(agent_client: Client):
    set_clock(agent_client, active=IDLE + 1)

    response = agent_client.get("/", follow=True)

    assert response.redirect_chain[-1][0].startswith("/accounts/login/?next=/")
    assert "signed out after 30 minutes without activity" in response.content.decode()
    assert "_auth_user_id" not in agent_client.session


def test_a_page_counts_as_activity(agent_client: Client):
    set_clock(agent_client, active=IDLE - 60)

    assert agent_client.get("/").status_code == 200
    assert time.time() - agent_client.session[ACTIVE_AT] < 5


def test_a_live_refresh_is_not_activity(agent_client: Client, agent_token, fake_connvo):
    set_clock(agent_client, active=IDLE - 60)
    active_at = agent_client.session[ACTIVE_AT]

    response = agent_client.get(f"/meetings/dev/{fake_connvo.meeting_id('standup')}/", **HTMX)

    assert response.status_code in (200, 204)
    assert agent_client.session[ACTIVE_AT] == active_at


def test_a_live_refresh_after_the_idle_limit_moves_the_page_to_sign_in(
    agent_client: Client, agent_token, fake_connvo
):
    set_clock(agent_client, active=IDLE + 1)
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"

    response = agent_client.get(path, **HTMX)

    assert response["HX-Redirect"] == f"/accounts/login/?next={path}"
    assert fake_connvo.call_count == 0


def test_a_sign_in_ends_at_its_absolute_lifetime_however_busy(agent_client: Client):
    set_clock(agent_client, signed_in=8 * 60 * 60 + 1, active=5)

    response = agent_client.get("/", follow=True)

    assert "sign-ins last at most 8 hours" in response.content.decode()
    assert "_auth_user_id" not in agent_client.session


def test_a_sign_in_from_before_the_limits_starts_counting_now(agent_client: Client):
    session = agent_client.session
    del session[SIGNED_IN_AT], session[ACTIVE_AT]
    session.save()

    assert agent_client.get("/").status_code == 200
    assert time.time() - agent_client.session[SIGNED_IN_AT] < 5
