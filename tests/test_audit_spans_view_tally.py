"""A record's `tally` is read as it is: one from an older encoding may lack a key or hold another
type. Whatever it holds, the words, the figures, the pages, the summaries and the exports never
raise, and the figures still add up to the record's chained `calls`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import records, rollup
from audit.models import Action, ActivityHour, AuditEntry, StaffDay, Via
from tests.audit_spans import append_at
from tests.conftest import examples

MOMENT = datetime(2026, 3, 10, 10, 2, tzinfo=UTC)
COUNT = st.integers(min_value=0, max_value=2**31 - 1)
# What a database can store in JSON: PostgreSQL refuses NUL in a jsonb string, and no database a
# lone surrogate (the write side makes a tally's text storable, as audit.services does).
TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT, max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(TEXT, max_size=40), inner, max_size=4)
    ),
    max_leaves=12,
)
# A tally of a known kind with each of its keys present or not, of the right type or any other.
span_like = st.fixed_dictionaries(
    {"kind": st.sampled_from(["span", "repeats"])},
    optional={
        "span": json_values,
        "opened": st.one_of(json_values, st.datetimes(timezones=st.just(UTC)).map(str)),
        "from": st.one_of(json_values, st.just("2026-03-10T10:02:00Z"), st.just("not a time")),
        "to": st.one_of(json_values, st.just("2026-03-10T10:47:00")),
        "outcomes": st.one_of(
            json_values, st.dictionaries(st.text(TEXT, max_size=60), COUNT, max_size=6)
        ),
        "unanswered": st.one_of(json_values, COUNT),
        "first_request": json_values,
        "last_request": json_values,
        "final": json_values,
        "source": json_values,
        "sample": st.one_of(json_values, st.lists(st.text(TEXT, max_size=200), max_size=30)),
        "distinct": json_values,
    },
)
tallies = st.one_of(st.none(), json_values, span_like)
optional_count = st.one_of(st.none(), COUNT)
actions = st.sampled_from([Action.LOOKUP, Action.PERMISSION_DENIED, Action.SIGN_IN_FAILED])


@given(
    action=actions,
    outcome=st.text(TEXT, max_size=32),
    calls=optional_count,
    repeats=optional_count,
    tally=tallies,
)
def test_words_and_figures_never_raise_and_a_span_adds_up_to_its_calls(
    action, outcome, calls, repeats, tally
):
    entry = AuditEntry(
        at=MOMENT, action=action, via=Via.REFRESH, outcome=outcome, calls=calls, repeats=repeats,
        tally=tally, detail="",
    )  # fmt: skip

    words = records.record_words(entry, zone=UTC)
    figures = records.calls_by_outcome(
        action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally
    )

    assert isinstance(words, str)
    assert all(isinstance(n, int) and n > 0 for n in figures.values())
    assert all(len(name) <= records.OUTCOME_LENGTH for name in figures)
    if records.kind(tally) == "span" and action == Action.LOOKUP:
        assert sum(figures.values()) == (calls or 0)
    else:
        assert sum(figures.values()) == records.weight(action=action, calls=calls, repeats=repeats)


@pytest.mark.django_db
@settings(
    max_examples=examples(20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(calls=optional_count, repeats=optional_count, tally=tallies)
def test_pages_summaries_and_exports_take_any_tally(auditor_client, calls, repeats, tally):
    entry = append_at(
        MOMENT,
        actor_username="alice",
        action=Action.LOOKUP,
        via=Via.TABLE,
        meeting_id="m1",
        outcome="found",
        calls=calls,
        repeats=repeats,
        tally=tally,
    )

    assert auditor_client.get(reverse("audit:entry", args=[entry.pk])).status_code == 200
    assert auditor_client.get(reverse("audit:list"), {"since": "2026-03-10"}).status_code == 200
    assert auditor_client.get(reverse("audit:meeting", args=["m1"])).status_code == 200
    rollup.catch_up()
    export = auditor_client.get(reverse("audit:export", args=["jsonl"]))
    # One record a line, whatever the tally holds (`splitlines` also breaks at U+2028 and U+0085).
    lines = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines()]
    assert entry.pk in {line["id"] for line in lines}


@pytest.mark.django_db
def test_records_whose_calls_add_up_past_a_32_bit_integer_still_open_the_pages(auditor_client):
    """Each record's `calls` is at most 2**31 - 1; the summaries add them up per hour, day and
    staff member. Two such records in one hour (a tampered log, say) overflowed PostgreSQL's
    integer columns: the audit list, which brings the summaries up to date, answered 503 on
    every load from then on. The sums are bigints: the pages open and show the whole sum."""
    largest = 2**31 - 1
    for via in (Via.TABLE, Via.TABLE, Via.REFRESH, Via.REFRESH):
        append_at(
            MOMENT, actor_username="alice", action=Action.LOOKUP, via=via, meeting_id="m1",
            outcome="found", calls=largest,
        )  # fmt: skip

    assert auditor_client.get(reverse("audit:list"), {"since": "2026-03-10"}).status_code == 200
    assert auditor_client.get(reverse("audit:staff", args=["alice"])).status_code == 200
    hour = ActivityHour.objects.get(hour=MOMENT.replace(minute=0), via=Via.TABLE)
    assert hour.entries == 2 * largest
    day = StaffDay.objects.get(actor_username="alice")
    assert (day.lookups, day.refreshes) == (2 * largest, 2 * largest)
