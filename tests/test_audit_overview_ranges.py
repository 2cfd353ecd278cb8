"""The overview's figures hold what the list holds: a range that starts or ends inside a UTC hour
(a day in a zone half an hour off UTC, the last 7 days from now) charts only its own lookups; a
filter on one outcome counts only that outcome's calls of a record that holds several."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from audit import overview, rollup, seeding
from audit.selectors import EntryFilter
from tests import audit_patterns, audit_spans

pytestmark = pytest.mark.django_db

URL = reverse("audit:list")
MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


def _caption(page: str) -> str:
    """The overview chart's caption, as text."""
    found = re.search(r"<figcaption>(.*?)</figcaption>", page, re.S)
    assert found, "no overview chart on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1))).strip()


# ---- The overview's chart counts whole UTC hours outside the range it names ----


def test_a_day_in_a_half_hour_zone_charts_only_that_days_lookups(auditor_client):
    """India is UTC+05:30: its midnight falls in the middle of a UTC hour. The list shows the one
    lookup of 10 March (IST); the chart also counted the lookups of 9 March 23:40 IST and 11 March
    00:15 IST (the whole UTC hours its midnights fall in), and explained the difference as spans
    standing for many."""
    seeding.append(
        [
            audit_patterns.lookup("alice", datetime(2026, 3, 9, 18, 10, tzinfo=UTC), MEETING),
            audit_patterns.lookup("alice", datetime(2026, 3, 10, 12, 0, tzinfo=UTC), MEETING),
            audit_patterns.lookup("bob", datetime(2026, 3, 10, 18, 45, tzinfo=UTC), MEETING),
        ]
    )
    auditor_client.cookies["console_tz"] = "Asia/Kolkata"

    with time_machine.travel(datetime(2026, 3, 20, tzinfo=UTC), tick=False):
        page = auditor_client.get(URL, {"since": "2026-03-10", "until": "2026-03-10"})

    caption = _caption(page.content.decode())
    assert caption.startswith("Lookups per hour: 1 in the 1 matching entry"), caption
    assert "stands for many" not in caption


def test_the_default_week_charts_only_the_lookups_of_the_week(auditor_client):
    """Without dates the overview covers the last 7 days from now, to the second; the chart read
    the whole UTC hour that instant falls in, so a lookup from 7 days and 20 minutes ago was
    charted but not counted among the matching entries."""
    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    seeding.append(
        [
            audit_patterns.lookup("alice", now - timedelta(days=7, minutes=20), MEETING),
            audit_patterns.lookup("alice", now - timedelta(hours=1), MEETING),
        ]
    )

    with time_machine.travel(now, tick=False):
        page = auditor_client.get(URL, {"via": ""})

    caption = _caption(page.content.decode())
    assert caption.startswith("Lookups per day: 1 in the 1 matching entry"), caption


# ---- A staff member's or a meeting's overview filtered by outcome counts other outcomes ----


@pytest.mark.parametrize(
    "narrowed",
    [{}, {"staff": "alice"}, {"meeting_id": "m-standup"}],
    ids=["whole log", "staff member", "meeting"],
)
def test_an_outcome_filter_counts_only_that_outcomes_calls_of_a_record_before_8_december(
    narrowed,
):
    """A part sealed as one record whatever its outcomes (a log from before 8 December 2026: 268
    found, 2 no answer in time, under "found"). Filtered by "found", the whole log's chart says
    268; a staff member's or a meeting's said 270 and listed "No answer in time: 2" among the
    outcomes of a filter on "found", and the most active staff and most looked-up meetings said
    270 everywhere."""
    moment = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    audit_spans.sealed_span(
        first=moment,
        last=moment + timedelta(minutes=45),
        outcomes={"found": 268, "timeout": 2},
        via="table",
    )
    rollup.catch_up()

    figures = overview.overview(
        EntryFilter(outcome="found", **narrowed), now=datetime(2026, 3, 11, tzinfo=UTC), zone=UTC
    )

    assert figures.lookups == 268
    assert [(item.outcome, item.lookups) for item in figures.outcomes] == [("found", 268)]
    assert figures.top_staff == [("alice", 268)]
    assert all(n == 268 for _, _, n in figures.top_meetings)
