"""The Tokens page in a real browser: removing a token takes a deliberate second click, and the
help says where a pasted token comes from."""

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

    card.get_by_text("Where do I find my token?").click()

    expect(card.locator(".help")).to_contain_text('"type":"Authenticate"')
    expect(card.locator(".help")).to_contain_text("eyJ")
