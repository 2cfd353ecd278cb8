"""One label per outcome on the audit pages: the log's badge, the entry's page, the filter's option
and the overview's outcome list all read the outcome table's label (connvo_admin/outcomes.py), and
an outcome this console does not know (written by an older or newer one) is shown as a console
failure in words, never as an error."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils.html import escape
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connvo_admin.outcomes import Outcome, Severity, describe, recorded_outcomes
from tests.conftest import examples

pytestmark = pytest.mark.django_db

LIST = reverse("audit:list")
MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
ROOT = Path(__file__).resolve().parent.parent
# The audit pages' own words for outcomes before the one table (audit/outcomes.py, and the
# filter's "not visible"): none of them may come back as a second copy.
OLD_WORDING = (
    "Not visible to them",
    "Connvo failed:",
    "Console failed:",
    "Console refused:",
    "Sign-in service failed",
    "Connvo refused their token",
    "No Connvo user for their token",
    "outcome_meaning",
    "audit.outcomes",
)
# Any text the outcome column can hold (PostgreSQL's text types refuse NUL; nothing decoded from
# a request holds a lone surrogate).
STORED_OUTCOMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=32,
)


def _label(severity: str, text: str) -> str:
    """A badge's visible label; the words after it, for those who do not see its colour, must
    say its severity."""
    label, hidden = re.fullmatch(
        r'(.*?)<span class="visually-hidden"> \((.*?)\)(?:</span>)?', text, re.S
    ).groups()
    assert hidden == Severity(severity).words
    return unescape(label)


def row_badge(page: str, pk: int) -> tuple[str, str]:
    """(severity, text) of the outcome badge in the log's row of entry `pk`."""
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    [row] = [row for row in rows if f'href="/audit/entries/{pk}/"' in row]
    severity, text = re.search(
        r'<span class="outcome outcome--(\w+)" data-outcome="[^"]*">(.*?)</span></span>', row, re.S
    ).groups()
    return severity, _label(severity, text)


def detail_badge(page: str) -> tuple[str, str, str]:
    """(severity, text, stored value) of the entry page's outcome."""
    severity, text, code = re.search(
        r'<dt>Outcome</dt><dd><span class="outcome outcome--(\w+)">(.*?)</span></span> '
        r'<code class="muted">(.*?)</code>',
        page,
        re.S,
    ).groups()
    return severity, _label(severity, text), unescape(code)


def overview_badges(page: str) -> list[tuple[str, str]]:
    """(severity, text) of each outcome in the overview's "How they ended"."""
    outcomes = page.split('<ul class="outcome-list">')[1].split("</ul>")[0]
    return [
        (severity, _label(severity, text))
        for severity, text in re.findall(
            r'<a href="[^"]*" class="outcome outcome--(\w+)">(.*?)</a>', outcomes, re.S
        )
    ]


def filter_options(page: str) -> list[tuple[str, str]]:
    """(value, text) of each option of the filter's Outcome field."""
    select = re.search(r'<select name="outcome"[^>]*>(.*?)</select>', page, re.S).group(1)
    return [
        (unescape(value), unescape(text))
        for value, text in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', select)
    ]


@pytest.mark.parametrize("outcome", recorded_outcomes(), ids=str)
def test_every_audit_surface_shows_the_tables_label(auditor_client, audit_entry, outcome):
    entry = audit_entry(username="alice", meeting_id=MEETING, outcome=outcome, via="page")
    handling = outcome.handling

    filtered = auditor_client.get(LIST, {"outcome": outcome.value}).content.decode()
    detail = auditor_client.get(reverse("audit:entry", args=[entry.pk])).content.decode()

    assert row_badge(filtered, entry.pk) == (handling.severity, outcome.label)
    assert detail_badge(detail) == (handling.severity, outcome.label, outcome.value)
    assert overview_badges(filtered) == [(handling.severity, outcome.label)]
    selected = re.search(r'<option value="(\w+)" selected>(.*?)</option>', filtered).groups()
    assert (selected[0], unescape(selected[1])) == (outcome.value, outcome.label)


def test_the_filter_offers_each_recorded_outcome_once_by_its_label(auditor_client):
    options = filter_options(auditor_client.get(LIST).content.decode())

    # And the calls a sealed span counted that never got an answer (audit/spans.py).
    assert options == [("", "Any")] + [(o.value, o.label) for o in recorded_outcomes()] + [
        ("unanswered", "Unanswered")
    ]
    labels = [text for _, text in options]
    assert len(set(labels)) == len(labels)  # two outcomes that read alike cannot be told apart


