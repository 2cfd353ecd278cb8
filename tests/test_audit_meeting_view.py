"""A meeting's history (/audit/meetings/<id>/): who looked at it, when, and what they saw."""

import re

import pytest
from django.urls import reverse

from audit.models import Action, Via
from tests.test_audit_list_view import shown_ids

pytestmark = pytest.mark.django_db

MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


def test_lists_who_looked_with_what_they_saw(auditor_client, audit_entry):
    audit_entry(username="alice", meeting_id=MEETING, via=Via.PAGE, outcome="found")
    audit_entry(username="alice", meeting_id=MEETING, via=Via.REFRESH, outcome="found")
    audit_entry(username="bob", meeting_id=MEETING, via=Via.PAGE, outcome="not_visible")
    audit_entry(username="carol", meeting_id="another", via=Via.PAGE, outcome="found")

    response = auditor_client.get(reverse("audit:meeting", args=[MEETING]))

    page = response.content.decode()
    assert response.status_code == 200
    heading = re.sub(r"<[^>]+>", "", page.split("<h1>")[1].split("</h1>")[0])
    assert heading.startswith(f"Who looked at meeting {MEETING}")
    summary = page.split('id="viewers-heading"')[1].split("<tbody>")[1].split("</tbody>")[0]
    rows = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", summary, re.S)
    ]
    # Most recent first: staff member, deployment, lookups, lookups that showed the meeting,
    # refreshes.
    assert [row[:5] for row in rows] == [
        ["bob", "none", "1", "0", "0"],
        ["alice", "none", "1", "1", "1"],
    ]


def test_lists_only_that_meetings_entries(auditor_client, audit_entry):
    looked = audit_entry(meeting_id=MEETING, via=Via.PAGE)
    refused = audit_entry(meeting_id=MEETING, action=Action.PERMISSION_DENIED, http_status=403)
    audit_entry(meeting_id="another")

    response = auditor_client.get(reverse("audit:meeting", args=[MEETING]))

    assert shown_ids(response) == [refused.pk, looked.pk]


def test_says_when_nobody_looked(auditor_client):
    page = auditor_client.get(reverse("audit:meeting", args=[MEETING])).content.decode()

    assert "Nobody has looked this meeting up through the console." in page


def test_filters_apply_within_the_meeting(auditor_client, audit_entry):
    audit_entry(username="alice", meeting_id=MEETING)
    bob = audit_entry(username="bob", meeting_id=MEETING)

    response = auditor_client.get(reverse("audit:meeting", args=[MEETING]), {"staff": "bob"})

    assert shown_ids(response) == [bob.pk]
    assert 'name="meeting"' not in response.content.decode()  # fixed by the page


def test_the_same_id_on_two_deployments_is_two_meetings(auditor_client, audit_entry):
    audit_entry(username="alice", meeting_id=MEETING, deployment="demo", outcome="found")
    audit_entry(username="bob", meeting_id=MEETING, deployment="demo-prod", outcome="not_visible")
    audit_entry(username="alice", meeting_id=MEETING, deployment="demo-prod", outcome="found")

    page = auditor_client.get(reverse("audit:meeting", args=[MEETING])).content.decode()

    places = page.split('id="deployments-heading"')[1].split("</tbody>")[0]
    rows = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", places, re.S)
    ]
    # Deployment, lookups, staff, not a participant, refreshes.
    assert [row[:5] for row in rows if row] == [
        ["demo-prod", "2", "2", "1", "0"],
        ["demo", "1", "1", "0", "0"],
    ]
    viewers = page.split('id="viewers-heading"')[1].split("</tbody>")[0]
    assert viewers.count("<tr>") == 4  # the header and alice twice (demo, demo-prod) and bob


def test_who_looked_shows_the_most_recent_viewers_only(auditor_client, audit_entry, monkeypatch):
    from audit import selectors

    monkeypatch.setattr(selectors, "VIEWERS_SHOWN", 2)
    for name in ("alice", "bob", "carol"):
        audit_entry(username=name, meeting_id=MEETING, outcome="found")

    page = auditor_client.get(reverse("audit:meeting", args=[MEETING])).content.decode()

    viewers = page.split('id="viewers-heading"')[1].split("</table>")[0]
    assert "carol" in viewers and "bob" in viewers and "alice" not in viewers
    assert "The 2 most recent" in page
