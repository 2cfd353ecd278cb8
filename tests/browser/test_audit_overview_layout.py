"""Where things are on the audit log and its overview (#23), in a real browser: the filter above
the overview it filters, the filters in force as chips that each remove one (without JavaScript
too), and the chart's scale and split by outcome; in light, dark and at 390 px."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import dateformat
from playwright.sync_api import Browser, Page, expect

from audit import seeding
from audit.models import Action
from tests.audit_patterns import lookup
from tests.browser.conftest import BROWSER_TIMEZONE, save_screenshot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

MEETINGS = [f"k57b2xq8c3n4m5p6r7s8t9v0w1y2{n:04d}" for n in range(40)]


@pytest.fixture
def week(db) -> None:
    """A week of lookups by three agents, most found, some not; and in the last hours one agent
    probing meetings they are not a participant of (a "worth a look" flag)."""
    now = datetime.now(UTC)
    entries = []
    for day in range(1, 7):
        for n in range(4 + day):
            at = now - timedelta(days=day, hours=n % 9, minutes=n)
            outcome = "not_visible" if n % 5 == 0 else "found"
            entries.append(lookup(("alice", "bob")[n % 2], at, MEETINGS[n], outcome=outcome))
    for n in range(30):
        at = now - timedelta(hours=2, minutes=n)
        entries.append(lookup("mallory", at, MEETINGS[n], outcome="not_visible"))
    seeding.append(sorted(entries, key=lambda entry: entry["at"]))


@pytest.fixture
def open_as_auditor(browser: Browser, live_server, auditor):
    """A page signed in as the auditor, in a browser context of its own (colour scheme, width,
    JavaScript on or off); a script error or CSP violation on it fails the test."""
    contexts = []

    def open_page(*, color_scheme="light", width=1280, javascript=True) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": 900},
            color_scheme=color_scheme,
            timezone_id=BROWSER_TIMEZONE,
            java_script_enabled=javascript,
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        contexts.append((context, errors))
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("auditor")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/audit/")
        return page

    yield open_page
    for context, errors in contexts:
        context.close()
        assert not errors, errors


def shoot(page: Page, name: str) -> None:
    """The whole page, and its top (the part that changed) on its own, easier to look at."""
    save_screenshot(page, name, full_page=True)
    bottom = box(page, ".audit-overview")
    width = page.viewport_size["width"]
    save_screenshot(
        page,
        f"{name}-top",
        full_page=True,
        clip={"x": 0, "y": 0, "width": width, "height": bottom["y"] + bottom["height"] + 16},
    )


VIEWS = (("light", 1280), ("dark", 1280), ("light", 390))


def views(page: Page):
    """The signed-in page in each of VIEWS in turn, switched as the system's colour setting or
    the window changing would, and reloaded: yields (scheme, width)."""
    for scheme, width in VIEWS:
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        yield scheme, width


def box(page: Page, selector: str) -> dict:
    found = page.locator(selector).bounding_box()
    assert found, f"{selector} is not shown"
    return found


def test_the_filter_sits_above_the_overview_it_filters(open_as_auditor, week):
    page = open_as_auditor()
    for scheme, width in views(page):
        expect(page.get_by_role("heading", name="Worth a look")).to_be_visible()
        expect(page.locator(".audit-flag")).not_to_have_count(0)
        flags, form = box(page, ".audit-flags"), box(page, ".audit-filters")
        overview, entries = box(page, ".audit-overview"), box(page, ".card--table")
        # Top to bottom: the last day's flags (the filter does not change them), the filter, then
        # what it drives.
        assert flags["y"] + flags["height"] <= form["y"]
        assert form["y"] + form["height"] <= overview["y"]
        assert overview["y"] + overview["height"] <= entries["y"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shoot(page, f"overview-log-{scheme}-{width}px")


@pytest.mark.parametrize("javascript", [True, False])
def test_chips_name_the_filters_in_force_and_each_removes_only_itself(
    open_as_auditor, live_server, week, javascript
):
    page = open_as_auditor(javascript=javascript)
    since = (datetime.now(UTC) - timedelta(days=3)).date()
    page.goto(f"{live_server.url}/audit/?staff=alice&outcome=found&since={since.isoformat()}")

    chips = page.get_by_role("list", name="Filtered by").get_by_role("link")
    expect(chips).to_have_count(3)
    expect(chips.nth(0)).to_have_accessible_name("Remove the filter Staff member: alice")
    expect(chips.nth(1)).to_have_accessible_name("Remove the filter Outcome: Found")
    # The day as the log writes days, not as the browser's date box does.
    expect(chips.nth(2)).to_have_accessible_name(
        f"Remove the filter From: {dateformat.format(since, 'j M Y')}"
    )
    chip_box, overview_box = box(page, ".filter-chips"), box(page, ".audit-overview")
    assert chip_box["y"] + chip_box["height"] <= overview_box["y"]

    chips.nth(1).click()

    page.wait_for_url(f"{live_server.url}/audit/?staff=alice&since={since.isoformat()}")
    expect(chips).to_have_count(2)
    expect(page.get_by_label("Staff member")).to_have_value("alice")
    expect(page.get_by_label("Outcome")).to_have_value("")
    expect(page.get_by_label("From")).to_have_value(since.isoformat())
    expect(page.locator(".audit-overview")).to_contain_text("Since")


def test_screens_of_a_filtered_log(open_as_auditor, live_server, week):
    """Looked at by a person (test-artifacts/screenshots/): the log with filters in force."""
    since = (datetime.now(UTC) - timedelta(days=3)).date()
    query = f"staff=mallory&outcome=not_visible&since={since.isoformat()}&refreshes=on"
    for scheme, width in (("light", 1280), ("dark", 1280), ("light", 390)):
        page = open_as_auditor(color_scheme=scheme, width=width)
        page.goto(f"{live_server.url}/audit/?{query}")
        expect(page.get_by_role("list", name="Filtered by").get_by_role("link")).to_have_count(4)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shoot(page, f"overview-filtered-{scheme}-{width}px")


def test_a_staff_members_page_names_its_own_filter(open_as_auditor, live_server, week):
    page = open_as_auditor()
    page.goto(f"{live_server.url}/audit/staff/mallory/?action={Action.LOOKUP.value}")

    chips = page.get_by_role("list", name="Filtered by").get_by_role("link")
    expect(chips).to_have_count(2)
    chips.first.click()  # "Staff member: mallory": to the whole log, the action kept

    page.wait_for_url(f"{live_server.url}/audit/?action=lookup")
    expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()


def _contrast(one: str, other: str) -> float:
    """WCAG's contrast ratio of two computed colours ("rgb(r, g, b)")."""

    def luminance(colour: str) -> float:
        channels = [int(n) / 255 for n in colour[colour.index("(") + 1 : -1].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_chart_shows_a_scale_and_found_and_not_found_with_a_legend(open_as_auditor, week):
    page = open_as_auditor()
    for scheme, width in views(page):
        chart = page.locator(".audit-chart")

        # The peak is mallory's day: 30 lookups and earlier ones of that day.
        ticks = chart.locator(".audit-chart__tick")
        expect(ticks).to_have_text([re.compile(r"^\d+$"), re.compile(r"^\d+$"), "0"])
        top, mid = (int(n) for n in ticks.all_inner_texts()[:2])
        assert top == 2 * mid and top >= 30
        plot = box(page, ".audit-chart__svg")
        for tick, height in ((ticks.nth(0), 0), (ticks.nth(1), 0.5), (ticks.nth(2), 1)):
            # Each label beside its gridline: the top, the middle and the baseline of the plot.
            label = tick.bounding_box()
            assert (
                abs(label["y"] + label["height"] / 2 - (plot["y"] + height * plot["height"])) < 12
            )

        legend = chart.locator(".audit-chart__legend li")
        expect(legend).to_have_count(2)
        expect(legend.nth(0)).to_have_text("Found")
        expect(legend.nth(1)).to_contain_text("Not found")
        found, other = (
            chart.locator(".audit-chart__bar--found"),
            chart.locator(".audit-chart__bar--other"),
        )
        expect(found).not_to_have_count(0)
        expect(other).not_to_have_count(0)

        # Each series against the card, and the legend's keys the bars' own colours (WCAG 1.4.11).
        card = page.locator(".audit-overview").evaluate("e => getComputedStyle(e).backgroundColor")
        fills = [bars.first.evaluate("e => getComputedStyle(e).fill") for bars in (found, other)]
        keys = [
            chart.locator(f".audit-chart__key--{name}").evaluate(
                "e => getComputedStyle(e).backgroundColor"
            )
            for name in ("found", "other")
        ]
        assert fills == keys
        assert fills[0] != fills[1]
        for fill in fills:
            assert _contrast(fill, card) >= 3, f"{fill} on {card} in {scheme}"

        table = chart.locator(".audit-numbers")
        expect(table.locator("thead th")).to_have_text(["Day", "Lookups", "Found", "Not found"])
        chart.locator("summary").click()
        expect(table).to_be_visible()
        # The figures fit beside each other, whatever the width (a cut column was seen at 390 px).
        figure, numbers = box(page, ".audit-chart"), table.bounding_box()
        assert numbers["x"] + numbers["width"] <= figure["x"] + figure["width"]
        save_screenshot(chart, f"overview-chart-{scheme}-{width}px")
