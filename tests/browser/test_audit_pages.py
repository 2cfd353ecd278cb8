"""An auditor's visit, in a real browser: the log, a filter, a meeting's history, a staff
member's activity, one entry, an export, and the narrow layout."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from audit import chain, seeding
from audit.models import Action, ChainCheckpoint, Via
from connvo_admin.outcomes import Outcome
from tests.audit_patterns import lookup

pytestmark = pytest.mark.django_db(transaction=True)

OLDER, NEWER = re.compile("^Older"), re.compile("Newer$")
MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
OTHER = "k57b2xq8c3n4m5p6r7s8t9v0w1y2z3a4"


@pytest.fixture
def history(audit_entry) -> None:
    """A morning's worth of entries, verified."""
    start = datetime.now(UTC) - timedelta(hours=3)
    rows = [
        dict(username="agent", action=Action.SIGN_IN),
        dict(
            username="agent",
            meeting_id=MEETING,
            deployment="prod",
            via=Via.PAGE,
            outcome="found",
            http_status=200,
            latency_ms=84,
        ),
        dict(
            username="agent",
            meeting_id=MEETING,
            deployment="prod",
            via=Via.REFRESH,
            outcome="found",
            http_status=200,
            latency_ms=61,
        ),
        dict(
            username="bob",
            meeting_id=MEETING,
            deployment="prod",
            via=Via.PAGE,
            outcome="not_visible",
            http_status=200,
            latency_ms=90,
            connvo_request_id="b7e1c9",
        ),
        dict(
            username="bob",
            meeting_id=OTHER,
            deployment="dev",
            via=Via.CLI,
            outcome="found",
            http_status=200,
            latency_ms=70,
        ),
        dict(
            username="mallory", action=Action.SIGN_IN_FAILED, detail="Wrong username or password."
        ),
        dict(
            username="outsider",
            action=Action.PERMISSION_DENIED,
            http_status=403,
            detail="GET /tokens/",
        ),
        dict(username="agent", action=Action.TOKEN_REPLACED, deployment="prod"),
    ]
    for n, fields in enumerate(rows):
        audit_entry(at=start + timedelta(minutes=7 * n), **fields)
    chain.record_verification(chain.verify(), duration_ms=12)


def test_auditor_reads_filters_and_exports_the_log(
    page: Page, live_server, auditor, history, sign_in, screenshot
):
    sign_in("auditor")
    # Sign-in lands an auditor on the audit log (the lookup start page is for Support).
    expect(page).to_have_url(f"{live_server.url}/audit/")
    page.get_by_role("link", name="Audit log").click()

    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    # The history, then the auditor's sign-in and first page view: not verified yet.
    expect(page.locator(".chain-status")).to_contain_text("8 of the log's 10 entries, OK on")
    rows = page.locator(".audit-table tbody tr")
    # The history less its refresh, plus the auditor's own sign-in, with no refusal.
    expect(rows).to_have_count(8)
    expect(rows.nth(0)).to_contain_text("Signed in")
    expect(rows.nth(0)).to_contain_text("auditor")
    screenshot("audit-01-log")

    page.get_by_label("Staff member").fill("bob")
    page.get_by_label("Outcome").select_option("not_visible")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(Outcome.NOT_VISIBLE.label)
    screenshot("audit-02-filtered")

    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    exported = download.value.path().read_text()
    assert exported.splitlines()[0].startswith("id,at,actor_username,action")
    assert len(exported.splitlines()) == 2
    assert "bob" in exported

    rows.first.get_by_role("link", name=MEETING[:13]).click()
    expect(page.get_by_role("heading", name=f"Who looked at meeting {MEETING}")).to_be_visible()
    viewers = page.locator(".audit-table--summary tbody tr")
    expect(viewers).to_have_count(2)
    expect(viewers.first).to_contain_text("bob")
    screenshot("audit-03-meeting")

    viewers.last.get_by_role("link", name="agent").click()
    expect(page.get_by_role("heading", name="Activity of agent")).to_be_visible()
    screenshot("audit-04-staff")

    page.locator(".audit-table tbody tr").first.locator("td").first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Token replaced")).to_be_visible()
    screenshot("audit-05-entry")


def test_refreshes_are_one_click_away(page: Page, live_server, auditor, history, sign_in):
    sign_in("auditor")
    page.goto(f"{live_server.url}/audit/meetings/{MEETING}/")
    rows = page.locator(".card--table .audit-table tbody tr")
    expect(rows).to_have_count(2)

    page.get_by_label("Include live refreshes").check()
    page.get_by_role("button", name="Filter").click()

    expect(rows).to_have_count(3)
    expect(page.get_by_text("Live refreshes are hidden one by one")).to_have_count(0)


def test_older_pages(settings, page: Page, live_server, auditor, audit_entry, sign_in):
    settings.AUDIT_PAGE_SIZE = 10
    for n in range(25):
        audit_entry(username="agent", meeting_id=f"meeting{n:02d}")
    sign_in("auditor")
    page.goto(f"{live_server.url}/audit/?action=lookup")
    rows = page.locator(".audit-table tbody tr")

    expect(rows.first).to_contain_text("meeting24"[:14])
    page.get_by_role("link", name=OLDER).click()
    page.get_by_role("link", name=OLDER).click()
    expect(rows).to_have_count(5)
    expect(page.get_by_role("link", name=OLDER)).to_have_count(0)
    page.get_by_role("link", name=NEWER).click()
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("meeting14")


