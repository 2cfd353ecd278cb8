"""The meeting page's everyday controls in a real browser: Refresh now, the keyboard shortcuts,
stale values marked as such, Copy escalation details, labelled badges and the production stripe."""

import re

import pytest
from playwright.sync_api import Page, expect

from meetings import pasted_tokens

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def meeting_page(page: Page, live_server, agent, agent_token, fake_connvo, sign_in, settings):
    """A meeting page that would not poll again on its own for a minute."""
    settings.CONNVO_POLL_INTERVAL = 60
    settings.CONNVO_POLL_MAX_INTERVAL = 120
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in("agent")

    def open_meeting(label: str, deployment: str = "dev") -> Page:
        page.goto(f"{live_server.url}/meetings/{deployment}/{fake_connvo.meeting_id(label)}/")
        return page

    return open_meeting


def clipboard(page: Page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def test_refresh_now_button_and_r_shortcut_fetch_at_once(meeting_page, fake_connvo, screenshot):
    page = meeting_page("standup")
    participants = page.locator('[data-metric="participants"]')
    expect(participants).to_have_text("5")
    expect(page.locator("#live-poller")).to_contain_text(
        re.compile(r"Live \(polling every \d+ s\): updated (just now|\d+ s ago)")
    )
    screenshot("30-meeting-live-controls")

    fake_connvo.update_meeting("standup", participantCount=9)
    page.get_by_role("button", name="Refresh now").click()
    expect(participants).to_have_text("9")

    # The refreshed live block must be in place (htmx settled it) before the next key.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    fake_connvo.update_meeting("standup", participantCount=12)
    page.locator("body").press("r")
    expect(participants).to_have_text("12")


def test_p_pauses_c_copies_the_id_and_question_mark_lists_the_shortcuts(
    meeting_page, fake_connvo, screenshot
):
    page = meeting_page("standup")

    page.locator("body").press("p")
    expect(page.get_by_role("button", name="Resume live updates")).to_be_visible()
    page.locator("body").press("p")
    expect(page.get_by_role("button", name="Pause live updates")).to_be_visible()

    page.locator("body").press("c")
    expect(page.locator(".meeting__id .copy-status")).to_have_text("Copied to the clipboard")
    assert clipboard(page) == fake_connvo.meeting_id("standup")

    page.locator("body").press("?")
    shortcuts = page.get_by_role("complementary", name="Keyboard shortcuts")
    expect(shortcuts).to_be_visible()
    for key in ("/", "r", "p", "c"):
        expect(
            shortcuts.locator("kbd", has_text=re.compile(rf"^{re.escape(key)}$"))
        ).to_be_visible()
    # A meeting page has no table to move through.
    expect(shortcuts.locator("kbd", has_text=re.compile(r"^j$"))).to_have_count(0)
    screenshot("31-meeting-shortcuts")
    page.locator("body").press("Escape")
    expect(shortcuts).to_be_hidden()


def test_values_are_marked_stale_while_refreshes_fail(meeting_page, fake_connvo, screenshot):
    page = meeting_page("standup")
    # Marked stale by dashed figure edges and muted values (no longer by opacity, which took the
    # labels below AA contrast: tests/browser/test_table_readable.py measures it).
    figure = page.locator("#metric-values .figure").first
    expect(figure).to_have_css("border-left-style", "solid")

    fake_connvo.misbehave("status", status=500)
    page.get_by_role("button", name="Refresh now").click()

    poller = page.locator("#live-poller")
    expect(poller).to_contain_text("Could not refresh")
    expect(poller).to_contain_text(re.compile(r"as of \d\d:\d\d:\d\d, not current"))
    expect(figure).to_have_css("border-left-style", "dashed")
    screenshot("32-meeting-stale-values")

    fake_connvo.reset_behaviour()
    page.get_by_role("button", name="Refresh now").click()
    expect(poller).to_contain_text(re.compile(r"Live \(polling every \d+ s\): updated"))
    expect(figure).to_have_css("border-left-style", "solid")


def test_badges_say_what_they_are_about(meeting_page):
    page = meeting_page("standup")

    expect(page.locator(".badge-group", has_text="Meeting")).to_contain_text("Active")
    expect(page.locator(".badge-group", has_text="You")).to_contain_text("Participant")
    expect(page.locator(".badge-group", has_text="You")).to_contain_text("Joined")


def test_error_page_copies_escalation_details(meeting_page, fake_connvo, screenshot):
    fake_connvo.misbehave("status", status=500)
    page = meeting_page("standup")

    expect(page.get_by_role("heading", name="Connvo had an internal error")).to_be_visible()
    row = page.locator(".action-row")
    expect(row.get_by_role("link", name="Try again")).to_be_visible()
    row.get_by_role("button", name="Copy escalation details").click()
    expect(row.locator(".copy-status")).to_have_text("Copied to the clipboard")
    screenshot("33-error-escalation")

    copied = clipboard(page)
    meeting_id = fake_connvo.meeting_id("standup")
    assert f"Meeting ID: {meeting_id}" in copied
    assert "Deployment: dev" in copied
    assert "Outcome: Connvo server error (server_error)" in copied
    assert "HTTP status from Connvo: 500" in copied
    assert re.search(r"Console request ID: [0-9a-f]{32}", copied)
    assert re.search(r"Time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", copied)


def test_a_production_deployment_is_marked_across_the_page(
    page: Page, live_server, agent, fake_connvo_prod, sign_in, screenshot
):
    pasted_tokens.store_token(
        user=agent, deployment_name="prod", raw_token=fake_connvo_prod.token_for("agent")
    )
    sign_in("agent")
    page.goto(f"{live_server.url}/meetings/prod/{fake_connvo_prod.meeting_id('standup')}/")

    expect(page.locator(".prod-stripe")).to_contain_text("Production")
    screenshot("34-meeting-production")
