"""A tally is never trusted to be well formed: a moment at the calendar's ends (valid ISO, but
before year 1 or after 9999 in the viewer's zone) still lets its record's pages open."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from audit.models import Action
from tests import audit_spans

pytestmark = pytest.mark.django_db

URL = reverse("audit:list")


# ---- A tally's moment at the calendar's end makes the audit pages a 500 ----


@pytest.mark.parametrize(
    ("zone", "moment"),
    [
        ("America/New_York", "0001-01-01T00:00:00Z"),  # west of UTC: before year 1
        ("Pacific/Kiritimati", "9999-12-31T23:59:59Z"),  # +14: after 9999
    ],
)
def test_a_record_whose_tally_names_a_moment_at_the_calendars_end_still_opens(
    auditor_client, zone, moment
):
    """records.py reads a tally "as it is, never trusted to be well formed", and a tampered
    record must still open to be seen. A `from`/`to`/`opened` of year 1 or 9999 is a valid ISO
    time, but in the viewer's zone it is before year 1 or after 9999: OverflowError, a 500 for
    the log page that lists it and for its own page."""
    entry = audit_spans.append_at(
        datetime(2026, 3, 10, 10, tzinfo=UTC),
        actor_username="alice",
        action=Action.LOOKUP,
        via="refresh",
        outcome="found",
        calls=3,
        tally={
            "kind": "span",
            "from": moment,
            "to": moment,
            "opened": moment,
            "outcomes": {"found": 3},
            "unanswered": 0,
        },
    )
    auditor_client.cookies["console_tz"] = zone

    with time_machine.travel(datetime(2026, 3, 11, tzinfo=UTC), tick=False):
        listed = auditor_client.get(URL, {"staff": "alice"})
        shown = auditor_client.get(reverse("audit:entry", args=[entry.pk]))

    assert listed.status_code == 200
    assert shown.status_code == 200
