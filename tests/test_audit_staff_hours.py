"""`StaffHour`, the per-hour summary the "worth a look" flags read a window's whole hours from: its
figures are the log's own whatever the batches and the order of the entries, and the flags'
hour-by-hour figures read through it are the ones the entries give."""

from __future__ import annotations

import importlib
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.db.models import F
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import insights, rollup, seeding
from audit.models import (
    ActivityDay,
    ActivityHour,
    AuditEntry,
    RollupProgress,
    StaffDay,
    StaffHour,
)
from tests.audit_patterns import lookup
from tests.conftest import examples

pytestmark = pytest.mark.django_db

START = datetime(2026, 5, 1, tzinfo=UTC)
DAYS = 4
STAFF = ["alice", "bob", "carol"]
MEETINGS = [f"jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m{n:02d}" for n in range(6)]
ROW = ("hour", "actor_username", "lookups", "not_visible", "meetings")


def _entries(rng: random.Random, count: int) -> list[dict]:
    """Lookups at random instants, appended in no particular order (an entry's id does not follow
    its time), a few with no meeting, some refreshes, CLI lookups and sign-ins among them."""
    entries = []
    for _ in range(count):
        at = START + timedelta(seconds=rng.randrange(DAYS * 86_400))
        if rng.random() < 0.1:
            at = at.replace(minute=0, second=0)  # on the hour: the edge of a bucket
        entry = lookup(
            rng.choice(STAFF),
            at,
            rng.choice(MEETINGS) if rng.random() < 0.95 else "",
            outcome=rng.choice(["found", "found", "not_visible", "timeout"]),
            via=rng.choice(["page", "page", "refresh", "cli"]),
        )
        if rng.random() < 0.05:
            entry.update(action="sign_in", via="", outcome="", meeting_id="", deployment="")
        entries.append(entry)
    return entries


@pytest.fixture
def staff_log(db) -> list[dict]:
    entries = _entries(random.Random(29), 700)
    seeding.append(entries)
    return entries


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _page_lookups(entries, since=None, until=None):
    for entry in entries:
        if entry["action"] != "lookup" or entry["via"] == "refresh":
            continue
        if since is not None and not since <= entry["at"] < until:
            continue
        yield entry


def _expected_rows(entries) -> list[tuple]:
    """`StaffHour`'s rows, counted here from the entries themselves."""
    hours: defaultdict[tuple, list] = defaultdict(lambda: [0, 0, set()])
    for entry in _page_lookups(entries):
        row = hours[(_hour(entry["at"]), entry["actor_username"])]
        row[0] += 1
        row[1] += entry["outcome"] == "not_visible"
        if entry["meeting_id"]:
            row[2].add(entry["meeting_id"])
    return sorted((*key, n, not_visible, len(met)) for key, (n, not_visible, met) in hours.items())


def _rows() -> list[tuple]:
    return sorted(StaffHour.objects.values_list(*ROW))


def _expected_recent(entries, since: datetime, until: datetime) -> dict:
    """What the flags read for the window: per staff member, lookups, not-visible answers,
    lookups per hour of the day, and the first hour with the most different meetings (when at
    least AUDIT_FLAG_MEETINGS_PER_HOUR)."""
    per_hour: defaultdict[tuple, list] = defaultdict(lambda: [0, 0, set()])
    for entry in _page_lookups(entries, since, until):
        if not entry["actor_username"]:
            continue
        row = per_hour[(entry["actor_username"], _hour(entry["at"]))]
        row[0] += 1
        row[1] += entry["outcome"] == "not_visible"
        if entry["meeting_id"]:
            row[2].add(entry["meeting_id"])
    found: dict[str, dict] = {}
    for (name, hour), (n, not_visible, met) in sorted(per_hour.items()):
        staff = found.setdefault(
            name, {"lookups": 0, "not_visible": 0, "by_hour": {}, "busiest": None}
        )
        staff["lookups"] += n
        staff["not_visible"] += not_visible
        staff["by_hour"][hour.hour] = staff["by_hour"].get(hour.hour, 0) + n
        if len(met) < django_settings.AUDIT_FLAG_MEETINGS_PER_HOUR:
            continue
        if staff["busiest"] is None or len(met) > staff["busiest"][1]:
            staff["busiest"] = (hour, len(met))
    return found


