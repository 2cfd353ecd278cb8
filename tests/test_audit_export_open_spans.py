"""An export filtered by outcome writes an open span's calls of that outcome only, under it."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from tests import audit_spans

pytestmark = pytest.mark.django_db


# ---- An export filtered by outcome writes an open span's every call, under another outcome ---


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_by_outcome_holds_only_the_open_spans_calls_of_that_outcome(auditor_client, fmt):
    """A page still open with 100 calls found and 1 timed out, nothing sealed yet. Exported with
    outcome=timeout, the open span's record said outcome "found" and calls 101: the export's
    calls no longer add up to the timed-out calls on record (1)."""
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    audit_spans.open_span(
        opened=now - timedelta(minutes=5),
        last=now - timedelta(seconds=5),
        answered={"found": 100, "timeout": 1},
        quiet_after=600,
    )

    with time_machine.travel(now, tick=False):
        response = auditor_client.get(reverse("audit:export", args=[fmt]), {"outcome": "timeout"})
        body = b"".join(response.streaming_content).decode()

    if fmt == "jsonl":
        documents = [json.loads(line) for line in body.splitlines()]
    else:
        documents = list(csv.DictReader(io.StringIO(body)))
    assert documents, "the open span is not in the export"
    assert {document["outcome"] for document in documents} == {"timeout"}
    assert sum(int(document["calls"]) for document in documents) == 1
