"""Connecting a Connvo account through (fake) WorkOS AuthKit in a real browser, then a meeting page
that keeps working while access tokens are renewed behind it."""

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from meetings.models import StaffToken

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("workos")]


def test_connect_then_look_up_past_the_access_token_lifetime(
    page: Page, live_server, agent, fake_connvo, sign_in, screenshot, settings
):
    settings.CONNVO_POLL_INTERVAL = 1
    sign_in("agent")
    page.get_by_role("link", name="Tokens").click()
    screenshot("20-tokens-not-connected")

    connect_button = page.locator("#deployment-dev").get_by_role(
        "button", name="Connect your Connvo account"
    )
    connect_button.click()

    email = fake_connvo.users["agent"].email
    expect(page.get_by_text(f"Connected to Connvo dev as {email}.")).to_be_visible()
    expect(page.locator("#deployment-dev")).to_contain_text("Connected")
    screenshot("21-tokens-connected")

    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/")
    expect(page.locator("#metrics .badge--active")).to_be_visible()
    # The access token is about to expire: the next refresh renews it without the agent noticing.
    StaffToken.objects.update(expires_at=timezone.now())
    fake_connvo.update_meeting("standup", participantCount=12)

    expect(page.locator('[data-metric="participants"]')).to_have_text("12", timeout=5000)
    assert fake_connvo.refresh_count == 1
    screenshot("22-live-after-renewal")


def test_revoked_session_shows_the_reconnect_banner(
    page: Page, live_server, agent, fake_connvo, sign_in, screenshot, settings
):
    settings.CONNVO_POLL_INTERVAL = 1
    sign_in("agent")
    page.goto(f"{live_server.url}/tokens/")
    connect_button = page.locator("#deployment-dev").get_by_role(
        "button", name="Connect your Connvo account"
    )
    connect_button.click()
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/")

    fake_connvo.revoke_user_sessions("agent")
    StaffToken.objects.update(expires_at=timezone.now())

    banner = page.locator("#live-poller")
    expect(banner).to_contain_text("Your Connvo session has ended", timeout=5000)
    expect(banner.get_by_role("link", name="Reconnect your Connvo account")).to_be_visible()
    screenshot("23-live-session-ended")
