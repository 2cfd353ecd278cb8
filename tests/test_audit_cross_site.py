"""The audit pages and exports are GETs that write in the auditor's name: each page view is put on
the chained log as theirs, and each export is recorded as theirs before it starts. A link or an
<img> on another site (or another intranet host) must not do that with one click: the same rule
as a lookup's (connvo_admin/cross_site.py). A request the browser marks "cross-site" or
"same-site" gets a page that says what would be recorded and a link to confirm from the console
itself; nothing is recorded. "same-origin", "none" (a bookmark, a typed address) and no header at
all (an old browser, a script) work as before."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from audit.models import Action, AuditEntry

pytestmark = pytest.mark.django_db

ASKS_FIRST = ["cross-site", "same-site"]
ACTS = ["same-origin", "none", None]
MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


@pytest.fixture
def entry(audit_entry) -> AuditEntry:
    return audit_entry(username="alice", meeting_id=MEETING, deployment="prod")


def doors(entry: AuditEntry) -> dict[str, tuple[str, str, str, str]]:
    """Each audit GET that records: its address, the action it records, the confirmation's
    heading and what it says would be recorded."""
    return {
        "log": (
            reverse("audit:list") + "?staff=alice",
            Action.AUDIT_VIEWED,
            "Open this audit page?",
            "Audit log, filter: staff=alice",
        ),
        "meeting": (
            reverse("audit:meeting", args=[MEETING]),
            Action.AUDIT_VIEWED,
            "Open this audit page?",
            f"Who looked at the meeting, filter: meeting_id={MEETING}",
        ),
        "staff": (
            reverse("audit:staff", args=["alice"]),
            Action.AUDIT_VIEWED,
            "Open this audit page?",
            "Activity of alice, filter: staff=alice",
        ),
        "entry": (
            reverse("audit:entry", args=[entry.pk]),
            Action.AUDIT_VIEWED,
            "Open this audit entry?",
            f"Entry #{entry.pk}",
        ),
        "csv": (
            reverse("audit:export", args=["csv"]) + "?deployment=prod",
            Action.AUDIT_EXPORTED,
            "Export the audit log?",
            "CSV export of deployment=prod",
        ),
        "jsonl": (
            reverse("audit:export", args=["jsonl"]),
            Action.AUDIT_EXPORTED,
            "Export the audit log?",
            "JSONL export of everything",
        ),
    }


DOORS = ["log", "meeting", "staff", "entry", "csv", "jsonl"]


def content(response) -> str:
    if hasattr(response, "streaming_content"):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


@pytest.mark.parametrize("site", ASKS_FIRST)
@pytest.mark.parametrize("door", DOORS)
def test_a_link_from_elsewhere_asks_before_recording_anything(auditor_client, entry, door, site):
    address, _, heading, recorded = doors(entry)[door]
    before = AuditEntry.objects.count()

    response = auditor_client.get(address, headers={"Sec-Fetch-Site": site})

    page = html.unescape(content(response))
    assert response.status_code == 200
    assert f"<h1>{heading}</h1>" in page
    assert recorded in page
    # The way on is the same address, followed from the console's own page.
    assert f'<a class="button" href="{address}">' in page
    assert AuditEntry.objects.count() == before


@pytest.mark.parametrize("site", ACTS)
@pytest.mark.parametrize("door", DOORS)
def test_own_links_bookmarks_and_typed_addresses_record_as_before(
    auditor_client, auditor, entry, door, site
):
    address, action, heading, recorded = doors(entry)[door]
    headers = {"Sec-Fetch-Site": site} if site else {}

    response = auditor_client.get(address, headers=headers)

    assert response.status_code == 200
    assert heading not in content(response)
    (written,) = AuditEntry.objects.filter(action=action)
    assert (written.actor, written.detail) == (auditor, recorded)


def test_confirming_records_the_view_in_the_auditors_name(auditor_client, auditor, entry):
    address, action, _, recorded = doors(entry)["meeting"]
    auditor_client.get(address, headers={"Sec-Fetch-Site": "cross-site"})

    auditor_client.get(address, headers={"Sec-Fetch-Site": "same-origin"})

    (viewed,) = AuditEntry.objects.filter(action=action)
    assert (viewed.actor, viewed.detail, viewed.meeting_id) == (auditor, recorded, MEETING)


def test_an_export_from_elsewhere_with_a_bad_filter_goes_back_to_the_log(auditor_client):
    response = auditor_client.get(
        reverse("audit:export", args=["csv"]),
        {"since": "not a date"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("audit:list"))
    assert not AuditEntry.objects.filter(action=Action.AUDIT_EXPORTED).exists()


def test_someone_who_may_not_read_the_log_is_refused_wherever_the_link_was(agent_client):
    response = agent_client.get(reverse("audit:list"), headers={"Sec-Fetch-Site": "cross-site"})

    assert response.status_code == 403
