"""The chain-health panel in a real browser (#23): its colour and words in each state, in light and
dark, and at 390 px."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.models import AuditEntry
from tests.browser.conftest import save_screenshot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

# The colour a state's panel must have: its background and border, as console.css names them.
COLOURS = """(panel, state) => {
    const probe = document.createElement("div");
    probe.style.backgroundColor = `var(--${state}-bg)`;
    probe.style.borderLeftColor = `var(--${state}-border)`;
    document.body.append(probe);
    const want = getComputedStyle(probe), got = getComputedStyle(panel);
    const pair = [
        [got.backgroundColor, got.borderLeftColor], [want.backgroundColor, want.borderLeftColor],
    ];
    probe.remove();
    return pair;
}"""


def verify() -> None:
    call_command("audit_verify", stdout=io.StringIO(), stderr=io.StringIO())


def minutes_ago(minutes: float):
    return time_machine.travel(timezone.now() - timedelta(minutes=minutes), tick=False)


def green(audit_entry) -> None:
    for _ in range(3):
        audit_entry()
    verify()


def amber_prefix(audit_entry) -> None:
    """The issue's log: verified when it held one entry, many lookups since, checkpoints current."""
    with minutes_ago(60):
        audit_entry()
        verify()
    with minutes_ago(30):
        for n in range(146):
            audit_entry(meeting_id=f"meeting{n:03d}", deployment="demo", outcome="found")
    call_command("audit_checkpoint", stdout=io.StringIO())


def amber_stale_checkpoint(audit_entry) -> None:
    with minutes_ago(45):
        audit_entry()
        verify()
    with minutes_ago(20):
        audit_entry()


def red(audit_entry) -> None:
    entries = [audit_entry() for _ in range(3)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            f"UPDATE {AuditEntry._meta.db_table} SET detail = 'edited' WHERE id = %s",  # noqa: S608
            [entries[1].pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")
    with pytest.raises(SystemExit):
        verify()


STATES = {
    # state: (the log, console.css's colour for it, the verdict)
    "green": (green, "ok", "Chain verified: OK"),
    "amber-prefix": (amber_prefix, "warn", "Chain not fully verified."),
    "amber-checkpoint": (amber_stale_checkpoint, "warn", "Chain not fully verified."),
    "red": (red, "error", "Chain BROKEN"),
}


@pytest.fixture(autouse=True)
def cadences(settings):
    settings.AUDIT_CHECKPOINT_INTERVAL = 300  # a checkpoint is recent for 10 minutes
    settings.AUDIT_VERIFY_WARN_AFTER_HOURS = 26
    settings.AUDIT_CHECKPOINT_FILE = ""


@pytest.fixture
def as_auditor(browser, live_server, auditor):
    """Pages signed in as the auditor in a context of their own (a colour scheme, a width)."""
    contexts = []

    def open_page(*, color_scheme: str = "light", width: int = 1280) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": 900},
            color_scheme=color_scheme,
            timezone_id="Europe/Paris",
        )
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.errors = errors
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("auditor")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/audit/")
        return page

    yield open_page
    for context in contexts:
        # A CSP violation or a script error on any of them fails the test.
        assert not context.pages[0].errors, context.pages[0].errors
        context.close()


@pytest.mark.parametrize("state", STATES)
def test_the_panel_says_how_much_is_verified_in_its_colour(
    as_auditor, audit_entry, screenshot, state
):
    build, colour, verdict = STATES[state]
    build(audit_entry)

    page = as_auditor()
    for scheme, width in (("light", 1280), ("dark", 1280), ("light", 390)):
        if (scheme, width) != ("light", 1280):
            # The same signed-in page, as the system's colour setting or the window changing.
            page.emulate_media(color_scheme=scheme)
            page.set_viewport_size({"width": width, "height": 900})
            page.reload()
        panel = page.get_by_role("region", name="Chain health")
        expect(panel).to_contain_text(verdict)
        got, want = panel.evaluate(COLOURS, colour)
        assert got == want, f"{state} panel in {scheme}: {got}, not the {colour} colours {want}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(f"chain-{state}-{scheme}-{width}px", target=page)
        save_screenshot(panel, f"chain-{state}-{scheme}-{width}px-panel")
        if scheme == "light" and width == 1280:
            # The first view: later ones see this one's page view as a new entry.
            says_what_it_checked(panel, state)


def says_what_it_checked(panel, state: str) -> None:
    if state == "amber-prefix":
        # The log's 147 entries and the auditor's own sign-in.
        expect(panel).to_contain_text("1 of the log's 148 entries")
        expect(panel).to_contain_text("Not verified yet")
        expect(panel).to_contain_text("147 entries")
        expect(panel.locator("code", has_text="manage.py audit_verify")).to_be_visible()
    if state == "amber-checkpoint":
        expect(panel).to_contain_text("more than 10 minutes ago")
        expect(panel).to_contain_text("systemctl status connvo-audit-checkpoint.timer")
    if state == "red":
        expect(panel.get_by_role("link", name="entry #")).to_be_visible()
    if state == "green":
        expect(panel).to_contain_text("3 of the log's 4 entries")  # and the sign-in, since
        expect(panel).not_to_contain_text("What to do")
