"""axe-core over every kind of page, in light and dark: no violation of impact serious or
critical. Lesser ones are printed (run with -s to read them), not failed.

Each case opens its page in a fresh browser context, signed in as the person who uses that page
(an agent, or the auditor for the audit pages), scans it light, then dark."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.test import Client
from playwright.sync_api import Browser, Page

from audit import chain
from audit.models import Action, AuditEntry, Via
from meetings.models import WatchedMeeting
from tests.browser.conftest import BROWSER_TIMEZONE
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

# What fails a page: what keeps someone from using it, not advice.
BLOCKING = {"serious", "critical"}


@dataclass(frozen=True)
class Visit:
    """Where a case goes, as whom: `path` is called once its data exists."""

    username: str
    path: Callable[[], str]


@pytest.fixture
def axe_page(
    request: pytest.FixtureRequest, browser: Browser, live_server
) -> Iterator[Callable[[Visit, str], Page]]:
    contexts = []

    def open_page(visit: Visit, scheme: str) -> Page:
        request.getfixturevalue(visit.username)  # the person who signs in (tests/conftest.py)
        path = visit.path()
        context = browser.new_context(
            viewport={"width": 1280, "height": 900},
            timezone_id=BROWSER_TIMEZONE,
            color_scheme=scheme,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(visit.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        page.goto(f"{live_server.url}{path}")
        # Signed in and on the page asked for: a sign-in form in its place would pass the scan.
        assert page.url == f"{live_server.url}{path}"
        # The page's own script has run (copy buttons shown, countdowns started) before the scan.
        page.wait_for_load_state("load")
        return page

    yield open_page
    for context in contexts:
        context.close()


def blocking_violations(page: Page) -> list[str]:
    """Run axe; print what it found (and what it could not decide), return the violations that
    block, one line each: rule, impact, elements, what axe says."""
    response = Axe().run(page).response
    for review in response["incomplete"]:
        targets = ", ".join(" ".join(map(str, node["target"])) for node in review["nodes"])
        print(f"to review: {review['id']} ({review['impact']}) on {targets}: {review['help']}")
    lines = []
    for violation in response["violations"]:
        targets = ", ".join(" ".join(map(str, node["target"])) for node in violation["nodes"])
        line = f"{violation['id']} ({violation['impact']}) on {targets}: {violation['help']}"
        print(line)
        if violation["impact"] in BLOCKING:
            lines.append(line)
    return lines


# --- The data each page needs --------------------------------------------------------------


@pytest.fixture
def meetings(settings, agent, agent_token, fake_connvo):
    # Pages that would poll during the scan wait instead: the scan reads a settled page.
    settings.CONNVO_POLL_INTERVAL = 600
    settings.CONNVO_POLL_MAX_INTERVAL = 600
    return fake_connvo


@pytest.fixture
def audit_log(audit_entry, auditor, agent):
    """A morning of entries, verified, and the entry and meeting the audit pages open."""
    meeting = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
    start = datetime.now(UTC) - timedelta(hours=3)
    rows = [
        dict(username="agent", action=Action.SIGN_IN),
        dict(username="agent", meeting_id=meeting, deployment="prod", via=Via.PAGE,
             outcome="found", http_status=200, latency_ms=84),
        dict(username="bob", meeting_id=meeting, deployment="prod", via=Via.PAGE,
             outcome="not_visible", http_status=200, latency_ms=90, connvo_request_id="b7e1c9"),
        dict(username="mallory", action=Action.SIGN_IN_FAILED,
             detail="Wrong username or password."),
        dict(username="agent", action=Action.TOKEN_REPLACED, deployment="prod"),
        # The staff page's list of changes to the account's access.
        dict(username="admin", action=Action.ACCESS_CHANGED, detail="agent: added to Auditor"),
    ]  # fmt: skip
    for n, fields in enumerate(rows):
        audit_entry(at=start + timedelta(minutes=7 * n), **fields)
    chain.record_verification(chain.verify(), duration_ms=12)
    return meeting


def _visits(request: pytest.FixtureRequest) -> dict[str, Visit]:
    def fake():
        return request.getfixturevalue("meetings")

    def meeting_path(label: str) -> str:
        return f"/meetings/dev/{fake().meeting_id(label)}/"

    def start_page() -> str:
        fake()
        # A recent lookup, so the list under the form is on the page.
        client = Client()
        client.force_login(request.getfixturevalue("agent"))
        client.get(meeting_path("standup"))
        return "/"

    def table() -> str:
        ids = ",".join(fake().meeting_id(label) for label in ("standup", "private", "retro"))
        return f"/table/dev/?ids={ids}"

    def watch_list() -> str:
        agent = request.getfixturevalue("agent")
        for label in ("standup", "planning", "retro"):
            WatchedMeeting.objects.create(
                user=agent, deployment="dev", meeting_id=fake().meeting_id(label)
            )
        return "/watching/"

    def lookup_limit() -> str:
        fake()
        request.getfixturevalue("settings").CONNVO_LOOKUPS_PER_MINUTE = 1
        # The one lookup the limit allows: the scanned visit is refused, with its countdown.
        client = Client()
        client.force_login(request.getfixturevalue("agent"))
        client.get(meeting_path("planning"))
        return meeting_path("standup")

    def tokens() -> str:
        fake()
        return "/tokens/"

    def audit(path: Callable[[str], str]) -> Callable[[], str]:
        return lambda: path(request.getfixturevalue("audit_log"))

    def entry(meeting: str) -> str:
        found = AuditEntry.objects.filter(meeting_id=meeting, outcome="not_visible").get()
        return f"/audit/entries/{found.pk}/"

    return {
        "start page": Visit("agent", start_page),
        "meeting page": Visit("agent", lambda: meeting_path("standup")),
        "meeting error page": Visit("agent", lambda: meeting_path("private")),
        "lookup limit page": Visit("agent", lookup_limit),
        "page not found": Visit("agent", lambda: "/no/such/page/"),
        "triage table": Visit("agent", table),
        "watch list": Visit("agent", watch_list),
        "tokens page": Visit("agent", tokens),
        "audit list": Visit("auditor", audit(lambda meeting: "/audit/")),
        "audit entry": Visit("auditor", audit(entry)),
        "audit staff page": Visit("auditor", audit(lambda meeting: "/audit/staff/agent/")),
        "audit meeting history": Visit("auditor", audit(lambda id_: f"/audit/meetings/{id_}/")),
    }  # fmt: skip


PAGES = [
    "start page",
    "meeting page",
    "meeting error page",
    "lookup limit page",
    "page not found",
    "triage table",
    "watch list",
    "tokens page",
    "audit list",
    "audit entry",
    "audit staff page",
    "audit meeting history",
]


@pytest.mark.parametrize("page_name", PAGES)
def test_no_serious_accessibility_violation(request, axe_page, page_name):
    visit = _visits(request)[page_name]

    page = axe_page(visit, "light")
    found = {"light": blocking_violations(page)}
    # The same page in the dark scheme: the browser switches its colours as the system's
    # setting changing would (prefers-color-scheme), without a second sign-in.
    page.emulate_media(color_scheme="dark")
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    found["dark"] = blocking_violations(page)

    assert found == {"light": [], "dark": []}
