"""One primary action a page, in a real browser: of the buttons an agent sees, exactly one is
drawn solid, and it is the page's next step; every other one is quiet."""

import re

import pytest
from playwright.sync_api import Locator, Page, expect

pytestmark = pytest.mark.django_db(transaction=True)

ELSEWHERE = "http://wiki.intranet.example/incident"


def solid_buttons(page: Page) -> Locator:
    """What is drawn as a primary action: a visible `.button` that is not quiet."""
    return page.locator(".button:not(.button--quiet):visible")


@pytest.fixture
def signed_in(page: Page, live_server, agent, agent_token, fake_connvo, sign_in, settings):
    # Pages that would refresh themselves during the test wait instead.
    settings.CONNVO_POLL_INTERVAL = 600
    settings.CONNVO_POLL_MAX_INTERVAL = 600
    sign_in("agent")
    expect(page).to_have_url(f"{live_server.url}/")
    return page


def open_meeting(page: Page, live_server, fake_connvo, label: str) -> None:
    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id(label)}/")


def test_the_start_page_has_one_primary_action_look_up(signed_in: Page):
    expect(solid_buttons(signed_in)).to_have_count(1)
    expect(solid_buttons(signed_in)).to_have_text("Look up")


def test_on_a_meeting_its_controls_are_quiet_and_look_up_is_the_one_primary(
    signed_in: Page, live_server, fake_connvo
):
    open_meeting(signed_in, live_server, fake_connvo, "standup")
    # Copy ID, Watch, Refresh now, Pause and the organizer's Copy are all there, all quiet.
    for name in ("^Copy ID", "Watch$", "^Refresh now", "^Pause live updates$", "^Copy$"):
        button = signed_in.get_by_role("button", name=re.compile(name))
        expect(button).to_be_visible()
        expect(button).to_have_class(re.compile(r"\bbutton--quiet\b"))

    expect(solid_buttons(signed_in)).to_have_count(1)
    expect(solid_buttons(signed_in)).to_have_text("Look up")


@pytest.mark.parametrize(
    ("label", "misbehaviour", "primary"),
    [
        ("private", None, "Look up"),  # not a participant: nothing to fix here, look up another
        ("standup", "expired_tokens", "Update your token for dev"),
        ("standup", "status", "Try again"),
    ],
    ids=["not visible", "token rejected", "server error"],
)
def test_an_error_page_has_its_next_step_as_the_one_primary(
    signed_in: Page, live_server, fake_connvo, label, misbehaviour, primary
):
    if misbehaviour == "status":
        fake_connvo.misbehave("status", status=500)
    elif misbehaviour:
        fake_connvo.misbehave(misbehaviour)

    open_meeting(signed_in, live_server, fake_connvo, label)

    expect(signed_in.locator(".problem h1")).to_be_visible()
    expect(solid_buttons(signed_in)).to_have_count(1)
    expect(solid_buttons(signed_in)).to_have_text(primary)
    expect(signed_in.get_by_role("button", name="Copy escalation details")).to_have_class(
        re.compile(r"\bbutton--quiet\b")
    )


def test_a_page_not_found_offers_the_start_page_as_its_one_action(signed_in: Page, live_server):
    signed_in.goto(f"{live_server.url}/no/such/page/")

    expect(solid_buttons(signed_in)).to_have_count(1)
    expect(solid_buttons(signed_in)).to_have_text("Go to the start page")


def test_the_tokens_page_makes_primary_only_the_token_that_is_needed(signed_in: Page, live_server):
    # dev has a token that still works; prod has none.
    signed_in.goto(f"{live_server.url}/tokens/")

    expect(solid_buttons(signed_in)).to_have_count(1)
    expect(signed_in.locator("#deployment-prod").get_by_role("button", name="Save")).to_be_visible()
    expect(solid_buttons(signed_in)).to_have_text("Save")
    expect(
        signed_in.locator("#deployment-dev").get_by_role("button", name="Replace")
    ).to_have_class(re.compile(r"\bbutton--quiet\b"))


def test_asked_to_open_the_watch_list_that_is_the_one_primary(signed_in: Page, live_server):
    # A link on another site (served by the browser's own routing): a real cross-site visit.
    signed_in.route(
        ELSEWHERE,
        lambda route: route.fulfill(
            content_type="text/html", body=f'<a id="link" href="{live_server.url}/watching/">w</a>'
        ),
    )
    signed_in.goto(ELSEWHERE)
    signed_in.locator("#link").click()

    expect(signed_in.get_by_role("heading", name="Open these meetings?")).to_be_visible()
    expect(solid_buttons(signed_in)).to_have_count(1)
    expect(solid_buttons(signed_in)).to_have_text("Open your watch list")
