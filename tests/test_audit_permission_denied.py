"""The 403 page (audit.views.permission_denied, the project's handler403) records each refusal."""

import pytest
from django.urls import reverse

from audit.models import Action, AuditEntry

pytestmark = pytest.mark.django_db


def test_refusal_is_shown_and_recorded(outsider_client, outsider):
    response = outsider_client.get(reverse("meetings:tokens"), REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 403
    assert "You do not have access to this page" in response.content.decode()
    entry = AuditEntry.objects.get()
    assert entry.action == Action.PERMISSION_DENIED
    assert entry.actor == outsider
    assert entry.http_status == 403
    assert entry.detail == "GET /tokens/"
    assert entry.client_ip == "10.1.2.3"


def test_refused_meeting_page_names_the_meeting(outsider_client):
    meeting_id = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"

    outsider_client.get(reverse("meetings:detail", args=["prod", meeting_id]))

    entry = AuditEntry.objects.get()
    assert (entry.deployment, entry.meeting_id) == ("prod", meeting_id)


def test_agent_trying_the_audit_log_is_recorded(agent_client):
    response = agent_client.get(reverse("audit:list"))

    assert response.status_code == 403
    assert AuditEntry.objects.get().detail == "GET /audit/"


def test_refusal_still_shows_when_the_log_cannot_be_written(outsider_client):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry RENAME TO audit_auditentry_away")

    response = outsider_client.get(reverse("meetings:tokens"))

    assert response.status_code == 403
    assert "You do not have access to this page" in response.content.decode()
