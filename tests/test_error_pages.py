"""The meeting page's error states as an agent reads them: one action row, the right words for
each ending, and escalation details that say exactly what happened."""

import re

import pytest
from django.urls import reverse

from audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def detail_url(meeting_id: str, deployment: str = "dev") -> str:
    return reverse("meetings:detail", args=[deployment, meeting_id])


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_no_token_saved_asks_to_add_one_not_update(agent_client, fake_connvo):
    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    assert response.status_code == 403
    assert "Add your token for dev" in text_of(response)
    assert "Update your token" not in text_of(response)


def test_unknown_deployment_lists_the_known_ones_calmly(agent_client, fake_connvo):
    meeting_id = fake_connvo.meeting_id("standup")

    response = agent_client.get(detail_url(meeting_id, deployment="staging"))

    page = response.content.decode()
    assert response.status_code == 404
    assert "problem--info" in page
    assert f'href="{detail_url(meeting_id, "dev")}"' in page
    assert f'href="{detail_url(meeting_id, "prod")}"' in page
    assert "Correct the ID" not in page


def test_connvo_429_says_connvo_is_limiting_and_when_to_try_again(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.misbehave("status", status=429, retry_after=30)

    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    text = text_of(response)
    assert response.status_code == 429
    assert "Connvo is limiting lookups" in text
    assert "Try again in 30 s." in text
    assert "Too many lookups" not in text
    assert AuditEntry.objects.get().outcome == "rate_limited"


def test_try_again_is_a_button_in_the_action_row(agent_client, agent_token, fake_connvo):
    fake_connvo.misbehave("status", status=500)

    page = agent_client.get(detail_url(fake_connvo.meeting_id("standup"))).content.decode()

    row = re.search(r'<div class="action-row">(.*?)</div>', page, re.S).group(1)
    assert ">Try again</a>" in row
    actions = re.search(r'<ul class="actions">(.*?)</ul>', page, re.S).group(1)
    assert 'class="button' not in actions


def test_escalation_details_name_everything_support_needs(agent_client, agent_token, fake_connvo):
    fake_connvo.misbehave("status", status=500)
    meeting_id = fake_connvo.meeting_id("standup")

    response = agent_client.get(detail_url(meeting_id))

    copied = re.search(
        r'<pre id="escalation-text" hidden>(.*?)</pre>', response.content.decode(), re.S
    )
    text = copied.group(1)
    assert f"Console request ID: {response['X-Request-ID']}" in text
    assert f"Meeting ID: {meeting_id}" in text
    assert "Deployment: dev" in text
    assert "HTTP status from Connvo: 500" in text
    assert "Outcome: Connvo server error (server_error)" in text
    assert re.search(r"Time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)


def test_an_error_body_with_status_200_is_said_to_be_one(agent_client, agent_token, fake_connvo):
    response = agent_client.get(detail_url(fake_connvo.meeting_id("private")))

    page = response.content.decode()
    assert response.status_code == 403
    assert "<dt>HTTP status from Connvo</dt><dd>200 <span" in page
    assert "(Connvo answered, but with an error in its answer)" in page
    assert "HTTP status from Connvo: 200 (Connvo answered, but with an error in its answer)" in page


def test_a_garbage_body_with_status_200_is_said_to_be_garbage(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.misbehave("garbage")

    response = agent_client.get(detail_url(fake_connvo.meeting_id("standup")))

    page = response.content.decode()
    assert response.status_code == 502
    assert "<dt>HTTP status from Connvo</dt><dd>200 <span" in page
    assert "(Connvo answered, but not in Connvo&#x27;s format)" in page
    assert "with an error in its answer" not in page