def _as_read(recent: dict) -> dict:
    return {
        name: {
            "lookups": item.lookups,
            "not_visible": item.not_visible,
            "by_hour": item.by_hour_of_day,
            "busiest": item.busiest_hour,
        }
        for name, item in recent.items()
    }


def _count_afresh(*, limit: int | None) -> None:
    for model in (ActivityHour, ActivityDay, StaffDay, StaffHour):
        model.objects.all().delete()
    RollupProgress.objects.update(last_entry_id=0)
    if limit != 0:
        rollup.catch_up(limit=limit)


def test_staff_hours_hold_the_logs_figures_whatever_the_batches(staff_log):
    """Batches end mid-hour and entries arrive out of time order: an hour's different meetings
    are counted again from its entries each time a batch touches it, never added up."""
    while rollup.catch_up(limit=53):
        pass

    assert _rows() == _expected_rows(staff_log)
    assert StaffHour.objects.filter(meetings__gt=1).exists()  # the test has something to check


@pytest.mark.parametrize("batch", [3, 17, 200])
def test_staff_hours_hold_the_logs_figures_when_entries_come_in_time_order(db, batch):
    """The usual case: each batch adds to recent hours' meetings, older hours close. (Batches of
    3 stand for the smallest: counting one entry at a time, 500 counts, took 40 s on PostgreSQL
    beside the browser tests and tells nothing more.)"""
    entries = sorted(_entries(random.Random(batch), 500), key=lambda entry: entry["at"])
    for first in range(0, len(entries), batch):
        seeding.append(entries[first : first + batch])
        rollup.catch_up()

    assert _rows() == _expected_rows(entries)
    newest = max(_hour(entry["at"]) for entry in entries)
    kept = StaffHour.objects.filter(meeting_ids__isnull=False)
    assert kept.exists()
    assert all(item.hour >= newest - rollup.OPEN_HOURS for item in kept)
    assert all(item.meetings == len(item.meeting_ids) for item in kept)


def test_an_entry_late_for_a_closed_hour_is_counted_with_the_hours_entries(db):
    at = START + timedelta(hours=9, minutes=10)
    seeding.append([lookup("alice", at, MEETINGS[0]), lookup("alice", at, MEETINGS[1])])
    rollup.catch_up()
    seeding.append([lookup("bob", at + timedelta(hours=5), MEETINGS[0])])
    rollup.catch_up()
    assert StaffHour.objects.get(actor_username="alice").meeting_ids is None  # closed

    seeding.append(
        [
            lookup("alice", at + timedelta(minutes=1), MEETINGS[0]),
            lookup("alice", at + timedelta(minutes=2), MEETINGS[2]),
        ]
    )
    rollup.catch_up()

    alice = StaffHour.objects.get(actor_username="alice")
    assert (alice.lookups, alice.meetings, alice.meeting_ids) == (4, 3, None)


def test_a_staff_hour_counts_a_meeting_looked_up_twice_once(db):
    at = START + timedelta(hours=9, minutes=10)
    seeding.append([lookup("alice", at, MEETINGS[0]), lookup("alice", at, MEETINGS[1])])
    rollup.catch_up()
    seeding.append(
        [
            lookup("alice", at + timedelta(minutes=5), MEETINGS[0]),
            lookup("alice", at + timedelta(minutes=6), MEETINGS[2], outcome="not_visible"),
            lookup("alice", at + timedelta(minutes=7), MEETINGS[3], via="refresh"),
        ]
    )
    rollup.catch_up()

    assert _rows() == [(_hour(at), "alice", 4, 1, 3)]


@given(
    since=st.datetimes(
        min_value=datetime(2026, 4, 30, 20), max_value=datetime(2026, 5, 5), timezones=st.just(UTC)
    ),
    length=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=5)),
    counted=st.one_of(st.none(), st.integers(min_value=0, max_value=700)),
    busy=st.integers(min_value=1, max_value=4),
)
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_the_flags_read_the_logs_own_figures_hour_by_hour(staff_log, since, length, counted, busy):
    """Whole hours from the summary, the window's partial ends and the hours holding entries not
    yet counted from the entries: together, exactly what the entries alone say."""
    _count_afresh(limit=counted)
    until = since + length

    with override_settings(AUDIT_FLAG_MEETINGS_PER_HOUR=busy):
        read = _as_read(insights._recent(since, until))

        assert read == _expected_recent(staff_log, since, until)
        assert read == _as_read(insights.recent_from_entries(since, until))


