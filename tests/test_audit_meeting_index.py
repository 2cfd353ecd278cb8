"""A meeting's page sums up its whole history. Every query that reads all of the meeting's
entries uses only columns the meeting index holds, so PostgreSQL answers it from the index alone
(an index-only scan: `bench/audit_queries.py` shows the plan's effect) instead of fetching a busy
meeting's thousands of entries one by one from all over the table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit import seeding
from audit.models import AuditEntry
from tests.audit_patterns import lookup

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


def _index_columns(name: str) -> set[str]:
    index = next(index for index in AuditEntry._meta.indexes if index.name == name)
    fields = [field.lstrip("-") for field in index.fields] + list(index.include)
    return {AuditEntry._meta.get_field(field).column for field in fields}


def test_the_meeting_page_reads_the_meetings_history_from_its_index_alone(auditor_client):
    seeding.append(
        [
            lookup(
                name,
                NOW - timedelta(hours=hours),
                MEETING,
                outcome=outcome,
                via=via,
            )
            for hours, (name, outcome, via) in enumerate(
                [
                    ("alice", "found", "page"),
                    ("bob", "not_visible", "page"),
                    ("alice", "found", "refresh"),
                    ("carol", "timeout", "cli"),
                ]
                * 5
            )
        ]
    )
    with CaptureQueriesContext(connection) as queries, time_machine.travel(NOW, tick=False):
        response = auditor_client.get(reverse("audit:meeting", args=[MEETING]))
    assert response.status_code == 200

    whole_history = [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].startswith("SELECT")
        and f"\"meeting_id\" = '{MEETING}'" in query["sql"]
        # The page of entries itself shows every column of its 50 rows.
        and '"audit_auditentry"."mac"' not in query["sql"]
        # A meeting's sealed spans and counted records (a few rows, on their partial index).
        and '"audit_auditentry"."tally" IS NOT NULL' not in query["sql"]
    ]

    assert len(whole_history) >= 4  # who looked, per deployment, the count, the overview
    covered = _index_columns("audit_by_meeting_counts")
    for sql in whole_history:
        read = set(re.findall(r'"audit_auditentry"\."(\w+)"', sql))
        assert read <= covered, (read - covered, sql)


def test_a_meetings_spans_and_counted_records_have_their_own_small_index():
    index = next(i for i in AuditEntry._meta.indexes if i.name == "audit_records_by_meeting")

    assert index.fields == ["meeting_id"]
    assert str(index.condition) == "(AND: ('tally__isnull', False))"
