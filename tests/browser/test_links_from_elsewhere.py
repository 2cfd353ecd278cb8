"""Links from another site, followed in a real browser: Chromium itself marks the navigation
cross-site, and the console asks before it looks anything up; confirming looks up from the
console's own page. Also a table holding a meeting in a state the console does not know."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.django_db(transaction=True)

ELSEWHERE = "http://wiki.intranet.example/incident"


def _page_elsewhere_linking_to(page: Page, href: str) -> None:
    """A page on another host (served by the browser's own routing, so no network is needed)
    holding one link to the console; clicking it is a real cross-site navigation."""
    page.route(
        ELSEWHERE,
        lambda route: route.fulfill(
            content_type="text/html", body=f'<a id="link" href="{href}">the meetings</a>'
        ),
    )
    page.goto(ELSEWHERE)
    page.locator("#link").click()


def test_a_table_linked_from_elsewhere_asks_first_then_looks_up(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    ids = ",".join(fake_connvo.meeting_id(label) for label in ("standup", "planning"))
    sign_in("agent")
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('retro')}/")
    calls = fake_connvo.call_count

    _page_elsewhere_linking_to(page, f"{live_server.url}/table/dev/?ids={ids}")

    expect(page.get_by_role("heading", name="Open these meetings?")).to_be_visible()
    expect(page.get_by_text("Nothing has been looked up or recorded yet")).to_be_visible()
    assert fake_connvo.call_count == calls
    screenshot("40-open-these-meetings")

    page.get_by_role("button", name="Look up").click()

    expect(page.get_by_role("heading", name="2 meetings")).to_be_visible()
    assert fake_connvo.call_count == calls + 2


def test_the_watch_list_linked_from_elsewhere_asks_first(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    sign_in("agent")
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/")
    page.get_by_role("button", name="Watch").click()
    expect(page.get_by_text("★ Watching")).to_be_visible()
    calls = fake_connvo.call_count

    _page_elsewhere_linking_to(page, f"{live_server.url}/watching/")

    expect(page.get_by_role("heading", name="Open these meetings?")).to_be_visible()
    assert fake_connvo.call_count == calls
    screenshot("41-open-watch-list")
    page.get_by_role("link", name="Open your watch list").click()

    expect(page.locator("#row-0")).to_contain_text("Support Team Daily Standup")


def test_a_table_with_a_meeting_in_an_unknown_state(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    fake_connvo.update_meeting("planning", state="archived")
    ids = ",".join(fake_connvo.meeting_id(label) for label in ("standup", "planning", "private"))
    sign_in("agent")

    page.goto(f"{live_server.url}/table/dev/?ids={ids}")

    expect(page.locator("#table-summary")).to_contain_text(
        "1 active · 1 in another state · 1 not a participant"
    )
    expect(page.locator("#row-1")).to_contain_text("Q3 Product Roadmap Planning")
    expect(page.locator("#row-1")).to_contain_text("archived")
    expect(page.locator("#row-2")).to_contain_text("Not a participant")
    screenshot("42-table-unknown-state")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("42b-table-unknown-state-phone")
