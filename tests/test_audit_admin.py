"""The audit log in Django's admin (audit/admin.py): read-only, filterable, and never counting or
scanning the whole table."""

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connvo_admin.outcomes import recorded_outcomes

pytestmark = pytest.mark.django_db

URL = "/admin/audit/auditentry/"


@pytest.fixture
def entries(audit_entry):
    return {
        "alice": audit_entry(username="alice", deployment="prod", outcome="found"),
        "bob": audit_entry(
            username="bob", deployment="dev", outcome="not_visible", connvo_request_id="req-9"
        ),
    }


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({}, ["alice", "bob"], []),
        ({"deployment": "dev"}, ["bob"], ["alice"]),
        ({"outcome": "found"}, ["alice"], ["bob"]),
        ({"q": "alice"}, ["alice"], ["bob"]),
        ({"q": "req-9"}, ["bob"], ["alice"]),
        ({"q": "ali"}, [], ["alice", "bob"]),  # exact matches only
    ],
)
def test_changelist_filters_and_searches(admin_client, entries, params, shown, hidden):
    response = admin_client.get(URL, params)

    page = response.content.decode()
    assert response.status_code == 200
    for name in shown:
        assert f'<td class="field-actor_username">{name}</td>' in page
    for name in hidden:
        assert f'<td class="field-actor_username">{name}</td>' not in page


def test_outcome_filter_names_each_outcome_by_its_label(admin_client, entries):
    page = admin_client.get(URL).content.decode()

    links = re.findall(r'<a href="\?outcome=(\w+)">(.*?)</a>', page)
    assert [(value, unescape(text)) for value, text in links] == [
        (outcome.value, outcome.label) for outcome in recorded_outcomes()
    ]


def test_changelist_counts_at_most_a_capped_number_of_rows(admin_client, entries):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(URL)

    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "audit" in q["sql"]]
    assert counts, "the changelist counts its rows"
    assert all("LIMIT 10001" in sql for sql in counts)


def test_admin_is_branded_as_the_console_with_its_icon(admin_client):
    page = admin_client.get("/admin/").content.decode()

    assert "Connvo Support Console administration" in page
    assert "Django administration" not in page
    assert 'rel="icon" href="/static/favicon.svg"' in page


def test_favicon_ico_leads_to_the_consoles_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"


def test_changelist_shows_times_to_the_second_in_24_hour_format(admin_client, audit_entry):
    from datetime import UTC, datetime

    audit_entry(username="carol", at=datetime(2026, 11, 3, 14, 2, 11, tzinfo=UTC))

    page = admin_client.get(URL).content.decode()

    assert "3 Nov 2026, 14:02:11" in page
    assert "p.m." not in page


def test_changelist_names_how_a_lookup_was_made_in_one_column(admin_client, audit_entry):
    audit_entry(username="dave", via="refresh", meeting_id="m" * 32)

    page = admin_client.get(URL).content.decode()

    assert '<td class="field-what">Lookup (live refresh)</td>' in page
