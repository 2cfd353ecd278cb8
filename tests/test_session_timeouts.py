"""How long a sign-in lasts: SESSION_IDLE_TIMEOUT without activity, SESSION_COOKIE_AGE at most.
The meeting page's live refresh is not activity, and a refresh after the end moves the whole page
to the sign-in page.

Every test signs in at a fixed instant on a clock that only moves when the test moves it, so
"later" is exact and no test waits or measures time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from accounts.sessions import ACTIVE_AT, SIGNED_IN_AT
from tests.conftest import PASSWORD

SIGNED_IN = datetime(2027, 12, 31, 20, 0, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(SIGNED_IN, tick=False)]

IDLE = 30 * 60
LIFETIME = 8 * 60 * 60
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def limits(settings):
    settings.SESSION_IDLE_TIMEOUT = IDLE
    settings.SESSION_COOKIE_AGE = LIFETIME


def signed_out(response) -> bool:
    return response.redirect_chain[-1][0].startswith("/accounts/login/?next=")


def test_signing_in_starts_both_clocks(agent):
    client = Client()
    client.post("/accounts/login/", {"username": "agent", "password": PASSWORD})

    assert client.session[SIGNED_IN_AT] == SIGNED_IN.timestamp()
    assert client.session[ACTIVE_AT] == SIGNED_IN.timestamp()


def test_an_idle_agent_is_signed_out_with_a_reason(agent_client: Client, time_machine):
    time_machine.shift(IDLE + 1)

    response = agent_client.get("/", follow=True)

    assert response.redirect_chain[-1][0].startswith("/accounts/login/?next=/")
    assert "signed out after 30 minutes without activity" in response.content.decode()
    assert "_auth_user_id" not in agent_client.session


def test_just_inside_the_idle_limit_the_agent_stays_signed_in(agent_client: Client, time_machine):
    time_machine.shift(IDLE)

    assert agent_client.get("/").status_code == 200


def test_a_page_counts_as_activity(agent_client: Client, time_machine):
    time_machine.shift(IDLE - 60)
    assert agent_client.get("/").status_code == 200
    assert agent_client.session[ACTIVE_AT] == SIGNED_IN.timestamp() + IDLE - 60

    time_machine.shift(IDLE - 60)  # almost an hour after signing in, half an hour after the page

    assert agent_client.get("/").status_code == 200


def test_a_live_refresh_is_not_activity(
    agent_client: Client, agent_token, fake_connvo, time_machine
):
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    time_machine.shift(IDLE - 60)

    response = agent_client.get(path, **HTMX)

    assert response.status_code in (200, 204)
    assert agent_client.session[ACTIVE_AT] == SIGNED_IN.timestamp()
    time_machine.shift(120)
    assert signed_out(agent_client.get("/", follow=True))


def test_opening_a_push_stream_is_not_activity(agent_client: Client, fake_connvo, time_machine):
    """A page live by push reopens its stream by itself (the browser's EventSource) whenever one
    ends: that must not keep an idle sign-in alive either."""
    stream = f"/live/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    time_machine.shift(IDLE - 60)

    agent_client.get(stream, HTTP_ACCEPT="text/event-stream")

    assert agent_client.session[ACTIVE_AT] == SIGNED_IN.timestamp()
    time_machine.shift(120)
    assert signed_out(agent_client.get("/", follow=True))


def test_a_live_refresh_after_the_idle_limit_moves_the_page_to_sign_in(
    agent_client: Client, agent_token, fake_connvo, time_machine
):
    time_machine.shift(IDLE + 1)
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"

    response = agent_client.get(path, **HTMX)

    assert response["HX-Redirect"] == f"/accounts/login/?next={path}"
    assert fake_connvo.call_count == 0


def test_a_sign_in_ends_at_its_absolute_lifetime_however_busy(agent_client: Client, time_machine):
    for _ in range(LIFETIME // (20 * 60)):
        time_machine.shift(20 * 60)
        assert agent_client.get("/").status_code == 200

    time_machine.shift(LIFETIME % (20 * 60) + 1)
    response = agent_client.get("/", follow=True)

    assert signed_out(response)
    assert "sign-ins last at most 8 hours" in response.content.decode()
    assert "_auth_user_id" not in agent_client.session


def test_a_sign_in_from_before_the_limits_starts_counting_now(agent_client: Client, time_machine):
    session = agent_client.session
    del session[SIGNED_IN_AT], session[ACTIVE_AT]
    session.save()
    time_machine.shift(2 * IDLE)

    assert agent_client.get("/").status_code == 200
    assert agent_client.session[SIGNED_IN_AT] == SIGNED_IN.timestamp() + 2 * IDLE
