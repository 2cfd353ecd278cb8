"""Pages changed by the hardening work, in a real browser (light and dark): a meeting title that
tries to reverse itself, an out-of-range audit date, a lockout of one address."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_spoofed_meeting_title_is_shown_with_its_controls(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot, scheme
):
    page.emulate_media(color_scheme=scheme)
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
    screenshot(f"hardening-spoofed-title-{scheme}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_an_out_of_range_audit_date_says_what_to_do(
    page: Page, live_server, auditor, sign_in, screenshot, scheme
):
    page.emulate_media(color_scheme=scheme)
    sign_in("auditor")

    page.goto(f"{live_server.url}/audit/?until=9999-12-31")

    expect(
        page.get_by_text("Choose a date between 1 January 1900 and 31 December 9998.")
    ).to_be_visible()
    screenshot(f"hardening-audit-date-{scheme}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_an_address_lockout_page(page: Page, live_server, agent, settings, screenshot, scheme):
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT
    page.emulate_media(color_scheme=scheme)
    for number in range(settings.AXES_FAILURE_LIMIT):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(f"someone{number}")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Sign-in is paused")).to_be_visible()
    expect(page.get_by_text("failed sign-ins from this computer, for any accounts")).to_be_visible()
    screenshot(f"hardening-lockout-address-{scheme}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_link_from_another_site_asks_before_looking_up(
    page: Page, live_server, agent, agent_token, fake_connvo, screenshot, scheme
):
    page.emulate_media(color_scheme=scheme)
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
    screenshot(f"hardening-cross-site-{scheme}")

    page.get_by_role("button", name="Look up").click()
    expect(page).to_have_url(f"{console}/meetings/dev/{meeting_id}/")
    assert fake_connvo.call_count == 1


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_an_ended_connvo_session_on_the_tokens_page(
    page: Page, live_server, agent, workos, sign_in, screenshot, scheme
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
    page.emulate_media(color_scheme=scheme)
    sign_in("agent")

    page.goto(f"{live_server.url}/tokens/")

    section = page.locator("#deployment-dev")
    expect(section).to_contain_text("Your Connvo session ended")
    expect(section.get_by_role("button", name="Reconnect your Connvo account")).to_be_visible()
    screenshot(f"hardening-session-ended-{scheme}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_meeting_from_a_changed_connvo_is_still_shown(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot, scheme
):
    page.emulate_media(color_scheme=scheme)
    fake_connvo.misbehave("schema_drift", field="state", value="archived")
    fake_connvo.misbehave("schema_drift", field="participantCount", value="five")
    sign_in("agent")

    page.goto(f"{live_server.url}/meetings/dev/{fake_connvo.meeting_id('standup')}/")

    expect(page.locator(".badge--unknown")).to_contain_text("archived")
    expect(page.locator("[data-drift]")).to_contain_text("does not fully know yet")
    screenshot(f"hardening-contract-drift-{scheme}")