def test_narrow_window(page: Page, live_server, auditor, history, sign_in, screenshot):
    page.set_viewport_size({"width": 700, "height": 900})
    sign_in("auditor")
    page.goto(f"{live_server.url}/audit/")

    expect(page.locator(".audit-table tbody tr").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 700, "the audit log scrolls sideways at 700 px"
    screenshot("audit-06-log-700px")

    page.goto(f"{live_server.url}/audit/meetings/{MEETING}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 700
    screenshot("audit-07-meeting-700px")


def test_chain_health_and_the_auditors_own_trail(
    page: Page, live_server, auditor, history, sign_in, screenshot
):
    chain.checkpoint_now()
    sign_in("auditor")

    page.goto(f"{live_server.url}/audit/")
    health = page.get_by_role("region", name="Chain health")
    expect(health).to_contain_text("Chain verified: OK")
    expect(health).to_contain_text("witnessed outside the database")
    screenshot("audit-12-chain-health")
    page.emulate_media(color_scheme="dark")
    screenshot("audit-13-chain-health-dark")
    page.emulate_media(color_scheme="light")

    # The auditor's own page views are in the log, one action filter away.
    page.get_by_label("Action").select_option("audit_viewed")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator(".audit-table tbody tr")
    expect(rows.first).to_contain_text("Audit log viewed")
    expect(rows.first).to_contain_text("auditor")
    expect(rows.first).to_contain_text("Audit log, filter: everything")
    screenshot("audit-14-audit-views")

    # The checkpoint timer stopped an hour ago: the panel says so.
    ChainCheckpoint.objects.update(at=datetime.now(UTC) - timedelta(hours=1))
    page.reload()
    expect(health).to_contain_text("Check that the audit_checkpoint timer still runs")
    screenshot("audit-15-checkpoint-stale")


def test_overview_at_390_px_with_copyable_ids(
    page: Page, live_server, auditor, history, sign_in, screenshot
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in("auditor")
    page.goto(f"{live_server.url}/audit/")

    overview = page.locator(".audit-overview")
    expect(overview).to_contain_text("entries match")
    expect(overview.locator(".audit-chart__bucket")).to_have_count(8)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot("audit-08-overview-390px")

    overview.get_by_role("button", name=f"Copy {MEETING}").click()
    assert page.evaluate("navigator.clipboard.readText()") == MEETING
    overview.get_by_role("link", name="bob").click()
    expect(page.get_by_label("Staff member")).to_have_value("bob")


def test_a_long_range_is_charted_per_day_from_the_day_summary(
    page: Page, live_server, auditor, sign_in, screenshot
):
    # Thirty days of lookups, more on later days; the range starts forty days back, so every
    # one of them is in it whatever the browser's time zone.
    now = datetime.now(UTC)
    entries = [
        lookup("agent", now - timedelta(days=days, hours=hour), MEETING)
        for days in range(1, 31)
        for hour in range(0, 31 - days, 3)
    ]
    seeding.append(sorted(entries, key=lambda entry: entry["at"]))
    since = (now - timedelta(days=40)).date()
    sign_in("auditor")

    for name, width in (
        ("audit-16-overview-40-days", 1280),
        ("audit-18-overview-40-days-390px", 390),
    ):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/audit/?since={since.isoformat()}")
        overview = page.locator(".audit-overview")
        # Every entry is a lookup but the auditor's own sign-in.
        expect(overview).to_contain_text(
            f"Lookups per day: {len(entries)} in the {len(entries) + 1} matching entries"
        )
        assert overview.locator(".audit-chart__bucket").count() >= 40
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(name)
        if width == 1280:
            page.emulate_media(color_scheme="dark")
            screenshot("audit-17-overview-40-days-dark")
            page.emulate_media(color_scheme="light")


# The room a select's own arrow takes beside its text (Chromium draws it inside the box).
SELECT_ARROW_PX = 24
TEXT_AND_ROOM = """select => {
    const style = getComputedStyle(select);
    const context = document.createElement("canvas").getContext("2d");
    context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const text = context.measureText(select.options[select.selectedIndex].text).width;
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    return [text, select.clientWidth - padding];
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_the_outcome_filter_shows_a_label_whole(
    page: Page, live_server, auditor, sign_in, screenshot, width
):
    longest = max((o for o in Outcome if o.handling.recorded), key=lambda o: len(o.label))
    page.set_viewport_size({"width": width, "height": 900})
    sign_in("auditor")
    page.goto(f"{live_server.url}/audit/?outcome={longest.value}")

    select = page.get_by_label("Outcome")
    expect(select.locator("option:checked")).to_have_text(longest.label)
    text, room = select.evaluate(TEXT_AND_ROOM)
    assert text + SELECT_ARROW_PX <= room, f"{longest.label!r} is cut at {width} px"
    screenshot(f"audit-19-outcome-filter-{width}px")
