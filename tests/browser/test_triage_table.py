"""Many meetings at once in a real browser: a pasted blob becomes a live triage table, a meeting
is watched from its page and followed on the Watching page, then unwatched."""

import re
import time

import pytest
from django.db import OperationalError
from django.test import RequestFactory
from playwright.sync_api import Page, expect

from connvo_admin.unavailable import database_unavailable
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_polling(settings):
    settings.CONNVO_POLL_INTERVAL = 1
    settings.CONNVO_POLL_MAX_INTERVAL = 4
    settings.CONNVO_LOOKUPS_PER_MINUTE = 600


def test_blob_to_live_table_to_watch_list_and_back(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot, fast_polling
):
    standup, planning, private = (
        fake_connvo.meeting_id(label) for label in ("standup", "planning", "private")
    )
    blob = (
        f"[10:32:01] ERROR webrtc: join failed meeting={standup} user=bob\n"
        f"[10:32:04] WARN reconnect loop meetingId={planning}\n"
        f"customer says: https://app.connvo.example/meetings/{private} is broken, also {standup}\n"
        "and JD7F3S4H7YVXQRW0C8H5K3X2KN6R1M9A (from a screenshot)"
    )
    sign_in("agent")

    box = page.get_by_label("Meeting ID or link")
    box.fill(blob)
    box.press("Enter")

    expect(page.get_by_role("heading", name="3 meetings")).to_be_visible()
    expect(page.locator(".message--warning")).to_contain_text("JD7F3S4H7YVXQRW0C8H5K3X2KN6R1M9A")
    expect(page.locator("#table-summary")).to_contain_text(
        "1 active · 1 scheduled · 1 not a participant"
    )
    assert standup in page.url and planning in page.url and private in page.url
    page.evaluate("window.__notReloaded = true")
    screenshot("30-table-from-blob")

    # Live: one row changes; the table updates in place and marks the change.
    calls = fake_connvo.call_count
    fake_connvo.update_meeting("standup", participantCount=8)
    participants = page.locator('#row-0 [data-cell="participants"]')
    expect(participants).to_have_text("8", timeout=5000)
    expect(participants).to_have_class("num is-changed")
    assert page.evaluate("window.__notReloaded") is True
    # The not-visible meeting is never asked again: every refresh asks the other two.
    assert all(call.json["args"]["meetingId"] != private for call in fake_connvo.calls[calls:])
    screenshot("31-table-live-updated")

    # Keyboard: ? lists what works on a table (j/k through the rows, not "copy the meeting ID").
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("?")
    shortcuts = page.get_by_role("complementary", name="Keyboard shortcuts")
    for key in ("j", "k", "Enter", "r", "/"):
        expect(
            shortcuts.locator("kbd", has_text=re.compile(rf"^{re.escape(key)}$"))
        ).to_be_visible()
    expect(shortcuts.locator("kbd", has_text=re.compile(r"^c$"))).to_have_count(0)
    screenshot("31b-table-shortcuts")
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()

    # j moves to the first row, Enter opens its meeting.
    page.keyboard.press("j")
    expect(page.locator("#row-0 .js-row-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Support Team Daily Standup")).to_be_visible()

    page.get_by_role("button", name="Watch").click()
    expect(page.get_by_text("★ Watching")).to_be_visible()
    page.get_by_role("link", name="Watching").click()

    expect(page.get_by_role("heading", name="Watching")).to_be_visible()
    expect(page.locator("#row-0")).to_contain_text("Support Team Daily Standup")
    fake_connvo.update_meeting("standup", activeWebRTCSessions=7)
    expect(page.locator('#row-0 [data-cell="webrtc"]')).to_have_text("7", timeout=5000)
    screenshot("32-watching")

    # The meeting ends: its row says so and is not asked again; the next time the page is
    # opened it is listed with the finished ones.
    fake_connvo.update_meeting("standup", state="concluded")
    expect(page.locator("#row-0 .badge--concluded")).to_be_visible(timeout=5000)
    calls = fake_connvo.call_count
    page.wait_for_timeout(2500)
    assert fake_connvo.call_count == calls
    page.reload()
    finished = page.locator(".triage__finished")
    expect(finished).to_contain_text("Support Team Daily Standup")
    screenshot("33-watching-finished")

    finished.get_by_role("button", name="Unwatch").click()
    expect(page.get_by_text("not watching any meeting")).to_be_visible()


