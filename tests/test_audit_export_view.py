"""Exports of the current filter (/audit/export.csv, /audit/export.jsonl): streamed, exact,
and themselves audited."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from audit import chain
from audit.models import Action, AuditEntry, Via

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(audit_entry) -> dict[str, AuditEntry]:
    return {
        "alice": audit_entry(username="alice", meeting_id="m1", deployment="prod", via="page"),
        "bob": audit_entry(username="bob", meeting_id="m2", deployment="dev", via="page"),
        "alice-refresh": audit_entry(username="alice", meeting_id="m1", via="refresh"),
    }


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_csv_streams_the_filtered_entries(auditor_client, entries):
    response = auditor_client.get(reverse("audit:export", args=["csv"]), {"staff": "alice"})

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.DictReader(io.StringIO(body(response))))
    # Refreshes are left out, as on the page.
    assert [int(row["id"]) for row in rows] == [entries["alice"].pk]
    assert rows[0]["meeting_id"] == "m1"
    assert rows[0]["mac"] == entries["alice"].mac
    assert rows[0]["at"].endswith("Z")


def test_jsonl_streams_one_object_per_entry_newest_first(auditor_client, entries):
    response = auditor_client.get(reverse("audit:export", args=["jsonl"]), {"refreshes": "on"})

    assert isinstance(response, StreamingHttpResponse)
    documents = [json.loads(line) for line in body(response).splitlines()]
    assert [d["id"] for d in documents] == [
        entries["alice-refresh"].pk,
        entries["bob"].pk,
        entries["alice"].pk,
    ]
    assert documents[1]["deployment"] == "dev"
    assert documents[1]["http_status"] is None


def test_export_is_audited_before_it_starts(auditor_client, auditor, entries):
    response = auditor_client.get(reverse("audit:export", args=["csv"]), {"deployment": "prod"})
    body(response)

    export = AuditEntry.objects.get(action=Action.AUDIT_EXPORTED)
    assert export.actor == auditor
    assert export.detail == "CSV export of deployment=prod"
    assert chain.verify().ok


def test_export_includes_entries_from_several_database_round_trips(
    monkeypatch, auditor_client, audit_entry
):
    monkeypatch.setattr("audit.exports.CHUNK_SIZE", 2)
    monkeypatch.setattr("audit.exports.ROWS_PER_WRITE", 3)
    written = [audit_entry(meeting_id=f"m{n}") for n in range(7)]

    response = auditor_client.get(reverse("audit:export", args=["jsonl"]), {"action": "lookup"})

    ids = [json.loads(line)["id"] for line in body(response).splitlines()]
    assert ids == [e.pk for e in reversed(written)]


def test_csv_cells_a_spreadsheet_would_run_are_defused(auditor_client, audit_entry):
    audit_entry(username='=HYPERLINK("http://evil")', action=Action.SIGN_IN_FAILED)

    rows = list(csv.DictReader(io.StringIO(body(auditor_client.get("/audit/export.csv")))))

    assert rows[0]["actor_username"] == '\'=HYPERLINK("http://evil")'


def test_export_that_cannot_be_audited_does_not_start(auditor_client, entries):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_chainhead RENAME TO audit_chainhead_away")

    response = auditor_client.get(reverse("audit:export", args=["csv"]), {"staff": "alice"})

    assert response.status_code == 302
    assert response["Location"] == "/audit/?staff=alice"
    page = auditor_client.get(response["Location"])
    assert "could not record this export" in page.content.decode()


def test_unknown_format_is_404(auditor_client):
    assert auditor_client.get("/audit/export.xml").status_code == 404


MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


def export_link(page, fmt: str) -> str:
    """The page's "Export this filter" link in one format."""
    html = page.content.decode()
    return unescape(re.search(rf'href="([^"]*export\.{fmt}[^"]*)"', html).group(1))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_from_a_meeting_page_is_of_that_meeting(auditor_client, audit_entry, fmt):
    mine = audit_entry(username="alice", meeting_id=MEETING, via=Via.PAGE, outcome="found")
    audit_entry(username="alice", meeting_id="another", via=Via.PAGE, outcome="found")
    page = auditor_client.get(reverse("audit:meeting", args=[MEETING]), {"staff": "alice"})

    response = auditor_client.get(export_link(page, fmt))

    lines = body(response).splitlines()
    ids = [int(row["id"]) for row in csv.DictReader(lines)] if fmt == "csv" else []
    ids = ids or [json.loads(line)["id"] for line in lines]
    assert ids == [mine.pk]
    export = AuditEntry.objects.get(action=Action.AUDIT_EXPORTED)
    assert export.detail == f"{fmt.upper()} export of staff=alice, meeting_id={MEETING}"


def test_export_from_a_staff_page_is_of_that_staff_member(auditor_client, audit_entry):
    hers = audit_entry(username="alice", meeting_id="m1", via=Via.PAGE, outcome="found")
    audit_entry(username="bob", meeting_id="m1", via=Via.PAGE, outcome="found")
    page = auditor_client.get(reverse("audit:staff", args=["alice"]), {"deployment": ""})

    response = auditor_client.get(export_link(page, "csv"))

    assert [int(row["id"]) for row in csv.DictReader(io.StringIO(body(response)))] == [hers.pk]
    export = AuditEntry.objects.get(action=Action.AUDIT_EXPORTED)
    assert export.detail == "CSV export of staff=alice"


def test_export_from_a_page_keeps_its_own_filter_over_a_stray_parameter(auditor_client):
    # A meeting's page has no meeting field: a `meeting=` in its address filters nothing there,
    # and must not become the export's meeting either.
    page = auditor_client.get(
        reverse("audit:meeting", args=[MEETING]), {"meeting": "another", "before": "1.2"}
    )

    assert export_link(page, "csv") == f"/audit/export.csv?meeting={MEETING}"
