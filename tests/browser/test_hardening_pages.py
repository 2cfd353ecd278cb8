"""Pages changed by the hardening work, in a real browser (light and dark): a meeting title that
tries to reverse itself, an out-of-range audit date, a lockout of one address."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_spoofed_meeting_title_is_shown_with_its_controls(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot_light_and_dark
):
    fake_connvo.update_meeting(
        "planning",
        title="Refund \u202eexe.tnemyap\u202c review",
        description="Approve the \u2066payroll\u200b file before Friday.",
    )
    sign_in("agent")

    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('planning')}/")

    heading = page.locator("#meeting-title")
    expect(heading).to_contain_text("Refund U+202Eexe.tnemyapU+202C review")
    expect(page).to_have_title("Refund [U+202E]exe.tnemyap[U+202C] review · Connvo Support Console")
    expect(page.locator(".invisible-char").first).to_have_attribute(
        "title", "right-to-left override"
    )
    screenshot_light_and_dark("hardening-spoofed-title")


def test_an_out_of_range_audit_date_says_what_to_do(
    page: Page, live_server, auditor, sign_in, screenshot_light_and_dark
):
    sign_in("auditor")

    page.goto(f"{live_server.url}/audit/?until=9999-12-31")

    expect(
        page.get_by_text("Choose a date between 1 January 1900 and 31 December 9998.")
    ).to_be_visible()
    screenshot_light_and_dark("hardening-audit-date")


def test_an_address_lockout_page(
    page: Page, live_server, agent, settings, screenshot_light_and_dark
):
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT
    for number in range(settings.AXES_FAILURE_LIMIT):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(f"someone{number}")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Sign-in is paused")).to_be_visible()
    expect(page.get_by_text("failed sign-ins from this computer, for any accounts")).to_be_visible()
    screenshot_light_and_dark("hardening-lockout-address")


def test_a_link_from_another_site_asks_before_looking_up(
    page: Page, live_server, agent, agent_token, fake_connvo, screenshot_light_and_dark
):
    console = live_server.url.replace("127.0.0.1", "localhost")
    elsewhere = console.replace("localhost", "127.0.0.1")
    page.goto(f"{console}/accounts/login/")
    page.get_by_label("Username").fill("agent")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    meeting_id = fake_connvo.meeting_id("standup")
    # Another site (127.0.0.1 is not the same site as localhost) links to the meeting page.
    page.goto(f"{elsewhere}/accounts/login/")
    page.evaluate(
        """url => { const a = document.createElement("a"); a.href = url; a.id = "evil";
                    a.textContent = "click"; document.body.append(a); }""",
        f"{console}/meetings/dev/{meeting_id}/",
    )
    page.locator("#evil").click()

    expect(page.get_by_role("heading", name="Open this meeting?")).to_be_visible()
    expect(page.locator("#id_q")).to_have_value(meeting_id)
    assert fake_connvo.call_count == 0
    screenshot_light_and_dark("hardening-cross-site")

    page.get_by_role("button", name="Look up").click()
    expect(page).to_have_url(f"{console}/meetings/dev/{meeting_id}/")
    assert fake_connvo.call_count == 1


def test_an_ended_connvo_session_on_the_tokens_page(
    page: Page, live_server, agent, workos, sign_in, screenshot_light_and_dark
):
    from django.utils import timezone

    from meetings.models import StaffToken

    StaffToken.objects.create(
        user=agent,
        deployment="dev",
        ciphertext=b"",
        refresh_ciphertext=b"",
        email="agent@support.connvo.test",
        last4="",
        session_ended_at=timezone.now(),
        session_end_reason="BadRequestError error=invalid_grant",
    )
    sign_in("agent")

    page.goto(f"{live_server.url}/tokens/")

    section = page.locator("#deployment-dev")
    expect(section).to_contain_text("Your Connvo session ended")
    expect(section.get_by_role("button", name="Reconnect your Connvo account")).to_be_visible()
    screenshot_light_and_dark("hardening-session-ended")


def test_a_meeting_from_a_changed_connvo_is_still_shown(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot_light_and_dark
):
    fake_connvo.misbehave("schema_drift", field="state", value="archived")
    fake_connvo.misbehave("schema_drift", field="participantCount", value="five")
    sign_in("agent")

    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/")

    expect(page.locator(".badge--unknown")).to_contain_text("archived")
    expect(page.locator("[data-drift]")).to_contain_text("does not fully know yet")
    screenshot_light_and_dark("hardening-contract-drift")
