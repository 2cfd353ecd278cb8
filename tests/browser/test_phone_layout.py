"""The meeting page on a phone, in a real browser: the lookup box folds behind one line so the
meeting starts on the first screen, and key hints show only where there is a keyboard (the
shortcuts themselves still work)."""

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import BROWSER_TIMEZONE
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def open_as_agent(
    browser: Browser, live_server, agent, agent_token, fake_connvo, settings
) -> Iterator[Callable[..., Page]]:
    """A page in a context of its own (a phone, a touch screen, no JavaScript…), signed in."""
    settings.CONNVO_POLL_INTERVAL = 600
    settings.CONNVO_POLL_MAX_INTERVAL = 600
    contexts: list[BrowserContext] = []

    def open_page(label: str, **context_options) -> Page:
        context_options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(timezone_id=BROWSER_TIMEZONE, **context_options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("agent")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{live_server.url}/")
        page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id(label)}/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def test_on_a_phone_the_lookup_box_folds_and_the_meeting_starts_on_the_first_screen(
    open_as_agent,
):
    page = open_as_agent("standup", viewport=PHONE, is_mobile=True, has_touch=True)

    toggle = page.get_by_text("Look up another meeting")
    expect(toggle).to_be_visible()
    expect(page.get_by_label("Meeting ID or link")).to_be_hidden()
    title = page.get_by_role("heading", level=1)
    expect(title).to_have_text("Support Team Daily Standup")
    # Unfolded, the form alone (label, box, deployment, button) pushed the title to half-way.
    assert title.bounding_box()["y"] < PHONE["height"] * 0.35
    expect(page.locator('[data-metric="participants"]')).to_be_in_viewport()

    toggle.click()
    expect(page.get_by_label("Meeting ID or link")).to_be_visible()
    expect(page.get_by_role("button", name="Look up", exact=True)).to_be_visible()


def test_the_folded_lookup_box_opens_without_javascript(open_as_agent):
    page = open_as_agent("standup", viewport=PHONE, java_script_enabled=False)

    expect(page.get_by_label("Meeting ID or link")).to_be_hidden()
    page.get_by_text("Look up another meeting").click()

    expect(page.get_by_label("Meeting ID or link")).to_be_visible()


def test_on_a_wide_screen_the_whole_form_shows_without_a_toggle(open_as_agent):
    page = open_as_agent("standup")

    expect(page.get_by_label("Meeting ID or link")).to_be_visible()
    expect(page.get_by_text("Look up another meeting")).to_be_hidden()


def test_where_the_mistake_is_in_the_box_it_is_open_on_a_phone(open_as_agent, live_server):
    page = open_as_agent("standup", viewport=PHONE, is_mobile=True, has_touch=True)

    page.goto(f"{live_server.url}/meetings/dev/not-a-meeting-id/")

    expect(page.get_by_role("heading", name="That is not a meeting ID")).to_be_visible()
    expect(page.get_by_label("Meeting ID or link")).to_be_visible()


def test_on_a_phone_what_is_wrong_with_the_box_is_said_under_the_box(
    open_as_agent, live_server, screenshot
):
    page = open_as_agent("standup", viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{live_server.url}/")
    box = page.get_by_label("Meeting ID or link")

    box.fill("nope")
    page.get_by_role("button", name="Look up", exact=True).click()

    error = page.get_by_role("alert")
    expect(error).to_contain_text("“nope” is not a Connvo meeting ID")
    box_bottom = box.bounding_box()["y"] + box.bounding_box()["height"]
    # Right under the box, above the deployment and the button.
    assert box_bottom <= error.bounding_box()["y"] < box_bottom + 30
    button = page.get_by_role("button", name="Look up", exact=True)
    assert error.bounding_box()["y"] < button.bounding_box()["y"]
    screenshot("92-phone-bad-id-under-the-box", page)


def test_not_a_participant_on_a_phone_starts_with_the_problem(open_as_agent):
    page = open_as_agent("private", viewport=PHONE, is_mobile=True, has_touch=True)

    heading = page.get_by_role("heading", name="You are not a participant")
    expect(heading).to_be_visible()
    expect(page.get_by_label("Meeting ID or link")).to_be_hidden()
    assert heading.bounding_box()["y"] < PHONE["height"] * 0.35


def test_a_touch_screen_shows_no_key_hints_until_a_key_is_pressed(open_as_agent, fake_connvo):
    page = open_as_agent("standup", viewport=PHONE, is_mobile=True, has_touch=True)
    hints = page.locator(".shortcut-hint")
    # c on Copy ID, r on Refresh now, / by the (folded) box.
    expect(hints).to_have_count(3)
    expect(page.get_by_role("button", name="Copy ID")).to_be_visible()
    for index in range(3):
        expect(hints.nth(index)).to_be_hidden()

    # A keyboard after all (a tablet's): the shortcuts work, and from then on the hints show.
    page.locator("body").press("/")
    expect(page.get_by_label("Meeting ID or link")).to_be_focused()
    expect(page.locator(".js-copy .shortcut-hint")).to_be_visible()


def test_a_screen_with_a_mouse_shows_the_key_hints(open_as_agent):
    page = open_as_agent("standup")

    expect(page.locator(".js-copy .shortcut-hint")).to_be_visible()
    expect(page.locator(".js-refresh-now .shortcut-hint")).to_be_visible()
    expect(page.locator(".lookup-form .shortcut-hint")).to_be_visible()
