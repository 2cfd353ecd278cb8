"""A staff member's activity (/audit/staff/<username>/)."""

import re

import pytest
from django.urls import reverse

from audit.models import Action
from connvo_admin.outcomes import Outcome
from tests.test_audit_list_view import shown_ids

pytestmark = pytest.mark.django_db


def test_lists_only_that_staff_members_entries(auditor_client, agent, audit_entry):
    signed_in = audit_entry(username="agent", action=Action.SIGN_IN)
    looked = audit_entry(username="agent", meeting_id="m1")
    audit_entry(username="someone-else")

    response = auditor_client.get(reverse("audit:staff", args=["agent"]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Activity of agent" in page
    assert shown_ids(response) == [looked.pk, signed_in.pk]
    assert 'name="staff"' not in page  # fixed by the page
    assert "No console account has this username any more" not in page


def test_history_outlives_the_account(auditor_client, audit_entry):
    entry = audit_entry(username="departed")

    response = auditor_client.get(reverse("audit:staff", args=["departed"]))

    assert shown_ids(response) == [entry.pk]
    assert "No console account has this username any more" in response.content.decode()


def test_sums_up_the_staff_members_record(auditor_client, audit_entry):
    audit_entry(username="agent", action=Action.SIGN_IN)
    for meeting, outcome in (("m1", "found"), ("m2", "not_visible"), ("m2", "found")):
        audit_entry(username="agent", meeting_id=meeting, outcome=outcome, via="page")
    audit_entry(username="agent", meeting_id="m1", outcome="found", via="refresh")

    page = auditor_client.get(reverse("audit:staff", args=["agent"])).content.decode()

    summary = page.split('<dl class="staff-summary">')[1].split("</dl>")[0]
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", summary))
    assert facts["Lookups"] == "3"
    assert facts["Meetings"] == "2"
    assert facts[Outcome.NOT_VISIBLE.label].startswith("33% ")
    assert facts["Live refreshes"] == "1"
    assert "<time" in facts["First"] and "<time" in facts["Last"]
