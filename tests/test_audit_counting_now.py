"""Refusals still being counted (audit/repeats.py: the minute's repeats after its first entry,
sealed as one counted record when the minute is over) are on the audit pages and in both exports
while they are counted, marked as not sealed yet: an export taken during a flood holds every
refused request, not only those of minutes already over."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from audit import repeats
from audit.models import Action, AuditEntry
from audit.services import Origin
from tests.pages import text_of

pytestmark = pytest.mark.django_db

FLOODER = Origin(user=None, username="", client_ip="198.51.100.9", user_agent="flood/1.0")


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


def flood(times: int, *, at) -> None:
    with time_machine.travel(at, tick=False):
        for _ in range(times):
            repeats.refused(
                origin=FLOODER,
                action=Action.PERMISSION_DENIED,
                kind=repeats.CSRF,
                tried="POST /",
                http_status=403,
                detail="POST /: CSRF check failed",
            )


@pytest.fixture
def minute():
    return timezone.now().replace(second=1, microsecond=0)


def test_an_export_during_a_flood_holds_every_refused_request(auditor_client, minute):
    flood(5, at=minute)

    with time_machine.travel(minute + timedelta(seconds=20), tick=False):
        jsonl = streamed(
            auditor_client.get(
                reverse("audit:export", args=["jsonl"]), {"action": "permission_denied"}
            )
        )
        exported_csv = streamed(
            auditor_client.get(
                reverse("audit:export", args=["csv"]), {"action": "permission_denied"}
            )
        )

    documents = [json.loads(line) for line in jsonl.splitlines()]
    assert sum(d["repeats"] or 1 for d in documents) == 5
    (counting,) = [d for d in documents if not d["sealed"]]
    assert counting["repeats"] == 4 and counting["calls"] == 0
    assert counting["id"] is None and counting["mac"] is None
    assert counting["client_ip"] == "198.51.100.9" and counting["tally"]["kind"] == "repeats"
    assert "4" in counting["summary"]
    rows = list(csv.DictReader(io.StringIO(exported_csv)))
    assert sum(int(row["repeats"] or 1) for row in rows) == 5
    assert [row["sealed"] for row in rows].count("no") == 1
    # Nothing was sealed by the export: the minute is not over.
    assert AuditEntry.objects.filter(repeats__isnull=False).count() == 0


def test_the_log_shows_refusals_being_counted_until_their_minute_is_sealed(auditor_client, minute):
    flood(3, at=minute)

    with time_machine.travel(minute + timedelta(seconds=20), tick=False):
        page = auditor_client.get(reverse("audit:list"), {"action": "permission_denied"})
    with time_machine.travel(minute + timedelta(seconds=70), tick=False):
        later = auditor_client.get(reverse("audit:list"), {"action": "permission_denied"})
        jsonl = streamed(
            auditor_client.get(
                reverse("audit:export", args=["jsonl"]), {"action": "permission_denied"}
            )
        )

    words = text_of(page.content.decode())
    assert "Being counted now" in words
    assert "198.51.100.9" in words.split("Being counted now", 1)[1]
    # Sealed by the next page once the minute was over: in the log, and counted no longer.
    assert "Being counted now" not in text_of(later.content.decode())
    documents = [json.loads(line) for line in jsonl.splitlines()]
    assert all(d["sealed"] for d in documents)
    assert sum(d["repeats"] or 1 for d in documents) == 3


def test_refusals_being_counted_follow_the_filter(auditor_client, minute):
    flood(3, at=minute)

    with time_machine.travel(minute + timedelta(seconds=20), tick=False):
        of_someone = auditor_client.get(reverse("audit:list"), {"staff": "alice"})
        of_a_lookup = streamed(
            auditor_client.get(reverse("audit:export", args=["jsonl"]), {"action": "lookup"})
        )

    assert "Being counted now" not in text_of(of_someone.content.decode())
    assert all(json.loads(line)["sealed"] for line in of_a_lookup.splitlines())