def test_table_with_mixed_outcomes(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot, fast_polling
):
    labels = ("standup", "planning", "private", "retro", "cancelled", "onboarding", "all-hands")
    ids = ",".join(fake_connvo.meeting_id(label) for label in labels)
    unknown = fake_connvo.unknown_meeting_id()
    sign_in("agent")

    page.goto(f"{live_server.url}/table/dev/?ids={ids},{unknown}")

    expect(page.locator("#table-summary")).to_contain_text(
        "2 active · 2 scheduled · 1 concluded · 1 cancelled · 1 not a participant"
        " · 1 no such meeting"
    )
    expect(page.locator("#row-2")).to_contain_text("Not a participant")
    expect(page.locator("#row-7")).to_contain_text("No such meeting")
    # Refused as designed, in the summary as in its row: not in the red of what needs doing.
    summary = page.locator("#table-summary")
    hidden = summary.locator('[data-group="not_visible"]')
    expect(hidden).to_have_css("color", summary.evaluate("el => getComputedStyle(el).color"))
    page.locator("#row-2").get_by_role("link", name="what to do").click()
    expect(page.locator('[data-outcome="not_visible"]')).to_be_visible()
    page.go_back()

    page.get_by_label("Show").select_option("active")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".triage__row:visible")).to_have_count(2)
    screenshot("34-table-filtered")


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("35-table-dark", {"color_scheme": "dark", "viewport": {"width": 1280, "height": 900}}),
        ("36-table-390px", {"viewport": {"width": 390, "height": 844}}),
    ],
)
def test_table_looks_right_dark_and_narrow(
    browser, live_server, agent, agent_token, fake_connvo, screenshot, fast_polling, name, options
):
    labels = ("standup", "planning", "private", "retro", "cancelled")
    ids = ",".join(fake_connvo.meeting_id(label) for label in labels)
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("agent")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/table/dev/?ids={ids}")

    expect(page.locator("#table-summary")).to_contain_text("1 not a participant")
    # The page itself never scrolls sideways; only the table's own box may.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= options["viewport"]["width"]
    # Narrow, the note on the address is a line of its own, without the "·" that joins it to CSV.
    note = page.locator(".triage__links .muted").inner_text()
    assert note.startswith("This page's address") == (width < 760), note
    screenshot(name, page)
    context.close()


