"""A staff member's activity (/audit/staff/<username>/)."""

import re
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import Action, AuditEntry
from connvo_admin.outcomes import Outcome
from tests.test_audit_list_view import shown_ids
from tests.test_audit_spans import open_page, refresh

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
    assert "No console account has this username" not in page


def test_history_outlives_the_account(auditor_client, audit_entry):
    entry = audit_entry(username="departed")

    response = auditor_client.get(reverse("audit:staff", args=["departed"]))

    assert shown_ids(response) == [entry.pk]
    assert (
        "No console account has this username now; the entries keep the name as they wrote it."
        in response.content.decode()
    )


def test_a_name_never_in_the_log_is_not_said_to_have_lost_its_account(auditor_client, db):
    response = auditor_client.get(reverse("audit:staff", args=["nobody-here"]))

    page = response.content.decode()
    assert "No console account has this username, and the log holds nothing under it." in page
    assert "any more" not in page and "keep the name" not in page


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


def test_last_is_the_newest_refresh_of_a_page_still_open(
    auditor_client, agent_client, agent_token, fake_connvo, time_machine
):
    # Within the agent's token's lifetime, which starts now.
    opened = timezone.now().replace(microsecond=0) + timedelta(minutes=1)
    time_machine.move_to(opened, tick=False)
    page = open_page(agent_client, fake_connvo)
    # Seven minutes of refreshes: counted in the page's span, not yet sealed into the log.
    time_machine.move_to(opened + timedelta(minutes=7), tick=False)
    assert refresh(agent_client, fake_connvo, page["span"]).status_code == 200
    assert AuditEntry.objects.filter(actor_username="agent").latest("at").at == opened

    page = auditor_client.get(reverse("audit:staff", args=["agent"])).content.decode()

    summary = page.split('<dl class="staff-summary">')[1].split("</dl>")[0]
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", summary))
    last = re.search(r'datetime="([^"]+)"', facts["Last"]).group(1)
    assert datetime.fromisoformat(last) == opened + timedelta(minutes=7)
