"""An outcome's heading has one home, connvo_admin/outcomes.py: a lookup that could not be recorded
(so shows nothing) is headed by its title on the meeting page and on a triage table alike, where
each once had words of its own ("Lookup not recorded", "Lookups not recorded")."""

from __future__ import annotations

import re

import pytest
from django.db import DatabaseError
from django.urls import reverse

from connvo_admin.outcomes import HANDLING, Outcome
from tests.test_table_view import table_url

pytestmark = pytest.mark.django_db

TITLE = HANDLING[Outcome.AUDIT_UNAVAILABLE].title


@pytest.fixture
def audit_log_failing(monkeypatch):
    def unavailable(*args, **kwargs):
        raise DatabaseError("the audit table is locked")

    monkeypatch.setattr("meetings.lookups._append", unavailable)


def heading(html: str) -> str:
    return re.search(r'<h1 id="problem-title">(.*?)</h1>', html, re.S).group(1).strip()


@pytest.mark.usefixtures("audit_log_failing")
def test_a_meeting_page_that_could_not_be_recorded_is_headed_by_its_outcome_s_title(
    agent_client, agent_token, fake_connvo
):
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])

    response = agent_client.get(url)

    html = response.content.decode()
    assert response.status_code == 503
    assert heading(html) == TITLE
    assert f"<title>{TITLE} · " in html
    assert 'data-outcome="audit_unavailable"' in html
    assert "Support Team Daily Standup" not in html


@pytest.mark.usefixtures("audit_log_failing")
def test_a_table_that_could_not_be_recorded_is_headed_by_its_outcome_s_title(
    agent_client, agent_token, fake_connvo
):
    response = agent_client.get(table_url(fake_connvo, "standup", "planning"))

    html = response.content.decode()
    assert response.status_code == 503
    assert heading(html) == TITLE
    assert 'data-outcome="audit_unavailable"' in html
    assert "Support Team Daily Standup" not in html
