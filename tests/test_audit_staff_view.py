"""A staff member's activity (/audit/staff/<username>/)."""

import pytest
from django.urls import reverse

from audit.models import Action
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
