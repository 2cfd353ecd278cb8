"""The audit pages with spans and counted records (issue #22), in a real browser: the log with its
"Open now" section, a span's own page and a staff member's page, on a phone (390 px) and a desktop,
light and dark. Nothing overflows the screen, the words are there, axe finds nothing serious;
screenshots go to test-artifacts/screenshots/ (audit-spans-*) to be looked at."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from audit.models import Action
from tests.audit_spans import counted, lookup, open_span, sealed_span
from tests.browser.conftest import BROWSER_TIMEZONE, save_screenshot
from tests.browser.test_accessibility import blocking_violations
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
# Close-ups of each page (a full phone page is too long to read at once): from the part's top.
PARTS = {
    "log": [("open", ".audit-open"), ("entries", "#entries-heading")],
    "entry": [("span", ".audit-span")],
    "staff": [("summary", ".staff-summary")],
}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def history(auditor) -> dict:
    now = timezone.now()
    start = now - timedelta(hours=1)
    lookup(start - timedelta(minutes=5), calls=None, meeting_id="m-standup", deployment="prod")
    lookup(start, meeting_id="m-standup", deployment="prod")
    span = sealed_span(
        first=start,
        last=start + timedelta(minutes=45),
        outcomes={
            "found": 268,
            "timeout": 2,
            "server_error": 3,
            "overloaded": 1,
            "rate_limited": 1,
            "not_visible": 1,
        },
        unanswered=1,
        sealed_at=start + timedelta(minutes=46),
    )
    sealed_span(
        first=start,
        last=start + timedelta(minutes=5),
        outcomes={"found": 8, "not_visible": 2},
        via="table",
        meeting_id="m-retro-with-a-rather-long-identifier-0123456789",
        key="tableKey_0123456789abcdef",
        sealed_at=start + timedelta(minutes=6),
    )
    counted(
        first=start + timedelta(minutes=10),
        last=start + timedelta(minutes=10, seconds=59),
        repeats=1_000_000_000,
        sample=["alice", "bob", "a-username-someone-tried-that-is-long"],
        distinct=12,
    )
    counted(
        first=start + timedelta(minutes=12),
        last=start + timedelta(minutes=12, seconds=40),
        repeats=5,
        action=Action.LOOKUP,
        outcome="lookup_limit",
        source="alice",
        username="alice",
        detail="",
        sample=["m-a", "m-b"],
        distinct=2,
        deployment="prod",
    )
    open_span(
        opened=now - timedelta(minutes=10),
        last=now - timedelta(seconds=2),
        answered={"found": 39, "timeout": 1},
        in_flight=1,
        sealed={"found": 12},
        meeting_id="m-planning",
        quiet_after=3600,
    )
    open_span(
        opened=now - timedelta(minutes=30),
        last=now - timedelta(minutes=20),
        answered={"found": 4},
        in_flight=2,
        meeting_id="m-quiet",
        via="table",
        key="quietKey_0123456789abcdef",
    )
    return {"span": span}


@pytest.fixture
def open_as_auditor(browser: Browser, live_server) -> Iterator:
    contexts = []

    def open_page(*, viewport: dict) -> Page:
        """A page signed in as the auditor (once: the test then goes from page to page)."""
        context = browser.new_context(viewport=viewport, timezone_id=BROWSER_TIMEZONE)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("auditor")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        return page

    yield open_page
    for context in contexts:
        context.close()


def _fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    shown = page.evaluate("document.documentElement.clientWidth")
    assert width <= shown, f"the page is {width} px wide on a {shown} px screen"


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_spans_counted_records_and_open_spans_read_well(
    open_as_auditor, history, live_server, size
):
    viewport = PHONE if size == "phone" else DESKTOP
    shots = {
        "log": "/audit/",
        "entry": f"/audit/entries/{history['span'].pk}/",
        "staff": "/audit/staff/alice/",
    }
    page = open_as_auditor(viewport=viewport)
    for scheme in ("light", "dark"):
        # As the system's setting changing would: prefers-color-scheme, no new sign-in.
        page.emulate_media(color_scheme=scheme)
        for name, path in shots.items():
            page.goto(f"{live_server.url}{path}")
            assert page.url == f"{live_server.url}{path}"
            _read_well(page, name, size, scheme, viewport)


def _read_well(page: Page, name: str, size: str, scheme: str, viewport: dict) -> None:
    if name == "log":
        expect(page.get_by_role("heading", name="Open now")).to_be_visible()
        expect(page.get_by_text("41 lookups so far")).to_be_visible()
        expect(page.get_by_text("unanswered (no outcome was recorded)").first).to_be_visible()
        expect(page.get_by_text("\u00d71,000,000,000 more from 192.0.2.7")).to_be_visible()
    if name == "entry":
        expect(page.get_by_role("heading", name="A page's live refreshes, sealed")).to_be_visible()
    _fits(page)
    for part, selector in PARTS[name]:
        box = page.locator(selector).first.bounding_box()
        save_screenshot(
            page,
            f"audit-spans-{name}-{part}-{size}-{scheme}",
            full_page=True,
            clip={"x": 0, "y": box["y"], "width": viewport["width"], "height": 1100},
        )
    save_screenshot(page, f"audit-spans-{name}-{size}-{scheme}", full_page=True)
    assert blocking_violations(page) == [], f"{name}, {size}, {scheme}"