def test_hours_not_yet_counted_far_apart_are_read_once(db):
    """More separate hours hold uncounted entries than the query names one by one: the entries
    are read over one span from the first to the last, and the summary's hours inside it are
    left out, not counted twice."""
    counted = [lookup("alice", START + timedelta(hours=2 * n + 1), MEETINGS[0]) for n in range(150)]
    seeding.append(counted)
    rollup.catch_up()
    later = [lookup("alice", START + timedelta(hours=2 * n), MEETINGS[1]) for n in range(150)]
    seeding.append(later)
    since, until = START - timedelta(hours=1), START + timedelta(days=14)

    with override_settings(AUDIT_FLAG_MEETINGS_PER_HOUR=1):
        read = _as_read(insights._recent(since, until))

        assert read == _expected_recent([*counted, *later], since, until)
    assert read["alice"]["lookups"] == 300


def test_whole_hours_come_from_the_summary(staff_log):
    rollup.catch_up()
    hours = set(StaffHour.objects.filter(actor_username="alice").values_list("hour", flat=True))
    first = min(hour for hour in hours if hour + timedelta(hours=1) in hours)
    since = first + timedelta(minutes=20)
    until = since + timedelta(hours=5)
    before = insights._recent(since, until)["alice"].lookups

    StaffHour.objects.filter(actor_username="alice", hour=first + timedelta(hours=1)).update(
        lookups=F("lookups") + 1_000
    )
    # The window holds only part of this one: it is read from the entries.
    StaffHour.objects.filter(actor_username="alice", hour=first).update(
        lookups=F("lookups") + 1_000
    )

    assert insights._recent(since, until)["alice"].lookups == before + 1_000


def test_a_window_ending_after_its_last_hours_entries_reads_that_hour_from_the_summary(db):
    """The usual window ends now, in an hour that is still filling: nothing of the hour lies
    after it, so the hour's summary row is the window's part of it."""
    hour = START + timedelta(hours=9)
    seeding.append([lookup("alice", hour + timedelta(minutes=n), MEETINGS[n]) for n in (5, 1, 2)])
    rollup.catch_up()
    StaffHour.objects.filter(hour=hour).update(lookups=F("lookups") + 1_000)

    assert insights._recent(hour - timedelta(hours=2), hour + timedelta(minutes=30))[
        "alice"
    ].by_hour_of_day == {9: 1_003}
    # A window ending before the hour's last entry reads the hour from the entries.
    assert insights._recent(hour - timedelta(hours=2), hour + timedelta(minutes=3))[
        "alice"
    ].by_hour_of_day == {9: 2}


def test_entries_not_yet_counted_are_read_with_their_hour(staff_log):
    """An hour the summary holds gets a lookup it has not counted: the hour is read from the
    entries, so it is counted once, with its different meetings."""
    rollup.catch_up()
    counted = StaffHour.objects.filter(actor_username="bob").order_by("hour")[10]
    new = lookup("bob", counted.hour + timedelta(minutes=30), "a-meeting-new-to-this-hour")
    seeding.append([new])
    window = (counted.hour - timedelta(hours=3), counted.hour + timedelta(hours=3))

    recent = insights._recent(*window)["bob"]

    assert recent.by_hour_of_day[counted.hour.hour] == counted.lookups + 1
    assert _as_read({"bob": recent}) == {"bob": _expected_recent([*staff_log, new], *window)["bob"]}


def test_the_migration_counts_what_was_counted_before_it(staff_log):
    rollup.catch_up(limit=500)
    counted = _rows()
    StaffHour.objects.all().delete()
    migration = importlib.import_module("audit.migrations.0013_staff_hour")

    migration.hours_of_the_counted_entries(apps, None)

    assert _rows() == counted
    first_500 = AuditEntry.objects.order_by("id").values_list("id", flat=True)[499]
    assert RollupProgress.objects.get().last_entry_id == first_500


def test_hour_spans_join_neighbours_and_stay_short():
    hours = [START + timedelta(hours=n) for n in (0, 1, 2, 5, 7, 8)]

    assert rollup.hour_spans(hours) == [
        (hours[0], START + timedelta(hours=3)),
        (hours[3], START + timedelta(hours=6)),
        (hours[4], START + timedelta(hours=9)),
    ]
    assert rollup.hour_spans(hours, most=2) == [(hours[0], START + timedelta(hours=9))]
    assert rollup.hour_spans([]) == []