def test_an_unchanged_refresh_moves_the_table_s_checked_time(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot, fast_polling
):
    """An unchanged refresh is answered 204, which htmx ignores: the page itself says the values
    were confirmed just now (the live line is the meeting page's, templates/meetings/
    _live_poller.html). The table's once said the time it was drawn, for as long as nothing
    changed."""
    ids = ",".join(fake_connvo.meeting_id(label) for label in ("standup", "planning", "private"))
    sign_in("agent")
    page.goto(f"{live_server.url}/table/dev/?ids={ids}")
    checked = page.locator("#live-poller .js-checked")
    drawn = checked.get_attribute("datetime")
    expect(checked).to_have_text("just now")

    def is_refresh(response) -> bool:
        return "/table/dev/" in response.url and response.request.headers.get("hx-request")

    # Past the 5 s after which the live line would say "6 s ago" had nothing moved it.
    deadline = time.monotonic() + 6.5
    while time.monotonic() < deadline:
        with page.expect_response(is_refresh, timeout=5000) as refresh:
            pass
        assert refresh.value.status == 204
    page.wait_for_timeout(300)  # the last answer handled

    expect(checked).to_have_text("just now")
    confirmed = checked.get_attribute("datetime")
    # Confirmed by the browser's clock, which on a test clock (make test's summer day) is not the
    # server's that drew the page: just now by the first, and not when the page was drawn.
    assert confirmed != drawn
    assert abs(page.evaluate("(at) => Date.now() - Date.parse(at)", confirmed)) < 2000
    expect(checked).to_have_attribute(
        "title", re.compile(r"^Checked with Connvo at \d\d:\d\d:\d\d$")
    )
    assert checked.get_attribute("title")[-8:] != page.evaluate(
        "(at) => new Date(at).toTimeString().slice(0, 8)", drawn
    )
    expect(page.locator("#live-poller")).to_contain_text(
        "Live (polling every 1 s): updated just now"
    )
    screenshot("37-table-unchanged-refreshes")


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("database", "The console's database is unavailable; nothing was changed."),
        ("proxy", "The console did not answer."),
    ],
)
def test_a_table_refresh_answered_503_says_why_and_waits(
    page: Page,
    live_server,
    agent,
    agent_token,
    fake_connvo,
    sign_in,
    screenshot,
    fast_polling,
    answer,
    said,
):
    """A table's live refresh answered 503 + Retry-After: by the console when its database is
    unavailable (its words, as the server sends them for a page's own request), or by something
    in front of it (a proxy's HTML page, words the page cannot show). The live line says which,
    and when it will check again; it used to say "the console is busy" for both."""
    ids = ",".join(fake_connvo.meeting_id(label) for label in ("standup", "planning"))
    sign_in("agent")
    page.clock.install()
    refreshes: list[str] = []

    def respond(route) -> None:
        if route.request.headers.get("hx-request") != "true":
            route.continue_()
            return
        refreshes.append(route.request.url)
        if answer == "database":
            request = RequestFactory().get(route.request.url, headers={"HX-Request": "true"})
            failed = database_unavailable(request, OperationalError("gone"))
            headers = dict(failed.items()) | {"Retry-After": "40"}
            route.fulfill(status=failed.status_code, headers=headers, body=failed.content)
        else:
            route.fulfill(
                status=503,
                headers={"Retry-After": "40", "Content-Type": "text/html"},
                body="<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
            )

    page.route(re.compile(r".*/table/dev/\?.*"), respond)
    page.goto(f"{live_server.url}/table/dev/?ids={ids}")
    expect(page.locator("#live-poller")).to_have_attribute("data-status", "live")

    page.clock.run_for(1500)  # past the first refresh (fast_polling: every second)
    expect(page.locator("#live-poller .js-live-text")).to_have_text(
        f"{said} The next check is in 40 s."
    )
    expect(page.locator("#live-poller")).to_have_class(re.compile(r"\blive--held\b"))
    assert len(refreshes) == 1
    expect(page.locator("tbody tr")).to_have_count(2)  # the rows stay as they were
    screenshot(f"38-table-refresh-503-{answer}")


def test_a_filtered_table_follows_meetings_into_and_out_of_its_filter(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot, fast_polling
):
    """Show: active. A meeting that starts appears in its place, one that ends goes, and j/k
    move through the rows shown only."""
    labels = ("standup", "planning", "onboarding")
    ids = ",".join(fake_connvo.meeting_id(label) for label in labels)
    sign_in("agent")
    page.goto(f"{live_server.url}/table/dev/?ids={ids}&show=active")
    rows = page.locator("tr.triage__row:visible")
    expect(rows).to_have_count(2)

    fake_connvo.update_meeting("planning", state="active")
    fake_connvo.update_meeting("standup", state="concluded")

    expect(rows.locator(".triage__id")).to_have_text(
        [fake_connvo.meeting_id("planning"), fake_connvo.meeting_id("onboarding")], timeout=8000
    )
    page.locator("body").press("j")
    page.keyboard.press("j")
    expect(page.locator("#row-2 .js-row-link")).to_be_focused()
    screenshot("40-table-filter-followed")
