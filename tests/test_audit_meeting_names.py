"""The audit pages name meetings by the title the console last saw, beside the ID: in the log's
rows, the overview's most looked-up meetings, a meeting's history page and an entry's page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import Action
from audit.services import Origin, record, remember_seen

pytestmark = pytest.mark.django_db

MEETING = "jh7825gcnfjpp4d08qjmm04x96jss2ek"
TITLE = "Support Team Daily Standup"


@pytest.fixture
def looked_up(agent):
    entry = record(
        origin=Origin.for_command(agent),
        action=Action.LOOKUP,
        via="page",
        deployment="dev",
        meeting_id=MEETING,
        outcome="found",
    )
    remember_seen([("dev", MEETING, TITLE, "active")], username="agent")
    return entry


def test_the_logs_rows_and_overview_name_the_meeting(auditor_client, looked_up):
    page = auditor_client.get(reverse("audit:list"), {"action": "lookup"}).content.decode()

    named = f'<bdi class="audit-title">{TITLE}</bdi>'
    rows = page[page.index("<tbody") :]
    assert named in rows
    top = page[page.index("Most looked-up meetings") :]
    assert named in top[: top.index("</ol>")]


def test_a_meetings_history_is_headed_by_its_title(auditor_client, looked_up):
    page = auditor_client.get(reverse("audit:meeting", args=[MEETING])).content.decode()

    heading = page[page.index("<h1>") : page.index("</h1>")]
    assert f'<bdi class="audit-title">{TITLE}</bdi>' in heading
    assert MEETING in heading


def test_an_entry_names_its_meeting(auditor_client, looked_up):
    page = auditor_client.get(reverse("audit:entry", args=[looked_up.pk])).content.decode()

    assert f'<bdi class="audit-title">{TITLE}</bdi>' in page


def test_a_meeting_never_found_is_shown_by_its_id_alone(auditor_client, agent):
    record(
        origin=Origin.for_command(agent),
        action=Action.LOOKUP,
        via="page",
        deployment="dev",
        meeting_id=MEETING,
        outcome="not_visible",
    )

    page = auditor_client.get(reverse("audit:list"), {"action": "lookup"}).content.decode()

    assert 'class="audit-title"' not in page
    assert MEETING in page


def test_a_title_cannot_turn_the_page_around_it(auditor_client, looked_up):
    remember_seen([("dev", MEETING, "evil\u202etxt.exe", "active")], username="agent")

    page = auditor_client.get(reverse("audit:meeting", args=[MEETING])).content.decode()

    assert "\u202e" not in page
    assert "U+202E" in page
