"""The live meeting page in a real browser: it updates without a reload, stops when the meeting
ends, pauses on request, and survives Connvo failing."""

import re
import time

import pytest
from playwright.sync_api import Page, expect

from connvo_admin.capacity import too_busy
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live_page(page: Page, live_server, agent, agent_token, fake_connvo, sign_in, settings):
    settings.CONNVO_POLL_INTERVAL = 1
    settings.CONNVO_POLL_MAX_INTERVAL = 4
    sign_in("agent")

    def open_meeting(label: str) -> Page:
        page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id(label)}/")
        # A marker that a full reload would wipe out.
        page.evaluate("window.__notReloaded = true")
        return page

    return open_meeting


def calls_during(fake, seconds: float) -> int:
    before = fake.call_count
    time.sleep(seconds)
    return fake.call_count - before


def test_metrics_update_without_reload(live_page, fake_connvo, screenshot):
    page = live_page("standup")
    participants = page.locator('[data-metric="participants"]')
    expect(participants).to_have_text("5")

    fake_connvo.update_meeting("standup", participantCount=8, activeWebRTCSessions=6)

    expect(participants).to_have_text("8", timeout=5000)
    expect(page.locator('[data-metric="webrtc-sessions"]')).to_have_text("6")
    expect(participants).to_have_class("is-changed")
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#metric-values")).to_have_attribute("aria-live", "polite")
    screenshot("10-live-updated")


def test_unchanged_polls_leave_the_page_live_and_a_later_change_shows(
    live_page, fake_connvo, screenshot
):
    """An unchanged refresh answers 204, which htmx ignores; an empty 200 would replace the poller
    and the page would never update again."""
    page = live_page("standup")
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    participants = page.locator('[data-metric="participants"]')
    expect(participants).to_have_text("5")

    def is_refresh(response) -> bool:
        return path in response.url and response.request.headers.get("hx-request") == "true"

    for _ in range(2):
        with page.expect_response(is_refresh, timeout=5000) as refresh:
            pass
        assert refresh.value.status == 204
    expect(page.locator("#live-poller")).to_contain_text("every 1 s")

    fake_connvo.update_meeting("standup", participantCount=9)

    expect(participants).to_have_text("9", timeout=5000)
    assert page.evaluate("window.__notReloaded") is True
    screenshot("10b-live-updated-after-quiet-polls")


def test_a_new_title_and_description_show_while_the_page_is_open(
    live_page, fake_connvo, screenshot
):
    page = live_page("standup")
    expect(page.locator("#meeting-title")).to_have_text("Support Team Daily Standup")
    page.get_by_text("Raw JSON from Connvo").click()

    fake_connvo.update_meeting("standup", title="Standup (moved)", description="Now at 10:30")

    expect(page.locator("#meeting-title")).to_have_text("Standup (moved)", timeout=5000)
    expect(page).to_have_title("Standup (moved) · Connvo Support Console")  # the tab's, too
    expect(page.locator("#meeting-details")).to_contain_text("Now at 10:30")
    expect(page.locator("#raw-json")).to_contain_text('"title": "Standup (moved)"')
    expect(page.locator("details.raw")).to_have_attribute("open", "")  # still as the agent left it
    assert page.evaluate("window.__notReloaded") is True
    screenshot("10d-live-title-and-details-changed")


def test_a_drift_that_starts_while_the_page_is_open_brings_its_notice(
    live_page, fake_connvo, screenshot
):
    page = live_page("standup")
    notice = page.locator("#drift-notice [data-drift]")
    expect(page.locator('[data-metric="participants"]')).to_have_text("5")
    expect(notice).to_have_count(0)

    fake_connvo.update_meeting("standup", state="archived")

    expect(notice).to_contain_text("does not fully know yet", timeout=5000)
    expect(notice).to_contain_text("archived")
    screenshot("10c-live-drift-arrived")

    fake_connvo.update_meeting("standup", state="active")

    expect(notice).to_have_count(0, timeout=5000)
    assert page.evaluate("window.__notReloaded") is True


def test_the_wait_before_the_next_try_counts_down(live_page, fake_connvo):
    page = live_page("standup")
    fake_connvo.misbehave("status", status=500)
    wait = page.locator("#live-poller [data-retry-in]")

    # The waits drawn are 2 s, then 4 s (1 s doubled, up to the cap): 3 s only by counting down.
    expect(wait).to_have_text("in 3 s", timeout=10_000)

    page.get_by_role("button", name="Pause live updates").click()
    expect(wait).to_have_text("once you resume live updates")


