"""The triage table and the watch list as an agent reads them in a real browser, in light, dark
and at 390 px: rows keep their last values marked "as of" while Connvo fails and the summary says
why once; stale and missing values keep AA contrast; a pasted log excerpt gives rows for its
meetings and one quiet line; the live status sits above the table; the badges stay on one line;
a missing value says why on a phone; the watch list sorts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from meetings.models import WatchedMeeting
from tests.browser.conftest import BROWSER_TIMEZONE
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = ("standup", "planning", "onboarding", "minimal", "all-hands", "private", "retro")
AA = 4.5

# The contrast ratio (WCAG 2) of an element's text against what is behind it: the first ancestor
# with a background colour, the text blended by every opacity on the way. Returns the ratio and
# any CSS filter met on the way (a filter changes colours after this reckoning).
CONTRAST = """(el) => {
  const rgba = (text) => {
    const parts = text.match(/[\\d.]+/g).map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  };
  const luminance = (c) => {
    const channel = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  };
  const over = (top, below) => ({
    r: top.r * top.a + below.r * (1 - top.a), g: top.g * top.a + below.g * (1 - top.a),
    b: top.b * top.a + below.b * (1 - top.a), a: 1});
  const text = rgba(getComputedStyle(el).color);
  let alpha = text.a, filters = [], node = el, background = null;
  while (node && node.nodeType === 1) {
    const style = getComputedStyle(node);
    if (style.filter !== "none") { filters.push(style.filter); }
    const bg = rgba(style.backgroundColor);
    if (bg.a > 0) { background = bg.a < 1 ? over(bg, {r: 255, g: 255, b: 255, a: 1}) : bg; break; }
    alpha *= Number(style.opacity);
    node = node.parentElement;
  }
  background = background || {r: 255, g: 255, b: 255, a: 1};
  const shown = over({...text, a: alpha}, background);
  const [light, dark] = [luminance(shown), luminance(background)].sort((x, y) => y - x);
  return {ratio: (light + 0.05) / (dark + 0.05), filters: filters};
}"""


@pytest.fixture
def fast_polling(settings):
    settings.CONNVO_POLL_INTERVAL = 1
    settings.CONNVO_POLL_MAX_INTERVAL = 2
    settings.CONNVO_LOOKUPS_PER_MINUTE = 600


@pytest.fixture
def open_page(browser, live_server, agent, agent_token, fast_polling):
    """A signed-in agent's page in light or dark, at a width; fails the test on a script error or
    a CSP violation, as the shared `page` fixture does."""
    contexts, problems = [], []

    def open_(path: str, *, dark: bool = False, width: int = 1280) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": 900 if width > 600 else 844},
            color_scheme="dark" if dark else "light",
            timezone_id=BROWSER_TIMEZONE,
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda message: (
                problems.append(message.text)
                if message.type == "error"
                and not message.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("agent")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{live_server.url}{path}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, f"the browser console reported: {problems}"


def table_path(fake, *labels: str) -> str:
    return "/table/dev/?ids=" + ",".join(fake.meeting_id(label) for label in labels)


def contrast(locator) -> float:
    measured = locator.evaluate(CONTRAST)
    assert measured["filters"] == [], f"a filter changes the colours: {measured['filters']}"
    return measured["ratio"]


# --- While Connvo fails ---------------------------------------------------------------------


def test_a_connvo_500_during_a_refresh_keeps_the_rows_marked_as_of_with_aa_contrast(
    open_page, fake_connvo, screenshot
):
    page = open_page(table_path(fake_connvo, *TABLE))
    summary = page.locator("#table-summary")
    expect(summary).to_have_text(
        re.compile(r"^\s*2 active · 3 scheduled · 1 concluded · 1 not a participant\s*$")
    )
    standup = page.locator("#row-0")

    fake_connvo.misbehave("status", status=500)

    expect(standup.locator("[data-stale]")).to_have_text(
        re.compile(r"Not refreshed · as of \d\d:\d\d:\d\d"), timeout=5000
    )
    # The rows keep what they showed: title, badges, figures; the summary still counts them.
    expect(standup).to_contain_text("Support Team Daily Standup")
    expect(standup.locator(".badge--active")).to_be_visible()
    expect(standup.locator('[data-cell="participants"]')).to_have_text("5")
    expect(page.locator("#row-4 [data-cell='participants']")).to_have_text("48")
    expect(page.locator("[data-stale]")).to_have_count(5)  # retro and private are not asked
    expect(summary).to_contain_text("2 active · 3 scheduled · 1 concluded · 1 not a participant")
    expect(summary).to_contain_text("— 5 not refreshed at")
    assert page.locator("main").inner_text().count("Connvo server error") == 1
    expect(page.locator("#live-poller")).to_contain_text("Could not refresh at")

    # Every stale text keeps AA contrast: figures, title line, badges, the tag itself. Paused
    # first, as a person reading would: each failing refresh redraws the tags and the summary,
    # and an element swapped out mid-measurement has no colours at all.
    pause = page.get_by_role("button", name="Pause live updates")
    pause.click()
    expect(page.get_by_role("button", name="Resume live updates")).to_be_visible()
    stale_texts = [
        standup.locator('[data-cell="participants"]'),
        standup.locator(".triage__id"),
        standup.locator(".badge--active"),
        standup.locator(".badge--participant"),
        standup.locator('[data-cell="updated"] time'),
        standup.locator(".stale-tag"),
        page.locator('#row-3 [data-cell="rating"] .missing'),
        summary.locator(".summary__stale"),
    ]
    # In light and in dark, switched as the system's setting would (prefers-color-scheme).
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for text in stale_texts:
            assert contrast(text) >= AA, (scheme, text)
        screenshot(f"40-table-connvo-failing-{scheme}", page)

    page.get_by_role("button", name="Resume live updates").click()
    fake_connvo.reset_behaviour()
    expect(page.locator("[data-stale]")).to_have_count(0, timeout=5000)
    expect(summary).not_to_contain_text("not refreshed")


def test_the_meeting_pages_stale_figures_keep_aa_contrast(open_page, fake_connvo, screenshot):
    page = open_page(f"/meetings/dev/{fake_connvo.meeting_id('standup')}/")
    expect(page.locator('[data-metric="participants"]')).to_have_text("5")

    fake_connvo.misbehave("status", status=500)

    expect(page.locator("#live-poller.live--failing")).to_be_visible(timeout=5000)
    expect(page.locator("#live-poller .js-as-of")).to_have_text(re.compile(r"as of \d\d:\d\d"))
    values = page.locator("#metric-values")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for text in (
            values.locator('[data-metric="participants"]'),
            values.locator("dt").first,
            values.locator(".badge").first,
            values.locator(".badge-group__label").first,
            values.locator(".updated"),
        ):
            assert contrast(text) >= AA, (scheme, text)
        screenshot(f"45-meeting-connvo-failing-{scheme}", page)


# --- Pastes, layout and sorting ------------------------------------------------------------


def test_a_pasted_log_excerpt_gives_its_meetings_and_one_quiet_line(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    standup, planning, private = (
        fake_connvo.meeting_id(label) for label in ("standup", "planning", "private")
    )
    excerpt = (
        f"10:32:01 ERROR join failed meeting={standup} request_id=req_8a7b6c5d4e3f2a1b0c9d8e7f\n"
        f"10:32:04 WARN reconnect meetingId={planning} trace=9f8e7d6c5b4a39281706f5e4d3c2b1a0\n"
        f"10:32:09 INFO user=usr_k17e2a9wz4qh8r3v6t5y0c1xnm2pdf7g opened /meetings/{private}\n"
        f"10:32:11 ERROR retry meeting={standup} status=502"
    )
    sign_in("agent")

    box = page.get_by_label("Meeting ID or link")
    box.fill(excerpt)
    box.press("Enter")

    expect(page.get_by_role("heading", name="3 meetings")).to_be_visible()
    expect(page.locator(".triage__row")).to_have_count(3)
    expect(page.locator(".message--warning")).to_have_count(0)
    quiet = page.locator(".message--quiet")
    expect(quiet).to_have_count(1)
    expect(quiet.locator("summary")).to_have_text(
        "3 other tokens ignored · 1 ID pasted more than once, shown once"
    )
    expect(quiet.locator("li").first).to_be_hidden()
    quiet.locator("summary").click()
    expect(quiet.locator("li")).to_have_text(
        [
            "request_id=req_8a7b6c5d4e3f2a1b0c9d8e7f",
            "trace=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "user=usr_k17e2a9wz4qh8r3v6t5y0c1xnm2pdf7g",
        ]
    )
    screenshot("41-table-from-log-excerpt")


@pytest.mark.parametrize("path", ["table", "watching"])
def test_live_status_and_pause_are_above_the_table(open_page, fake_connvo, agent, path):
    for label in TABLE:
        WatchedMeeting.objects.create(
            user=agent, deployment="dev", meeting_id=fake_connvo.meeting_id(label)
        )
    page = open_page(table_path(fake_connvo, *TABLE) if path == "table" else "/watching/")

    pause = page.get_by_role("button", name="Pause live updates")
    expect(pause).to_be_visible()
    table = page.locator(".triage__table").bounding_box()
    assert page.locator("#live-poller").bounding_box()["y"] < table["y"]
    assert pause.bounding_box()["y"] + pause.bounding_box()["height"] <= 900  # no scrolling


@pytest.mark.parametrize("path", ["table", "watching"])
def test_state_badges_stay_on_one_line_at_1280_px(open_page, fake_connvo, agent, path):
    for label in TABLE:
        WatchedMeeting.objects.create(
            user=agent, deployment="dev", meeting_id=fake_connvo.meeting_id(label)
        )
    page = open_page(table_path(fake_connvo, *TABLE) if path == "table" else "/watching/")
    expect(page.locator(".triage__row").first).to_be_visible()

    for cell in page.locator('[data-cell="badges"]').all():
        tops = {round(badge.bounding_box()["y"]) for badge in cell.locator(".badge").all()}
        assert len(tops) == 1, f"badges on {len(tops)} lines in {cell.inner_text()!r}"
    # The page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_a_missing_value_says_why_on_a_phone_and_on_hover_on_a_laptop(open_page, fake_connvo):
    path = table_path(fake_connvo, "minimal", "standup")

    phone = open_page(path, width=390)
    why = phone.locator('#row-0 [data-cell="participants"] .missing__why')
    expect(why).to_have_text("Connvo did not send a participant count")
    assert why.bounding_box()["width"] > 100  # shown, not only in a tooltip

    laptop = open_page(path)
    missing = laptop.locator('#row-0 [data-cell="participants"] .missing')
    expect(missing).to_have_attribute("title", "Connvo did not send a participant count")
    # read by screen readers; the tooltip shows it
    assert (
        laptop.locator('#row-0 [data-cell="participants"] .missing__why').bounding_box()["width"]
        <= 1
    )
    for scheme in ("light", "dark"):
        for page in (phone, laptop):
            page.emulate_media(color_scheme=scheme)
        assert contrast(why) >= AA, scheme
        assert contrast(missing) >= AA, scheme


def test_the_watch_list_sorts_and_still_refreshes_each_row_in_place(open_page, fake_connvo, agent):
    # Watched in this order: the rows' indexes (row-0 …) are these positions.
    labels = ("standup", "planning", "all-hands", "onboarding")
    for label in labels:
        WatchedMeeting.objects.create(
            user=agent, deployment="dev", meeting_id=fake_connvo.meeting_id(label)
        )
    page = open_page("/watching/")

    page.get_by_label("Sort by").select_option("participants")
    page.get_by_role("button", name="Apply").click()

    expect(page).to_have_url(re.compile(r"/watching/\?sort=participants$"))
    rows = page.locator(".triage__row")
    expect(rows).to_have_count(4)
    assert [row.get_attribute("id") for row in rows.all()] == ["row-2", "row-0", "row-1", "row-3"]
    expect(page.get_by_role("link", name="Participants")).to_have_attribute("aria-current", "true")
    expect(page.get_by_role("link", name="Reload page")).to_have_attribute(
        "href", "/watching/?sort=participants"
    )

    fake_connvo.update_meeting("planning", participantCount=50)
    expect(page.locator('#row-1 [data-cell="participants"]')).to_have_text("50", timeout=5000)
    expect(page.locator('#row-2 [data-cell="participants"]')).to_have_text("48")

    page.get_by_role("link", name="Rating").click()
    expect(page).to_have_url(re.compile(r"/watching/\?sort=rating$"))
    expect(page.locator(".triage__row").first).to_have_id("row-1")  # the only one rated


@pytest.mark.parametrize(
    ("name", "dark", "width"),
    [("light", False, 1280), ("dark", True, 1280), ("390px", False, 390)],
)
def test_table_and_watch_list_screens(open_page, fake_connvo, agent, screenshot, name, dark, width):
    """Screenshots for a person to look at (test-artifacts/screenshots/), with what a person would
    notice first checked: nothing overflows the page, and a failure reads the same everywhere."""
    for label in ("standup", "planning", "all-hands", "retro"):
        WatchedMeeting.objects.create(
            user=agent, deployment="dev", meeting_id=fake_connvo.meeting_id(label)
        )

    page = open_page(table_path(fake_connvo, *TABLE), dark=dark, width=width)
    expect(page.locator("#table-summary")).to_contain_text("1 not a participant")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(f"42-table-{name}", page)

    fake_connvo.misbehave("status", status=500)
    expect(page.locator("[data-stale]")).to_have_count(5, timeout=5000)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(f"43-table-failing-{name}", page)
    fake_connvo.reset_behaviour()

    page.goto(page.url.split("/table/")[0] + "/watching/")
    expect(page.locator(".triage__row")).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(f"44-watching-{name}", page)