def test_the_staff_summary_and_a_meetings_deployments_name_not_visible_by_its_label(
    auditor_client, audit_entry
):
    audit_entry(username="bob", meeting_id=MEETING, deployment="prod", outcome="not_visible")
    label = escape(Outcome.NOT_VISIBLE.label)

    staff = auditor_client.get(reverse("audit:staff", args=["bob"])).content.decode()
    meeting = auditor_client.get(reverse("audit:meeting", args=[MEETING])).content.decode()

    summary = staff.split('<dl class="staff-summary">')[1].split("</dl>")[0]
    assert f"<dt>{label}</dt><dd>100% " in summary
    places = meeting.split('id="deployments-heading"')[1].split("</table>")[0]
    assert f'<th scope="col">{label}</th>' in places
    assert f'<td data-label="{label}">1</td>' in places


def test_an_unknown_outcome_is_a_console_failure_in_words(auditor_client, audit_entry):
    entry = audit_entry(username="alice", meeting_id=MEETING, outcome="archived_thing", via="page")

    listed = auditor_client.get(LIST)
    detail = auditor_client.get(reverse("audit:entry", args=[entry.pk]))

    assert listed.status_code == 200 and detail.status_code == 200
    page = listed.content.decode()
    assert row_badge(page, entry.pk) == (Severity.CONSOLE_FAILED, "Archived thing")
    assert overview_badges(page) == [(Severity.CONSOLE_FAILED, "Archived thing")]
    assert detail_badge(detail.content.decode()) == (
        Severity.CONSOLE_FAILED,
        "Archived thing",
        "archived_thing",
    )


def test_an_unknown_outcomes_link_in_the_overview_lists_its_entries(auditor_client, audit_entry):
    entry = audit_entry(username="alice", meeting_id=MEETING, outcome="archived_thing", via="page")
    audit_entry(username="alice", meeting_id=MEETING, outcome="found", via="page")
    page = auditor_client.get(LIST).content.decode()
    link = re.search(r'<a href="([^"]*)" class="outcome outcome--console_failed">', page).group(1)

    response = auditor_client.get(LIST + unescape(link))

    assert response.status_code == 200
    followed = response.content.decode()
    assert re.findall(r'href="/audit/entries/(\d+)/"', followed) == [str(entry.pk)]
    assert '<option value="archived_thing" selected>Archived thing</option>' in followed
    # Nothing longer than the column can be stored, so it is still not a valid choice.
    assert auditor_client.get(LIST, {"outcome": "x" * 33}).status_code == 400


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stored=STORED_OUTCOMES)
@example(stored="archived_thing")
@example(stored="<b>'&\"</b>")
@example(stored="found ")
@example(stored="x" * 32)
def test_the_audit_pages_show_any_stored_outcome(auditor_client, audit_entry, stored):
    # The log keeps entries across examples (it is append-only): each finds its own row.
    entry = audit_entry(username="alice", meeting_id=MEETING, outcome=stored, via="page")
    handling = describe(stored)
    if stored not in set(Outcome):
        assert handling.severity == Severity.CONSOLE_FAILED

    listed = auditor_client.get(LIST)
    detail = auditor_client.get(reverse("audit:entry", args=[entry.pk]))

    assert listed.status_code == 200 and detail.status_code == 200
    page = listed.content.decode()
    assert row_badge(page, entry.pk) == (handling.severity, handling.label)
    assert (handling.severity, handling.label) in overview_badges(page)
    assert detail_badge(detail.content.decode()) == (handling.severity, handling.label, stored)
    filtered = auditor_client.get(LIST, {"outcome": stored})
    assert filtered.status_code == 200
    assert row_badge(filtered.content.decode(), entry.pk) == (handling.severity, handling.label)


def test_no_second_vocabulary_in_the_audit_source():
    sources = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("audit/**/*.py")]
    found = [
        (str(path.relative_to(ROOT)), words)
        for path in sources
        for words in OLD_WORDING
        if words.lower() in path.read_text(encoding="utf-8").lower()
    ]

    assert any(path.parts[-2:] == ("audit", "entry_list.html") for path in sources)
    assert found == []