def test_polling_stops_when_the_meeting_concludes(live_page, fake_connvo, screenshot):
    page = live_page("standup")

    fake_connvo.update_meeting("standup", state="concluded")

    expect(page.locator("#metrics .badge--concluded")).to_be_visible(timeout=5000)
    expect(page.locator("#live-poller")).to_contain_text("live updates have stopped")
    assert calls_during(fake_connvo, 3) == 0
    screenshot("11-live-concluded")


def test_pause_and_resume(live_page, fake_connvo, screenshot):
    page = live_page("standup")
    toggle = page.get_by_role("button", name="Pause live updates")

    toggle.click()

    expect(page.get_by_role("button", name="Resume live updates")).to_be_visible()
    expect(page.locator("#live-poller")).to_contain_text("Paused")
    screenshot("12-live-paused")
    fake_connvo.update_meeting("standup", participantCount=11)
    assert calls_during(fake_connvo, 2.5) == 0
    expect(page.locator('[data-metric="participants"]')).to_have_text("5")

    page.get_by_role("button", name="Resume live updates").click()

    expect(page.locator('[data-metric="participants"]')).to_have_text("11", timeout=3000)
    expect(page.locator("#live-poller")).to_contain_text(
        re.compile(r"Live \(polling every \d+ s\): updated")
    )


def test_connvo_failing_backs_off_then_recovers(live_page, fake_connvo, screenshot):
    page = live_page("standup")
    fake_connvo.misbehave("status", status=500)

    expect(page.locator("#live-poller")).to_contain_text("Could not refresh", timeout=5000)
    expect(page.locator('[data-metric="participants"]')).to_have_text("5")  # last values stay
    screenshot("13-live-failing")
    fake_connvo.reset_behaviour()
    fake_connvo.update_meeting("standup", participantCount=7)

    expect(page.locator('[data-metric="participants"]')).to_have_text("7", timeout=10000)
    expect(page.locator("#live-poller")).to_contain_text(
        re.compile(r"Live \(polling every \d+ s\): updated")
    )


def test_token_rejected_while_polling_shows_a_banner(live_page, fake_connvo, screenshot):
    page = live_page("standup")

    fake_connvo.misbehave("expired_tokens")

    banner = page.locator("#live-poller")
    expect(banner).to_contain_text("Live updates stopped", timeout=5000)
    expect(banner.get_by_role("link", name="Update your token")).to_be_visible()
    screenshot("14-live-token-rejected")


def test_expired_session_sends_the_page_to_sign_in(live_page, page: Page, fake_connvo):
    live_page("standup")

    page.context.clear_cookies()

    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="), timeout=5000)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_without_javascript_the_page_offers_a_reload(
    browser, live_server, agent, agent_token, fake_connvo, screenshot
):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("agent")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/")

    expect(page.get_by_role("link", name="Reload page")).to_be_visible()
    expect(page.get_by_role("button", name="Pause live updates")).to_be_hidden()
    screenshot("15-live-without-javascript", page)
    context.close()


def test_a_busy_console_makes_the_page_wait_as_told(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, settings, screenshot
):
    """The console answers a refresh 503 + Retry-After when it is too busy (capacity.py;
    stood in for here by the browser's own network layer): the page sends nothing more until
    then, whatever its poll timer says, then resumes. The page's clock is Playwright's, so the
    test waits for no real time."""
    settings.CONNVO_POLL_INTERVAL = 1
    sign_in("agent")
    page.clock.install()
    refreshes: list[str] = []

    def answer(route) -> None:
        refreshes.append(route.request.url)
        if len(refreshes) == 1:
            busy = too_busy()  # the console's own answer, as the shedding wrapper sends it
            headers = dict(busy.items()) | {"Retry-After": "30"}
            route.fulfill(status=busy.status_code, headers=headers, body=busy.content)
        else:
            route.continue_()

    page.route(re.compile(r".*/meetings/dev/[^/]+/\?.*"), answer)
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/")
    expect(page.locator("#live-poller")).to_have_attribute("data-status", "live")

    page.clock.run_for(1500)
    expect(page.locator("#live-poller .js-live-text")).to_have_text(
        "The console is busy. The next check is in 30 s."
    )
    assert len(refreshes) == 1
    screenshot("12-live-console-busy")

    for _ in range(25):  # 25 more seconds of poll timer, inside the 30 s the console asked for
        page.clock.run_for(1000)
    page.wait_for_timeout(500)  # any refresh sent would have reached the route by now
    assert len(refreshes) == 1

    for _ in range(6):
        page.clock.run_for(1000)
    expect(page.locator("#live-poller .js-live-text")).to_contain_text(
        re.compile(r"Live \(polling every \d+ s\): updated")
    )
    assert len(refreshes) >= 2
