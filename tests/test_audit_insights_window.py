"""The window `manage.py audit_insights` looks at comes from its arguments (--since, --now): a
window it can read runs, anything else is refused with a sentence (CommandError), never a
traceback, however far in the past or future or however long the number."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.management.commands.audit_insights import _moment
from tests.conftest import examples

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def insights(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_insights", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "99999999d"],
        ["--since", "999999999999d"],
        ["--since", "9" * 5000 + "h"],
        ["--now", "9999-12-31T23:59:59"],
        ["--now", "9999-12-31T23:59:59-05:00"],
        ["--since", "0001-01-01T00:00:00"],
        ["--since", "0001-01-02T00:00:00", "--now", "0001-01-03T00:00:00"],
        ["--since", "0001-01-01T00:00:00+01:00", "--now", "2026-01-01T00:00:00"],
    ],
)
def test_a_window_beyond_the_calendar_is_refused_with_a_sentence(db, args):
    with pytest.raises(CommandError, match="out of range"):
        insights(*args)


def test_a_long_window_well_inside_the_calendar_runs(db):
    out = insights("--since", "0100-01-01T00:00:00", "--now", "9000-01-01T00:00:00")

    assert out.strip() == "Nothing stands out."


SPANS = st.from_regex(r"\A[0-9]{1,14}[hd]\Z")
# Every date-time Python can hold, written as a person would type it.
MOMENTS = st.datetimes(timezones=st.none() | st.timezones() | st.just(UTC)).map(
    lambda moment: moment.isoformat()
)
ARGUMENT = SPANS | MOMENTS | st.text(max_size=30)


@given(text=ARGUMENT, now=st.datetimes(timezones=st.just(UTC)))
@example(text="99999999d", now=NOW)
@example(text="1d", now=datetime(1, 1, 1, tzinfo=UTC))
@example(text="9" * 5000 + "h", now=NOW)
def test_any_since_is_a_moment_or_refused_cleanly(text, now):
    try:
        moment = _moment(text, now=now)
    except CommandError:
        return
    assert moment.tzinfo is not None


@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(since=ARGUMENT, now=st.none() | MOMENTS)
@example(since="99999999d", now=None)
@example(since="24h", now="9999-12-31T23:59:59")
@example(since="0001-01-01T00:00:00", now=None)
def test_any_window_runs_or_is_refused_cleanly(db, since, now):
    args = ["--since", since] + ([] if now is None else ["--now", now])
    try:
        out = insights(*args)
    except CommandError:
        return
    assert out
