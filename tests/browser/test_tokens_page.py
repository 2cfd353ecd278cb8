"""The Tokens page in a real browser: removing a token takes a deliberate second click, the
help says where a pasted token comes from, and a saved token says how long it lasts."""

import pytest
from playwright.sync_api import Page, expect

from meetings.models import StaffToken

pytestmark = pytest.mark.django_db(transaction=True)


def test_removing_a_token_asks_for_confirmation_first(
    page: Page, live_server, agent, agent_token, sign_in, screenshot
):
    sign_in("agent")
    page.goto(f"{live_server.url}/tokens/")
    card = page.locator("#deployment-dev")
    confirm = card.get_by_role("button", name="Yes, remove my token")
    expect(confirm).to_be_hidden()

    card.get_by_text("Remove token…").click()
    expect(confirm).to_be_visible()
    expect(card).to_contain_text("You will not be able to look up meetings there")
    assert StaffToken.objects.filter(user=agent, deployment="dev").exists()
    screenshot("tokens-remove-confirm")

    confirm.click()
    expect(page.get_by_text("Your token for dev was removed.")).to_be_visible()
    assert not StaffToken.objects.filter(user=agent, deployment="dev").exists()


def test_pasted_token_help_explains_where_the_token_is(page: Page, live_server, agent, sign_in):
    sign_in("agent")
    page.goto(f"{live_server.url}/tokens/")
    card = page.locator("#deployment-dev")
    help_ = card.locator(".help")

    # Without a token the steps are what the card is for: they start open.
    expect(help_.get_by_text("Network")).to_be_visible()
    expect(help_).to_contain_text('"type":"Authenticate"')
    expect(help_).to_contain_text("type Authenticate in its filter box")
    expect(help_).to_contain_text("eyJ")
    expect(help_).to_contain_text("shows it here once you save one")
    expect(help_).not_to_contain_text("last only minutes")


def test_a_saved_token_says_how_long_it_lasts_as_read_from_it(
    page: Page, live_server, agent, fake_connvo, sign_in, screenshot
):
    # Issued now, expiring in two hours: its iat and exp say it lasts 2 h.
    token = fake_connvo.token_for("agent", expires_in=2 * 3600)
    sign_in("agent")
    page.goto(f"{live_server.url}/tokens/")
    card = page.locator("#deployment-dev")

    card.get_by_label("Paste your token").fill(token)
    card.get_by_role("button", name="Save").click()

    expect(page.get_by_text("It lasts 2 h from when Connvo issued it.")).to_be_visible()
    expect(card.locator("[data-lifetime]")).to_have_text(
        "2 h from when Connvo issued it (read from the token)"
    )
    expect(card).to_contain_text("Connvo's tokens for dev last 2 h")
    expect(card.get_by_role("alert")).to_have_count(0)  # how long it lasts is not an alarm
    card.get_by_text("Where do I find my token?").click()
    expect(card.locator(".help")).to_contain_text("Your saved token lasts 2 h")
    expect(card.locator(".help")).to_contain_text("set up WorkOS for dev")
    screenshot("tokens-lifetime")
