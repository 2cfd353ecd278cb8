"""The page of a lookup refused by the console's own limit, in a real browser: "Look it up again"
is held back and counts down the seconds the limit has left, then becomes a link; without
JavaScript it is a plain link from the start."""

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from audit.models import Action, AuditEntry
from tests.browser.conftest import BROWSER_TIMEZONE
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refused_page(
    browser: Browser, live_server, agent, agent_token, fake_connvo, settings
) -> Iterator[Callable[..., tuple[Page, str]]]:
    """The agent's second lookup within a minute, with a limit of one: refused."""
    settings.CONNVO_LOOKUPS_PER_MINUTE = 1
    contexts: list[BrowserContext] = []

    def open_page(*, fake_clock: bool = True, **context_options) -> tuple[Page, str]:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, timezone_id=BROWSER_TIMEZONE, **context_options
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("agent")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{live_server.url}/")
        path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
        page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('planning')}/")
        if fake_clock:
            # The page's time stands still until the test moves it: no waiting out a real
            # minute, and no second passing between two looks at the button.
            page.clock.install()
            page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
        page.goto(f"{live_server.url}{path}")
        expect(
            page.get_by_role("heading", name="Too many lookups from your account")
        ).to_be_visible()
        return page, path

    yield open_page
    for context in contexts:
        context.close()


def test_look_it_up_again_counts_down_then_is_a_link(refused_page, screenshot):
    page, path = refused_page()
    again = page.locator(".action-row .js-countdown")
    wait = int(again.get_attribute("data-wait"))
    assert 1 <= wait <= 60

    expect(again).to_have_text(f"Look it up again in {wait} s")
    expect(again).to_have_attribute("aria-disabled", "true")
    expect(again).not_to_have_attribute("href", re.compile(".*"))
    # The steps say the same number, for whoever reads them rather than the button.
    expect(page.locator(".actions")).to_contain_text(f"Wait {wait} s")
    screenshot("35-lookup-limit-countdown")

    page.clock.run_for((wait - 1) * 1000)
    expect(again).to_have_text("Look it up again in 1 s")
    expect(again).to_have_attribute("aria-disabled", "true")

    page.clock.run_for(1000)
    expect(again).to_have_text("Look it up again")
    expect(again).to_have_attribute("href", path)
    expect(again).not_to_have_attribute("aria-disabled", re.compile(".*"))
    expect(page.locator(".js-countdown-status")).to_have_text(
        "Lookups pass again: you can look it up now."
    )


def test_clicking_look_it_up_again_does_nothing_while_it_counts_down(refused_page):
    page, _ = refused_page()
    lookups = AuditEntry.objects.filter(action=Action.LOOKUP).count()

    again = page.locator(".action-row .js-countdown")
    expect(again).to_be_disabled()  # aria-disabled, as assistive technology reads it
    # Clicked anyway (Playwright waits for a navigation a click starts): followed, the link
    # would be one more lookup, refused and audited.
    again.click(force=True)

    assert AuditEntry.objects.filter(action=Action.LOOKUP).count() == lookups


def test_without_javascript_look_it_up_again_is_a_plain_link(refused_page):
    page, path = refused_page(fake_clock=False, java_script_enabled=False)
    again = page.get_by_role("link", name="Look it up again")

    expect(again).to_have_attribute("href", path)
    expect(again).not_to_have_attribute("aria-disabled", re.compile(".*"))
    expect(page.locator(".actions")).to_contain_text(re.compile(r"Wait \d+ s, then look it up"))
