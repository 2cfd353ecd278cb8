"""The meeting page: what an agent sees for each outcome, and the audit entry each lookup writes."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.urls import reverse

from audit.models import Action, AuditEntry, Via

pytestmark = pytest.mark.django_db


def detail_url(meeting_id: str, deployment: str = "dev") -> str:
    return reverse("meetings:detail", args=[deployment, meeting_id])


def text_of(response) -> str:
    return response.content.decode()


def test_anonymous_is_sent_to_sign_in(client, fake_connvo):
    url = detail_url(fake_connvo.meeting_id("standup"))

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert fake_connvo.call_count == 0


def test_staff_without_support_role_is_refused(outsider_client, fake_connvo):
    response = outsider_client.get(detail_url(fake_connvo.meeting_id("standup")))

    assert response.status_code == 403
    assert "Support" in text_of(response)
    assert fake_connvo.call_count == 0


def test_found_meeting_shows_fields_and_badges(agent_client, agent_token, fake_connvo):
    meeting_id = fake_connvo.meeting_id("planning")

    response = agent_client.get(detail_url(meeting_id))

    page = text_of(response)
    assert response.status_code == 200
    assert fake_connvo.meetings[meeting_id].fields["title"] in page
    assert meeting_id in page
    assert "badge--host" in page and "Your role: </span>Host" in page
    assert "badge--invited" in page and "Your presence: </span>Invited" in page
    assert "badge--scheduled" in page
    assert "1 h" in page  # duration 3600 s
    assert "4.6" in page
    assert "Raw JSON from Connvo" in page


def test_missing_optional_values_show_a_dash_not_none(agent_client, agent_token, fake_connvo):
    response = agent_client.get(detail_url(fake_connvo.meeting_id("minimal")))

    page = text_of(response)
    assert response.status_code == 200
    assert "None" not in page.replace("'none'", "")
    assert page.count('class="missing"') >= 6


def test_lookup_is_audited(agent_client, agent, agent_token, fake_connvo):
    meeting_id = fake_connvo.meeting_id("standup")

    agent_client.get(detail_url(meeting_id), HTTP_USER_AGENT="pytest-browser/1.0")

    entry = AuditEntry.objects.get()
    assert entry.action == Action.LOOKUP
    assert entry.via == Via.PAGE
    assert entry.actor == agent
    assert entry.actor_username == "agent"
    assert entry.deployment == "dev"
    assert entry.meeting_id == meeting_id
    assert entry.outcome == "found"
    assert entry.http_status == 200
    assert entry.latency_ms is not None
    assert entry.client_ip == "127.0.0.1"
    assert entry.user_agent == "pytest-browser/1.0"


def test_audit_entry_holds_no_token_and_no_meeting_content(agent_client, agent_token, fake_connvo):
    meeting_id = fake_connvo.meeting_id("planning")

    agent_client.get(detail_url(meeting_id))

    stored = repr(list(AuditEntry.objects.values()))
    assert agent_token not in stored
    assert agent_token[-12:] not in stored
    assert fake_connvo.meetings[meeting_id].fields["title"] not in stored


@pytest.mark.parametrize(
    ("label", "status", "outcome", "says"),
    [
        ("private", 403, "not_visible", "Connvo shows a meeting only to its participants"),
        ("unknown", 404, "not_found", "No meeting with this ID exists"),
        ("users_table", 400, "invalid_id", "not the ID of a meeting"),
    ],
)
def test_failures_get_their_own_page(
    agent_client, agent_token, fake_connvo, label, status, outcome, says
):
    meeting_id = {
        "unknown": fake_connvo.unknown_meeting_id,
        "users_table": fake_connvo.users_table_id,
    }.get(label, lambda: fake_connvo.meeting_id(label))()

    response = agent_client.get(detail_url(meeting_id))

    assert response.status_code == status
    assert f'data-outcome="{outcome}"' in text_of(response)
    assert says in text_of(response)
    assert AuditEntry.objects.get().outcome == outcome


def test_not_visible_page_explains_what_to_do_with_request_id(
    agent_client, agent_token, fake_connvo
):
    response = agent_client.get(detail_url(fake_connvo.meeting_id("private")))

    page = text_of(response)
    entry = AuditEntry.objects.get()
    assert "problem--info" in page  # calm, not a red error
    assert "Ask the meeting's host to add your Connvo account" in page
    assert entry.connvo_request_id and entry.connvo_request_id in page


def test_not_found_offers_the_other_deployments(agent_client, agent_token, fake_connvo):
    meeting_id = fake_connvo.unknown_meeting_id()

    response = agent_client.get(detail_url(meeting_id))

    assert reverse("meetings:detail", args=["prod", meeting_id]) in text_of(response)
    # One other deployment, one button.
    assert "look for it there with the button above." in text_of(response)


def test_malformed_id_gets_a_message_and_no_call(agent_client, agent_token, fake_connvo):
    response = agent_client.get(detail_url("meeting_123example"))

    assert response.status_code == 400
    assert "is not a Connvo meeting ID" in text_of(response)
    assert fake_connvo.call_count == 0
    entry = AuditEntry.objects.get()
    assert entry.outcome == "invalid_id"
    assert entry.http_status is None


def test_unknown_deployment_gets_a_message_and_no_call(agent_client, agent_token, fake_connvo):
    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup"), "staging-eu"))

    assert response.status_code == 404
    assert "There is no Connvo deployment called" in text_of(response)
    assert fake_connvo.call_count == 0


def test_without_a_token_the_agent_is_sent_to_the_tokens_page(agent_client, fake_connvo):
    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    assert response.status_code == 403
    assert reverse("meetings:tokens") in text_of(response)
    assert "no Connvo token saved for dev" in text_of(response)
    assert fake_connvo.call_count == 0


def problem_heading(html: str) -> str:
    return re.search(r'<h1 id="problem-title">(.*?)</h1>', html, re.S).group(1).strip()


@pytest.mark.parametrize(
    ("connects_through_workos", "heading", "step"),
    [
        (False, "Connvo token needed", "Add your token for dev"),
        (True, "Connvo account not connected", "Connect your Connvo account for dev"),
    ],
    ids=["pasted tokens", "WorkOS"],
)
def test_without_a_credential_the_heading_names_what_the_deployment_takes(
    request, agent_client, fake_connvo, connects_through_workos, heading, step
):
    if connects_through_workos:
        request.getfixturevalue("workos")

    html = text_of(agent_client.get(detail_url(fake_connvo.meeting_id("standup"))))

    assert problem_heading(html) == heading
    assert f"<title>{heading} · " in html
    assert f">{step}</a>" in html
    assert ("token" in heading.lower()) is not connects_through_workos


def test_rejected_token_asks_to_update_it(agent_client, agent_token, fake_connvo):
    fake_connvo.misbehave("expired_tokens")

    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    assert response.status_code == 403
    assert "Update your token for dev" in text_of(response)
    assert AuditEntry.objects.get().outcome == "token_rejected"


@pytest.mark.parametrize(
    ("kind", "options", "status", "outcome"),
    [
        ("status", {"status": 500}, 502, "server_error"),
        ("overloaded", {"times": 10}, 503, "overloaded"),
        ("status", {"status": 429}, 429, "rate_limited"),
        ("garbage", {}, 502, "bad_response"),
        ("schema_drift", {"field": "_id", "drop": True}, 502, "schema_mismatch"),
    ],
)
def test_upstream_failures_show_a_clear_page_never_a_traceback(
    agent_client, agent_token, fake_connvo, kind, options, status, outcome
):
    fake_connvo.misbehave(kind, **options)

    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    page = text_of(response)
    assert response.status_code == status
    assert f'data-outcome="{outcome}"' in page
    assert "Traceback" not in page
    assert "Try again" in page
    assert AuditEntry.objects.get().outcome == outcome


@pytest.mark.parametrize(
    ("kind", "options", "words"),
    [
        ("garbage", {}, "Connvo answered, but not in Connvo&#x27;s format"),
        (
            "schema_drift",
            {"field": "_id", "drop": True},
            "Connvo answered, but with something that is not a meeting",
        ),
    ],
)
def test_the_escalation_details_say_what_connvos_200_carried(
    agent_client, agent_token, fake_connvo, kind, options, words
):
    fake_connvo.misbehave(kind, **options)

    page = text_of(agent_client.get(detail_url(fake_connvo.meeting_id("standup"))))

    escalation = page[page.index('<details class="escalation"') :]
    # The status and the words beside it, in the details and in what Copy copies.
    assert f'<dd>200 <span class="muted">({words})</span></dd>' in escalation
    assert f"HTTP status from Connvo: 200 ({words})" in escalation
    assert "with an error in its answer" not in escalation


def test_timeout_page(agent_client, agent_token, fake_connvo, settings):
    settings.CONNVO_READ_TIMEOUT = 0.3
    fake_connvo.misbehave("slow", delay=1.0)

    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    assert response.status_code == 504
    assert "did not answer within 0.3 seconds" in text_of(response)


def test_an_answer_trickled_in_is_a_timeout_page_at_its_deadline(
    agent_client, agent_token, fake_connvo, settings
):
    """Each byte in time for the read timeout, the whole far past it: the agent waits for the
    deadline, not for as long as Connvo (or a proxy before it) takes."""
    settings.CONNVO_READ_TIMEOUT = 0.5
    fake_connvo.misbehave("trickle", delay=0.05, times=1)  # about 40 s in all

    started = time.monotonic()
    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    assert time.monotonic() - started < 3
    assert response.status_code == 504
    assert "did not answer within 0.5 seconds" in text_of(response)
    assert AuditEntry.objects.get().outcome == "timeout"


def test_deployment_down_page(agent_client, agent_token, fake_connvo):
    fake_connvo.down()

    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    assert response.status_code == 502
    assert "could not connect to Connvo (dev)" in text_of(response)
    assert AuditEntry.objects.get().outcome == "unreachable"


def test_lookup_fails_closed_when_the_audit_log_cannot_be_written(
    agent_client, agent_token, fake_connvo
):
    meeting_id = fake_connvo.meeting_id("planning")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry RENAME TO audit_auditentry_away")

    response = agent_client.get(detail_url(meeting_id))

    assert response.status_code == 503
    assert "could not record this lookup" in text_of(response)
    assert fake_connvo.meetings[meeting_id].fields["title"] not in text_of(response)


# The fake's meetings are placed relative to "now", so each case fixes the clock before the fake
# starts (the `time_machine` marker's fixture comes first): "planning" starts two hours later, on
# the next quarter hour.
@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        pytest.param(
            "America/New_York",
            "Fri 15 Jan 2027, 08:30 EST",
            marks=pytest.mark.time_machine(datetime(2027, 1, 15, 11, 30, tzinfo=UTC), tick=False),
            id="new-york-winter",
        ),
        pytest.param(
            "America/New_York",
            "Thu 15 Jul 2027, 09:30 EDT",
            marks=pytest.mark.time_machine(datetime(2027, 7, 15, 11, 30, tzinfo=UTC), tick=False),
            id="new-york-summer",
        ),
        pytest.param(
            "Pacific/Kiritimati",
            "Sat 1 Jan 2028, 16:00 +14",
            marks=pytest.mark.time_machine(
                datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC), tick=False
            ),
            id="far-east-new-years-eve",
        ),
    ],
)
def test_times_follow_the_agents_browser_timezone(
    zone, expected, agent_client, agent_token, fake_connvo
):
    agent_client.cookies["console_tz"] = zone.replace("/", "%2F")

    page = text_of(agent_client.get(detail_url(fake_connvo.meeting_id("planning"))))

    assert expected in page


# The first and last instants of the calendar, in Convex milliseconds: shown in a zone east (or
# west) of UTC, they would be in year 10000 (or year 0).
CALENDAR_ENDS = {"last": 253402300799000, "first": -62135596800000}


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Asia/Tokyo", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("end", CALENDAR_ENDS)
def test_a_timestamp_at_the_calendars_end_shows_a_dash_in_any_zone(
    zone, end, agent_client, agent_token, fake_connvo
):
    at = CALENDAR_ENDS[end]
    fake_connvo.update_meeting(
        "standup", updatedAt=at, createdAt=at, _creationTime=at, scheduledAt=at, duration=0
    )
    agent_client.cookies["console_tz"] = zone
    url = detail_url(fake_connvo.meeting_id("standup"))

    page, refresh = agent_client.get(url), agent_client.get(url, headers={"HX-Request": "true"})

    assert (page.status_code, refresh.status_code) == (200, 200)
    assert f"Connvo&#x27;s answer: created at is {at}, a date beyond the calendar" in text_of(page)
    assert "Planned end" not in text_of(page)


def test_bogus_timezone_cookie_is_ignored(agent_client, agent_token, fake_connvo):
    agent_client.cookies["console_tz"] = "Mars/Olympus_Mons"

    response = agent_client.get(detail_url(fake_connvo.meeting_id("planning")))

    assert response.status_code == 200
    assert " UTC" in text_of(response)


def test_audit_entry_carries_the_request_id_of_its_log_line(agent_client, agent_token, fake_connvo):
    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    entry = AuditEntry.objects.get()
    assert entry.request_id
    assert entry.request_id == response["X-Request-ID"]
