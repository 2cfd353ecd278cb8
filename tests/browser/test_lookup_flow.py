"""An agent's first day, in a real browser: sign in, save a token, look up meetings."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import dateformat
from playwright.sync_api import Page, expect

from tests.browser.conftest import BROWSER_TIMEZONE

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_in_save_token_and_look_up_a_meeting(
    page: Page, live_server, agent, fake_connvo, sign_in, screenshot
):
    sign_in("agent")
    expect(page.get_by_role("heading", name="Look up a meeting")).to_be_visible()
    screenshot("01-lookup-empty")

    page.get_by_role("link", name="Tokens").click()
    token = fake_connvo.token_for("agent")
    page.locator("#id_dev-token").fill(token)
    page.locator("#deployment-dev").get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Token for dev saved (ending …{token[-4:]})")).to_be_visible()
    expect(page.locator("#deployment-dev")).to_contain_text(fake_connvo.users["agent"].sub)
    assert token not in page.content()
    screenshot("02-tokens-saved")

    page.get_by_role("link", name="Look up").click()
    meeting_id = fake_connvo.meeting_id("standup")
    page.keyboard.press("/")
    page.keyboard.type(f"https://app.connvo.example/meetings/{meeting_id}")
    page.keyboard.press("Enter")

    expect(page).to_have_url(f"{live_server.url}/meetings/dev/{meeting_id}/")
    title = fake_connvo.meetings[meeting_id].fields["title"]
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    metrics = page.locator("#metrics")
    expect(metrics.locator(".badge--active")).to_have_text("▶State: Active")
    expect(metrics.locator(".badge--participant")).to_contain_text("Participant")
    expect(metrics.locator(".badge--joined")).to_contain_text("Joined")
    screenshot("03-meeting-active")

    # Times are in the agent's own time zone, whatever the season (CET or CEST in Paris).
    created = fake_connvo.meetings[meeting_id].fields["createdAt"] / 1000
    in_browser_zone = datetime.fromtimestamp(created, ZoneInfo(BROWSER_TIMEZONE))
    created_text = dateformat.format(in_browser_zone, "D j M Y, H:i T")
    expect(page.locator(".details__list")).to_contain_text(created_text)
    page.get_by_text("Raw JSON from Connvo").click()
    expect(page.locator(".raw pre")).to_contain_text(f'"_id": "{meeting_id}"')


@pytest.mark.parametrize(
    ("label", "role", "presence", "state"),
    [
        ("planning", "host", "invited", "scheduled"),
        ("retro", "observer", "left", "concluded"),
        ("cancelled", "participant", "invited", "cancelled"),
        ("minimal", "participant", "joined", "scheduled"),
    ],
)
def test_badges_for_each_role_presence_and_state(
    page: Page,
    live_server,
    agent,
    agent_token,
    fake_connvo,
    sign_in,
    screenshot,
    label,
    role,
    presence,
    state,
):
    sign_in("agent")
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id(label)}/")

    metrics = page.locator("#metrics")
    expect(metrics.locator(f".badge--{role}")).to_be_visible()
    expect(metrics.locator(f".badge--{presence}")).to_be_visible()
    expect(metrics.locator(f".badge--{state}")).to_be_visible()
    screenshot(f"04-meeting-{label}")


@pytest.mark.parametrize(
    ("setup", "outcome"),
    [
        ("private", "not_visible"),
        ("unknown", "not_found"),
        ("expired", "token_rejected"),
        ("down", "unreachable"),
    ],
)
def test_failure_pages(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot, setup, outcome
):
    sign_in("agent")
    meeting_id = (
        fake_connvo.unknown_meeting_id()
        if setup == "unknown"
        else (fake_connvo.meeting_id("private" if setup == "private" else "standup"))
    )
    if setup == "expired":
        fake_connvo.misbehave("expired_tokens")
    if setup == "down":
        fake_connvo.down()

    page.goto(f"{live_server.url}/meetings/dev/{meeting_id}/")

    expect(page.locator(f'[data-outcome="{outcome}"]')).to_be_visible()
    screenshot(f"05-failure-{outcome}")


def test_bad_input_on_the_lookup_page(page: Page, live_server, agent, sign_in, screenshot):
    sign_in("agent")
    page.get_by_label("Meeting ID or link").fill("meeting 42")
    page.get_by_role("button", name="Look up").click()

    expect(page.get_by_role("alert")).to_contain_text("is not a Connvo meeting ID")
    expect(page.get_by_label("Meeting ID or link")).to_have_value("meeting 42")
    screenshot("06-lookup-bad-input")


def test_narrow_window(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    page.set_viewport_size({"width": 700, "height": 900})
    sign_in("agent")
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('planning')}/")

    expect(page.locator("#metrics .badge--host")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 700, "the page scrolls sideways at 700 px"
    screenshot("07-meeting-700px")


def test_dark_mode_follows_the_system(
    browser, live_server, agent, agent_token, fake_connvo, screenshot
):
    from tests.conftest import PASSWORD

    context = browser.new_context(color_scheme="dark", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("agent")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('planning')}/")

    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 23, 29)"
    screenshot("08-meeting-dark", page)
    context.close()
