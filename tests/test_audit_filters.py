"""The audit filter form and page cursors take whatever a URL says: out-of-range dates get a
clear message (never a 500), an export validates before its first byte, and any query string
gives a page or a refusal of the filter, never an error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.models import Action, AuditEntry
from audit.selectors import BadCursor, Cursor
from tests.conftest import examples

pytestmark = pytest.mark.django_db

LIST = reverse("audit:list")
OUT_OF_RANGE = [
    {"until": "9999-12-31"},
    {"since": "9999-12-31"},
    {"since": "0001-01-01"},
    {"until": "0001-01-01"},
]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("query", OUT_OF_RANGE)
def test_a_date_out_of_range_is_refused_with_a_clear_message(auditor_client, zone, query):
    auditor_client.cookies["console_tz"] = zone

    response = auditor_client.get(LIST, query)

    assert response.status_code == 400
    assert "Choose a date between 1 January 1900 and 31 December 9998" in response.content.decode()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("query", OUT_OF_RANGE)
def test_an_export_with_a_date_out_of_range_refuses_before_its_first_byte(
    auditor_client, fmt, query
):
    auditor_client.cookies["console_tz"] = "Pacific/Kiritimati"

    response = auditor_client.get(reverse("audit:export", args=[fmt]), query)

    assert response.status_code == 302  # back to the filter, which says what is wrong
    assert not AuditEntry.objects.filter(action=Action.AUDIT_EXPORTED).exists()
    page = auditor_client.get(response["Location"])
    assert "Fix the filter before exporting." in page.content.decode()
    assert "Choose a date between" in page.content.decode()


def test_the_widest_accepted_range_finds_every_entry(auditor_client, audit_entry):
    entry = audit_entry(at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    auditor_client.cookies["console_tz"] = "Pacific/Kiritimati"

    response = auditor_client.get(LIST, {"since": "1900-01-01", "until": "9998-12-31"})

    assert response.status_code == 200
    assert f'href="/audit/entries/{entry.pk}/"' in response.content.decode()


QUERY_VALUES = st.one_of(
    st.text(max_size=40),
    st.dates().map(str),
    st.integers().map(str),
    st.builds(lambda a, b: f"{a}.{b}", st.integers(), st.integers()),
)
PARAMS = st.sampled_from(
    [
        "staff",
        "meeting",
        "deployment",
        "action",
        "outcome",
        "via",
        "since",
        "until",
        "refreshes",
        "before",
        "after",
    ]
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.dictionaries(PARAMS, QUERY_VALUES, max_size=5),
    zone=st.sampled_from(["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Nowhere/Else"]),
)
@example(query={"until": "9999-12-31"}, zone="UTC")
@example(query={"since": "0001-01-01"}, zone="Pacific/Kiritimati")
@example(query={"before": "-99999999999999999999.1", "after": "1.x"}, zone="UTC")
@example(query={"outcome": "\x00"}, zone="UTC")  # PostgreSQL refuses a NUL even in a query
@example(query={"staff": "a\x00b", "meeting": "\x00", "deployment": "\x00"}, zone="UTC")
def test_any_filter_and_cursor_gives_a_page_or_a_refusal(auditor_client: Client, query, zone):
    auditor_client.cookies["console_tz"] = zone

    page = auditor_client.get(LIST, query)
    export = auditor_client.get(reverse("audit:export", args=["jsonl"]), query)

    assert page.status_code in {200, 400}
    assert export.status_code in {200, 302}
    if export.status_code == 200:
        b"".join(export.streaming_content)  # streams to the end


@given(st.text(max_size=60))
def test_a_cursor_is_parsed_or_refused(text):
    try:
        cursor = Cursor.parse(text)
    except BadCursor:
        return
    assert Cursor.parse(str(cursor)) == cursor


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=2**63 - 1),
)
def test_a_cursor_survives_its_own_link(at, entry_id):
    cursor = Cursor(at=at, id=entry_id)

    assert Cursor.parse(str(cursor)) == cursor
