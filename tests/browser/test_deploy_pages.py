"""Deployment-facing pages in a real browser: every page works under the strict CSP (the `page`
fixture fails on any console error or CSP violation), sign-in through the identity provider,
the lockout page and the lookup-limit message."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from fakeoidc import FakeOIDC
from tests.conftest import _group

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def idp(settings) -> Iterator[FakeOIDC]:
    _group("Support")  # the data migration's group; browser tests flush the database
    fake = FakeOIDC().start()
    for name, value in fake.settings().items():
        setattr(settings, name, value)
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = "Example SSO"
    settings.OIDC_SUPPORT_GROUPS = ["connvo-support"]
    try:
        yield fake
    finally:
        fake.stop()


def test_pages_work_under_the_content_security_policy(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, settings
):
    settings.CONNVO_POLL_INTERVAL = 1
    sign_in("agent")
    for path in ("/", "/tokens/"):
        response = page.goto(f"{live_server.url}{path}")
        assert "script-src 'self' 'nonce-" in response.headers["content-security-policy"]

    meeting = f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    response = page.goto(meeting)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # htmx's live refresh runs under the policy too.
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        pass
    expect(page.locator("#live-poller")).to_contain_text(
        re.compile(r"Live \(polling every \d+ s\): updated")
    )


def test_the_admin_works_under_the_content_security_policy(page: Page, live_server, admin_user):
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto(f"{live_server.url}/admin/auth/user/add/")
    expect(page.get_by_role("heading", name="Add user")).to_be_visible()


def test_sign_in_with_the_company_identity_provider(page: Page, live_server, idp, screenshot):
    idp.sign_in_as("dana", groups=("connvo-support",))
    page.goto(f"{live_server.url}/accounts/login/")
    button = page.get_by_role("link", name="Sign in with Example SSO")
    expect(button).to_be_visible()
    screenshot("20-sign-in-with-identity-provider")

    button.click()

    expect(page.get_by_role("heading", name="Look up a meeting")).to_be_visible()
    expect(page.locator(".who")).to_have_text("dana")


def test_too_many_failed_sign_ins_show_the_lockout_page(
    page: Page, live_server, agent, settings, screenshot
):
    settings.AXES_FAILURE_LIMIT = 3
    page.goto(f"{live_server.url}/accounts/login/")
    for _ in range(3):
        page.get_by_label("Username").fill("agent")
        page.get_by_label("Password").fill("not my password")
        page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Sign-in is paused")).to_be_visible()
    expect(page.get_by_text("Wait 15 minutes and try again")).to_be_visible()
    screenshot("21-sign-in-locked-out")


def test_the_lookup_limit_is_explained(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, settings, screenshot
):
    settings.CONNVO_LOOKUPS_PER_MINUTE = 2
    sign_in("agent")
    meeting = f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    for _ in range(3):
        page.goto(meeting)

    expect(page.get_by_role("heading", name="Too many lookups from your account")).to_be_visible()
    expect(page.get_by_text("this is the console's own limit, not Connvo's")).to_be_visible()
    screenshot("22-lookup-limit")
