"""Whatever text an audit entry holds (a username tried at sign-in, a meeting reference typed into
a URL, a browser's User-Agent), every audit page shows it and every export carries it whole.

Strangers choose these strings: `eve\\nx` at the sign-in form, `%0D%0A` in a meeting URL."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.exports import FORMULA_STARTS
from audit.models import Action, AuditEntry
from audit.services import Origin, record
from connvo_admin.logs import request_id_var
from tests.conftest import examples

pytestmark = pytest.mark.django_db

# Any text a row can hold: PostgreSQL's text types refuse NUL, and nothing decoded from a request
# holds a lone surrogate.
CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(CHARACTERS, max_size=max_size)


FREE_TEXT = st.fixed_dictionaries(
    {
        "username": text(150),
        "deployment": text(64),
        "meeting_id": text(64),
        "outcome": text(32),
        "connvo_request_id": text(64),
        "request_id": text(64),
        "user_agent": text(512),
        "detail": text(500),
    }
)


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def check_every_page_and_export(client: Client, entry: AuditEntry) -> None:
    pages = [
        reverse("audit:list"),
        reverse("audit:entry", args=[entry.pk]),
        f"{reverse('audit:list')}?refreshes=on&staff={entry.actor_username}",
    ]
    if entry.actor_username:
        pages.append(reverse("audit:staff", args=[entry.actor_username]))
    if entry.meeting_id:
        pages.append(reverse("audit:meeting", args=[entry.meeting_id]))
    for url in pages:
        response = client.get(url, {"refreshes": "on"})
        assert response.status_code == 200, url
        assert f'href="/audit/entries/{entry.pk}/"' in response.content.decode() or (
            url == reverse("audit:entry", args=[entry.pk])
        ), url

    jsonl = client.get(reverse("audit:export", args=["jsonl"]), {"refreshes": "on"})
    assert jsonl.status_code == 200
    rows = {row["id"]: row for row in map(json.loads, body(jsonl).removesuffix("\n").split("\n"))}
    assert rows[entry.pk]["actor_username"] == entry.actor_username
    assert rows[entry.pk]["meeting_id"] == entry.meeting_id
    assert rows[entry.pk]["user_agent"] == entry.user_agent
    assert rows[entry.pk]["detail"] == entry.detail

    exported = client.get(reverse("audit:export", args=["csv"]), {"refreshes": "on"})
    assert exported.status_code == 200
    csv_rows = list(csv.DictReader(io.StringIO(body(exported), newline="")))
    by_id = {row["id"]: row for row in csv_rows}
    # Every entry (the JSON Lines export has written one since), each row whole.
    assert set(by_id) >= {str(pk) for pk in rows}
    assert all(None not in row and None not in row.values() for row in csv_rows)
    defused = "'" if entry.request_id.startswith(FORMULA_STARTS) else ""
    assert by_id[str(entry.pk)]["request_id"] == defused + entry.request_id


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=FREE_TEXT)
@example(values={"username": "eve\nx", "meeting_id": "m\r\n1"})
@example(values={"username": "a/b", "meeting_id": "../..", "detail": "\u202eexe.txt"})
@example(values={"username": " ", "meeting_id": "?x=1#y", "user_agent": "%0A"})
def test_audit_pages_and_exports_show_any_text_an_entry_holds(auditor_client, values):
    origin = Origin(
        user=None,
        username=values.pop("username", ""),
        client_ip="10.0.0.7",
        user_agent=values.pop("user_agent", ""),
    )
    reset = request_id_var.set(values.pop("request_id", ""))
    try:
        entry = record(origin=origin, action=Action.SIGN_IN_FAILED, **values)
    finally:
        request_id_var.reset(reset)

    check_every_page_and_export(auditor_client, entry)


def test_a_failed_sign_in_with_a_line_break_in_the_username_breaks_nothing(client, auditor_client):
    client.post(reverse("accounts:login"), {"username": "eve\nx", "password": "wrong"})

    entry = AuditEntry.objects.get(action=Action.SIGN_IN_FAILED)
    assert entry.actor_username == "eve\nx"
    check_every_page_and_export(auditor_client, entry)


def test_a_meeting_reference_with_a_line_break_in_the_url_breaks_nothing(
    agent_client, auditor_client
):
    agent_client.get("/meetings/dev/abc%0D%0Adef/")
    agent_client.get("/meetings/dev/abc%0Adef/")

    entries = list(AuditEntry.objects.filter(meeting_id__contains="\n"))
    assert len(entries) == 2
    for entry in entries:
        check_every_page_and_export(auditor_client, entry)
