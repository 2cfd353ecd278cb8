"""The overview at the top of the audit log: count, lookups over time, outcomes in plain words,
most active staff and most looked-up meetings, each narrowing the filter."""

from __future__ import annotations

import html
import importlib
import os
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import overview, rollup, seeding, services
from audit.models import (
    DAY_HOURS,
    Action,
    ActivityDay,
    ActivityHour,
    AuditEntry,
    RollupProgress,
    StaffDay,
    StaffHour,
)
from audit.selectors import EntryFilter
from connvo_admin.outcomes import Outcome
from tests.audit_patterns import lookup
from tests.audit_spans import counted
from tests.conftest import examples, shared_rows

pytestmark = pytest.mark.django_db

URL = reverse("audit:list")
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
OTHER = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1zzz"
DASH = "\N{EN DASH}"  # between the first and last day of a range, as the page writes it


@pytest.fixture
def log(db):
    """Three days of lookups: alice busiest, one meeting most looked up."""
    entries = []
    for n in range(6):
        entries.append(lookup("alice", NOW - timedelta(hours=2, minutes=n), MEETING))
    entries.append(lookup("alice", NOW - timedelta(hours=1), OTHER, outcome="not_visible"))
    entries.append(lookup("bob", NOW - timedelta(days=2), MEETING, outcome="timeout"))
    entries.append(lookup("bob", NOW - timedelta(minutes=5), MEETING, via="refresh"))
    entries.append(lookup("carol", NOW - timedelta(days=20), OTHER))  # outside the last 7 days
    seeding.append(sorted(entries, key=lambda entry: entry["at"]))


def text(page: str) -> str:
    """The page as a reader reads it: no tags, one space between words."""
    words = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return re.sub(r" ([,.:;)])", r"\1", words)


def get(client, params=None):
    with time_machine.travel(NOW, tick=False):
        return client.get(URL, params or {}).content.decode()


def test_overview_counts_the_last_seven_days_of_the_filter(auditor_client, log):
    page = get(auditor_client)

    assert "The last 7 days, since" in text(page)
    # The refresh and carol's are left out.
    assert "8 entries match the filter, of every kind" in text(page)
    assert "Lookups per day: 8 in the 8 matching entries, at most 7 in one day" in text(page)


def test_the_count_and_the_chart_say_what_each_counts(auditor_client, log, audit_entry):
    # "98 entries match" beside "Lookups per day: 67 in all" read as a contradiction.
    for _ in range(2):
        audit_entry(username="alice", action=Action.SIGN_IN, at=NOW - timedelta(hours=3))

    everything = text(get(auditor_client))
    lookups_only = text(get(auditor_client, {"action": "lookup"}))

    assert "10 entries match the filter, of every kind (lookups, sign-ins" in everything
    assert "Lookups per day: 8 in the 10 matching entries" in everything
    assert "8 entries match the filter." in lookups_only
    assert "Meeting lookup per day: 8 in all" in lookups_only


def test_lookups_in_fewer_entries_are_not_a_share_of_them(auditor_client, log):
    # "Lookups per day: 59 of the 3 matching entries": a counted record is one entry standing
    # for many refused lookups, so the chart's figure is not a part of the count.
    counted(
        first=NOW - timedelta(hours=1),
        last=NOW - timedelta(minutes=59, seconds=10),
        repeats=57,
        action=Action.LOOKUP,
        outcome=Outcome.LOOKUP_LIMIT,
        source="alice",
        username="alice",
        detail="",
    )

    page = text(get(auditor_client, {"outcome": Outcome.LOOKUP_LIMIT}))

    assert (
        "Lookups per day: 57 in the 1 matching entry (a span or a counted record stands for many)"
        in page
    )
    assert " of the " not in page
    everything = text(get(auditor_client))
    assert "Lookups per day: 65 in the 9 matching entries (a span or a counted" in everything


@pytest.mark.parametrize(
    ("params", "zone", "says"),
    [
        (
            {"since": "2026-03-09", "until": "2026-03-10"},
            "UTC",
            f"9 Mar 2026 {DASH} 10 Mar 2026 (UTC)",
        ),
        ({"since": "2026-03-10", "until": "2026-03-10"}, "UTC", "Overview 10 Mar 2026 (UTC)"),
        ({"since": "2026-03-09"}, "Europe/Paris", "Since 9 Mar 2026 (Europe/Paris)"),
        (
            {"until": "2026-03-10"},
            "Pacific/Kiritimati",
            f"4 Mar 2026 {DASH} 10 Mar 2026 (the 7 days to the To date) (Pacific/Kiritimati)",
        ),
        ({}, "Europe/Paris", "The last 7 days, since 3 Mar 2026, 16:30:00 (Europe/Paris)"),
    ],
)
def test_the_range_reads_as_the_log_writes_its_days_and_times(
    auditor_client, log, params, zone, says
):
    """The days the filter names, not the exclusive midnight after the last one, in the format
    and zone of the entries' own times."""
    auditor_client.cookies["console_tz"] = zone

    assert says in text(get(auditor_client, params))


def test_outcomes_in_plain_words_with_their_severity_and_a_narrowing_link(auditor_client, log):
    page = get(auditor_client)

    hidden = '<span class="visually-hidden"> ({})</span></a>'
    assert re.search(r'href="\?outcome=found"\s+class="outcome outcome--found">Found<', page)
    label = f'class="outcome outcome--refused">{Outcome.NOT_VISIBLE.label}'
    assert label + hidden.format("refused as designed") in page
    label = f'class="outcome outcome--connvo_failed">{Outcome.TIMEOUT.label}'
    assert label + hidden.format("Connvo failed") in page
    assert "not_visible</span>" not in page  # no snake_case on the list


def test_most_active_staff_and_meetings_narrow_the_filter(auditor_client, log):
    page = get(auditor_client)

    staff = re.findall(
        r'<li><a href="\?staff=(\w+)">\w+</a> <span class="muted">(\d+)</span>', page
    )
    assert staff == [("alice", "7"), ("bob", "1")]
    assert f'href="?meeting={MEETING}&amp;deployment=prod"' in page
    assert page.index(f"?meeting={MEETING}") < page.index(f"?meeting={OTHER}")


def test_ids_are_whole_with_a_copy_button(auditor_client, log):
    page = get(auditor_client)

    head, tail = MEETING[:-6], MEETING[-6:]
    assert (
        f'<span class="full-id__head">{head}</span><span class="full-id__tail">{tail}</span>'
        in page
    )
    assert 'class="copy-button js-copy" data-copy-target="full-id-1"' in page
    assert MEETING[:14] + "…" not in page


def test_chart_numbers_are_a_table_too(auditor_client, log):
    page = get(auditor_client, {"since": "2026-03-10", "until": "2026-03-10"})

    assert "Lookups per hour" in page
    assert '<th scope="col">Found</th><th scope="col">Not found</th>' in page
    rows = re.findall(
        r"<tr><td>10 Mar 2026, (\d\d):00</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td></tr>", page
    )
    assert len(rows) == 24
    hours = {hour: (int(n), int(found), int(other)) for hour, n, found, other in rows}
    # Alice's six found lookups at 13:00, her "not a participant" at 14:00.
    assert hours["13"] == (6, 6, 0) and hours["14"] == (1, 0, 1) and hours["12"] == (0, 0, 0)
    assert page.count('<g class="audit-chart__bucket">') == 24
    assert page.count('class="audit-chart__bar audit-chart__bar--found"') == 1
    assert page.count('class="audit-chart__bar audit-chart__bar--other"') == 1


@pytest.mark.parametrize(
    ("peak", "axis"),
    [
        (0, (0, 0)),
        (1, (2, 1)),
        (3, (4, 2)),
        (7, (8, 4)),
        (30, (30, 15)),
        (67, (80, 40)),
        (147, (160, 80)),
        (2_001, (3_000, 1_500)),
        (98_765, (100_000, 50_000)),
    ],
)
def test_the_y_axis_is_the_peak_rounded_up_to_a_whole_midpoint(peak, axis):
    summary = overview.Overview(
        since=NOW, until=NOW, default_range=False, entries=peak, entries_bounded=False,
        what="lookups", split=True, lookups=peak, per="hour",
        buckets=[overview.Bucket(start=NOW, lookups=peak, found=peak // 3)], outcomes=[],
        top_staff=[], staff_counted="entries", top_meetings=[], sample=None,
    )  # fmt: skip

    assert summary.axis == axis
    if peak:
        (bar,) = summary.bars
        # Drawn to the scale, not to the peak: the bar's top is at peak / axis of the height.
        drawn = bar["found_height"] + bar["other_height"]
        assert drawn == pytest.approx(peak / axis[0] * overview.CHART_HEIGHT, abs=1.6)
        assert bar["other_y"] + bar["other_height"] == pytest.approx(bar["found_y"])


def test_the_chart_has_a_scale_and_a_legend_for_its_two_series(auditor_client, log):
    page = get(auditor_client)

    ticks = re.findall(r'class="audit-chart__tick audit-chart__tick--(\w+)">([\d,]+)<', page)
    assert ticks == [("top", "8"), ("mid", "4"), ("zero", "0")]  # at most 7 in one day
    legend = re.search(r'<ul class="audit-chart__legend">(.*?)</ul>', page, re.S).group(1)
    assert "Found" in legend and "Not found" in legend


def test_entries_other_than_lookups_are_charted_without_a_split(auditor_client, log):
    page = get(auditor_client, {"action": "sign_in"})

    assert "audit-chart__legend" not in page
    assert '<th scope="col">Found</th>' not in page


def test_a_meeting_first_looked_up_minutes_ago_is_drawn_per_hour_from_then(auditor_client, db):
    seeding.append([lookup("alice", NOW - timedelta(minutes=20), MEETING)])

    with time_machine.travel(NOW, tick=False):
        response = auditor_client.get(reverse("audit:meeting", args=[MEETING]))

    assert f"Its whole history: 10 Mar 2026, 15:10:00 {DASH} now" in text(response.content.decode())
    assert response.context["overview"].per == "hour"
    assert len(response.context["overview"].buckets) == 1  # 15:00-16:00, not 7 days of bars


def test_count_stops_at_its_bound(auditor_client, log, monkeypatch):
    monkeypatch.setattr(overview, "COUNT_BOUND", 3)

    page = get(auditor_client)

    assert "More than 3 entries match the filter" in text(page)
    assert "Lookups per day: 8 in the more than 3 matching entries" in text(page)


def test_a_meetings_overview_reads_its_own_entries(auditor_client, log):
    with time_machine.travel(NOW, tick=False):
        page = auditor_client.get(reverse("audit:meeting", args=[MEETING])).content.decode()

    # From its first entry (bob's, two days ago), whether or not that is within the last 7 days
    # (carol's of OTHER): it said "3 Mar" (7 days ago) of a meeting first looked up on 8 Mar.
    assert f"Its whole history: 8 Mar 2026, 15:30:00 {DASH} now" in text(page)
    with time_machine.travel(NOW, tick=False):
        other = auditor_client.get(reverse("audit:meeting", args=[OTHER])).content.decode()
    assert f"Its whole history: 18 Feb 2026, 15:30:00 {DASH} now" in text(other)
    assert "Lookups per hour: 7 in the 7 matching entries" in text(page)  # two days: per hour
    assert f'class="outcome outcome--connvo_failed">{Outcome.TIMEOUT.label}<span' in page


def test_summaries_agree_with_the_entries_whatever_the_batches(log):
    assert rollup.catch_up(limit=4) == 4
    assert rollup.catch_up(limit=4) == 4
    assert rollup.catch_up() == 2
    assert rollup.catch_up() == 0

    assert sum(ActivityHour.objects.values_list("entries", flat=True)) == 10
    alice = StaffDay.objects.get(actor_username="alice")
    assert (alice.lookups, alice.not_visible, alice.refreshes) == (7, 1, 0)
    assert alice.hours == (1 << 13) | (1 << 14)
    bob = StaffDay.objects.filter(actor_username="bob").order_by("day")
    assert [(day.lookups, day.refreshes) for day in bob] == [(1, 0), (0, 1)]


def test_same_figures_from_the_summaries_and_from_the_entries(log):
    rollup.catch_up()
    summed = overview.overview(EntryFilter(), now=NOW, zone=UTC)
    read = overview.overview(EntryFilter(staff="alice"), now=NOW, zone=UTC)

    assert summed.lookups == 8
    assert [(item.outcome, item.lookups) for item in summed.outcomes] == [
        ("found", 6),
        ("not_visible", 1),
        ("timeout", 1),
    ]
    assert read.lookups == 7
    assert read.buckets[-1].lookups == 7 and summed.buckets[-1].lookups == 7


@pytest.mark.parametrize("zone", [UTC, ZoneInfo("Asia/Tokyo")])
def test_most_active_staff_of_a_range_count_only_its_days(audit_entry, zone):
    """From the per-day summary (UTC days): the days that overlap the range, not the day after
    its last one, which `until` (the midnight after it) falls on."""
    audit_entry(username="alice", at=datetime(2026, 3, 9, 12, tzinfo=UTC), outcome="found")
    for n in range(5):
        audit_entry(username="bob", at=datetime(2026, 3, 10, 12, n, tzinfo=UTC), outcome="found")
    rollup.catch_up()
    one_day = EntryFilter(
        since=datetime(2026, 3, 9, tzinfo=zone), until=datetime(2026, 3, 10, tzinfo=zone)
    )

    figures = overview.overview(one_day, now=datetime(2026, 3, 12, tzinfo=UTC), zone=zone)

    assert figures.staff_counted == "days"
    assert figures.top_staff == [("alice", 1)]


def test_most_active_staff_of_one_day_on_the_page(auditor_client, audit_entry):
    audit_entry(username="alice", at=datetime(2026, 3, 9, 12, tzinfo=UTC), outcome="found")
    audit_entry(username="bob", at=datetime(2026, 3, 10, 9, tzinfo=UTC), outcome="found")
    rollup.catch_up()

    with time_machine.travel(datetime(2026, 3, 12, tzinfo=UTC), tick=False):
        page = auditor_client.get(
            reverse("audit:list"), {"since": "2026-03-09", "until": "2026-03-09"}
        ).content.decode()

    top = page.split("Most active staff")[1].split("</ol>")[0]
    assert ">alice</a>" in top and "bob" not in top


def test_writing_an_entry_does_not_touch_the_summaries(audit_entry):
    audit_entry(username="alice", meeting_id=MEETING, outcome="found", via="page")

    assert not ActivityHour.objects.exists()
    assert rollup.catch_up() == 1
    assert ActivityHour.objects.get().entries == 1


# A long range is read from the per-day summary, its partial days at either end from the hourly
# one: the figures must be the log's own, in any time zone, whatever the batches counted.
LONG_START = datetime(2026, 2, 1, tzinfo=UTC)
LONG_DAYS = 70  # across both DST changes of New York (8 March) and Berlin (29 March)
ZONES = [
    "UTC",
    "Pacific/Kiritimati",
    "America/New_York",
    "Europe/Berlin",
    "Pacific/Pago_Pago",
    "Asia/Kolkata",  # half an hour off UTC: its days start inside a UTC hour
    "Asia/Kathmandu",  # and a quarter of an hour
]
if os.environ.get("CONSOLE_TEST_TZ"):  # the run's own local zone, when the suite is moved
    ZONES.append(os.environ["CONSOLE_TEST_TZ"])


def _seed_a_long_log() -> list[tuple]:
    """Seventy days of entries at random instants, a few on the hour and at midnight, counted
    into the summaries in uneven batches."""
    rng = random.Random(15)
    instants = [
        LONG_START + timedelta(seconds=rng.randrange(LONG_DAYS * 86_400)) for _ in range(2_500)
    ]
    instants += [
        LONG_START + timedelta(days=day, hours=rng.choice([0, 5, 10])) for day in range(60)
    ]
    entries = []
    for at in sorted(instants):
        entry = lookup(
            rng.choice(["alice", "bob"]),
            at,
            MEETING,
            outcome=rng.choice(["found", "found", "not_visible", "timeout"]),
            via=rng.choice(["page", "page", "refresh", "cli"]),
        )
        entry["deployment"] = rng.choice(["prod", "dev"])
        if rng.random() < 0.1:
            entry.update(action="sign_in", via="", outcome="", meeting_id="", deployment="")
        entries.append(entry)
    seeding.append(entries)
    while rollup.catch_up(limit=777):
        pass
    return list(AuditEntry.objects.values_list("at", "action", "via", "deployment", "outcome"))


def _floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# The overviews below are taken after the whole log was written, as they always are.
LONG_NOW = LONG_START + timedelta(days=LONG_DAYS + 30)


def _from_the_log(rows, entry_filter: EntryFilter, zone, per: str) -> tuple[Counter, ...]:
    """(lookups per chart bucket, found ones per bucket, per outcome) counted from the entries
    themselves, those in [since, until) as the list holds them (a partial first hour is a bar of
    its own from `since`, in the viewer's first day), in buckets of the overview's `per` (its
    chart covers only the part of the range that holds entries, so a range reaching back before
    the log may be charted per hour). Whole hours once: in a +05:30 zone, a one-day range's chart
    also counted a lookup of 23:40 the day before, which the list did not hold."""
    since, until = entry_filter.since, entry_filter.until
    action = entry_filter.action or "lookup"
    chosen = [
        (at, outcome)
        for at, entry_action, via, deployment, outcome in rows
        if since <= at < until
        and entry_action == action
        and (via != "refresh" or entry_filter.include_refreshes or entry_filter.via == "refresh")
        and all(
            not wanted or wanted == value
            for wanted, value in (
                (entry_filter.via, via),
                (entry_filter.deployment, deployment),
                (entry_filter.outcome, outcome),
            )
        )
    ]
    if per == "hour":

        def key(at):
            return max(_floor(at), since)
    else:

        def key(at):
            return max(_floor(at), since).astimezone(zone).date()

    buckets = Counter(key(at) for at, _ in chosen)
    found = Counter(key(at) for at, outcome in chosen if outcome == "found")
    return buckets, found, Counter(outcome for _, outcome in chosen if outcome)


def _from_the_overview(entry_filter: EntryFilter, zone) -> tuple[Counter, Counter, Counter, str]:
    summary = overview.overview(entry_filter, now=LONG_NOW, zone=zone)
    hourly = summary.per == "hour"

    def counted(field: str) -> Counter:
        return Counter(
            {
                (b.start.astimezone(UTC) if hourly else b.start.date()): getattr(b, field)
                for b in summary.buckets
                if getattr(b, field)
            }
        )

    buckets = counted("lookups")
    assert summary.lookups == buckets.total()
    outcomes = Counter({item.outcome: item.lookups for item in summary.outcomes})
    return buckets, counted("found"), outcomes, summary.per


DAY_ROW = ("day", "action", "via", "deployment", "outcome", "entries", *DAY_HOURS)


class TestALongLog:
    """Seventy days of entries, seeded once for these tests (`shared_rows`: each test's own
    writes are still rolled back)."""

    @pytest.fixture(scope="class")
    @classmethod
    def long_log(cls, django_db_setup, django_db_blocker):
        with shared_rows(django_db_blocker):
            yield _seed_a_long_log()

    @pytest.mark.parametrize("zone_name", ZONES)
    def test_a_long_ranges_figures_are_the_logs_own_in_any_time_zone(self, long_log, zone_name):
        zone = ZoneInfo(zone_name)
        # What the filter form makes of "From 3 Feb To 4 Apr": the zone's local midnights.
        since = datetime(2026, 2, 3, tzinfo=zone)
        until = datetime(2026, 4, 5, tzinfo=zone)
        for entry_filter in [
            EntryFilter(since=since, until=until),
            EntryFilter(since=since, until=until, include_refreshes=True),
            EntryFilter(since=since, until=until, deployment="dev", outcome="not_visible"),
            EntryFilter(since=since, until=until, action="sign_in"),
        ]:
            buckets, found, outcomes, per = _from_the_overview(entry_filter, zone)

            assert per == "day"
            assert (buckets, found, outcomes) == _from_the_log(long_log, entry_filter, zone, per)
            assert len(buckets) > 50

    def test_the_day_summary_holds_the_hourly_one_summed(self, long_log):
        per_day: Counter = Counter()
        for row in ActivityHour.objects.all():
            key = (
                row.hour.astimezone(UTC).date(),
                row.action,
                row.via,
                row.deployment,
                row.outcome,
            )
            per_day[(*key, row.hour.astimezone(UTC).hour)] += row.entries
        from_days: Counter = Counter()
        for day in ActivityDay.objects.all():
            key = (day.day, day.action, day.via, day.deployment, day.outcome)
            hours = [getattr(day, name) for name in DAY_HOURS]
            assert day.entries == sum(hours)
            from_days.update({(*key, hour): n for hour, n in enumerate(hours) if n})

        assert from_days == per_day
        assert sum(per_day.values()) == len(long_log)

    def test_the_migration_sums_the_hours_counted_before_it(self, long_log):
        from django.apps import apps

        migration = importlib.import_module("audit.migrations.0012_activity_day")
        counted = sorted(ActivityDay.objects.values_list(*DAY_ROW))
        ActivityDay.objects.all().delete()

        migration.days_from_hours(apps, None)

        assert sorted(ActivityDay.objects.values_list(*DAY_ROW)) == counted

    @given(
        since=st.datetimes(
            min_value=datetime(2026, 1, 30), max_value=datetime(2026, 4, 15), timezones=st.just(UTC)
        ),
        length=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=60)),
        zone_name=st.sampled_from(ZONES),
        field=st.sampled_from(
            [
                {},
                {"include_refreshes": True},
                {"via": "refresh"},
                {"via": "cli"},
                {"outcome": "timeout"},
                {"deployment": "prod", "outcome": "found"},
                {"action": "sign_in"},
            ]
        ),
    )
    @settings(
        max_examples=examples(60), suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    def test_any_range_filter_and_zone_gives_the_logs_own_figures(
        self, long_log, since, length, zone_name, field
    ):
        zone = ZoneInfo(zone_name)
        entry_filter = EntryFilter(since=since, until=since + length, **field)

        buckets, found, outcomes, per = _from_the_overview(entry_filter, zone)

        assert (buckets, found, outcomes) == _from_the_log(long_log, entry_filter, zone, per)

    def test_a_range_of_centuries_is_charted_from_the_oldest_entry_to_now_per_month(self, long_log):
        """1900 to 9998 is a valid range (the widest the form takes): the chart covers only where
        entries can be, and a span of years is drawn per month, not as three million empty days."""
        zone = ZoneInfo("Europe/Berlin")
        entry_filter = EntryFilter(
            since=datetime(1900, 1, 1, tzinfo=zone), until=datetime(9998, 12, 31, tzinfo=zone)
        )
        now = datetime(2028, 12, 15, 12, tzinfo=UTC)

        summary = overview.overview(entry_filter, now=now, zone=zone)

        assert summary.per == "month"
        assert summary.buckets[0].start == datetime(2026, 2, 1, tzinfo=zone)
        assert summary.buckets[-1].start == datetime(2028, 12, 1, tzinfo=zone)
        assert len(summary.buckets) == 35
        by_month = Counter()
        for at, action, via, _, _ in long_log:
            if action == "lookup" and via != "refresh":
                local = at.astimezone(zone)
                by_month[datetime(local.year, local.month, 1, tzinfo=zone)] += 1
        assert {b.start: b.lookups for b in summary.buckets if b.lookups} == dict(by_month)
        label, first = summary.table[0]
        assert (label, first.lookups) == (
            "February 2026",
            by_month[datetime(2026, 2, 1, tzinfo=zone)],
        )
        assert summary.scale == ("Feb 2026", "Dec 2028")
        # Beyond twenty years of entries, per year.
        assert overview._per(timedelta(days=366 * 21)) == "year"

    def test_the_widest_range_on_the_page_draws_a_bounded_chart(self, auditor_client, long_log):
        html = get(auditor_client, {"since": "1900-01-01", "until": "9998-12-31"})

        assert html.count('class="audit-chart__bar"') <= 400


def _summaries() -> tuple[list, list, list, list]:
    return (
        sorted(ActivityHour.objects.values_list(*KEY_ROW)),
        sorted(ActivityDay.objects.values_list(*DAY_ROW)),
        sorted(StaffDay.objects.values_list(*STAFF_ROW)),
        sorted(StaffHour.objects.values_list(*STAFF_HOUR_ROW)),
    )


KEY_ROW = ("hour", "action", "via", "deployment", "outcome", "entries")
STAFF_ROW = ("day", "actor_username", "lookups", "not_visible", "refreshes", "hours")
STAFF_HOUR_ROW = ("hour", "actor_username", "lookups", "not_visible", "meetings")


@pytest.mark.parametrize("counted_first", [None, 400, 1_000])
def test_a_purge_takes_its_entries_out_of_the_summaries(settings, counted_first):
    """Whatever was counted before the purge (nothing, part of what it deletes, more), and
    wherever its batches end (mid-hour, mid-day), the summaries end up as if counted afresh from
    the entries that are left."""
    settings.AUDIT_MIN_RETENTION_DAYS = 1
    now = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    rng = random.Random(12)
    entries = []
    # In bursts (every fourth hour), so that an hour holds several lookups of different meetings.
    instants = (
        now - timedelta(hours=4 * rng.randrange(240), seconds=rng.randrange(900))
        for _ in range(900)
    )
    for at in sorted(instants):
        entries.append(
            lookup(
                rng.choice(["alice", "bob", "carol"]),
                at,
                rng.choice([MEETING, OTHER, "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m00"]),
                outcome=rng.choice(["found", "not_visible"]),
                via=rng.choice(["page", "refresh"]),
            )
        )
    # The cutoff's own hour: alice's lookup of one meeting goes, her lookup of another stays.
    cutoff = now - timedelta(days=20)
    entries.append(lookup("alice", cutoff - timedelta(minutes=5), MEETING))
    entries.append(lookup("alice", cutoff + timedelta(minutes=5), OTHER))
    seeding.append(sorted(entries, key=lambda entry: entry["at"]))
    if counted_first:
        rollup.catch_up(limit=counted_first)

    with time_machine.travel(now, tick=False):
        purged = services.purge_old_entries(retention_days=20, batch_size=37)
    rollup.catch_up()
    after_purge = _summaries()
    for model in (ActivityHour, ActivityDay, StaffDay, StaffHour):
        model.objects.all().delete()
    RollupProgress.objects.update(last_entry_id=0)
    rollup.catch_up()

    assert 300 < purged.deleted < 600
    assert after_purge == _summaries()
    assert sum(row[-1] for row in after_purge[0]) == AuditEntry.objects.count()


def test_a_range_without_lookups_draws_no_empty_chart(auditor_client, log):
    page = get(auditor_client, {"since": "2026-01-01", "until": "2026-01-31"})

    assert "Lookups per day: 0 in the 0 matching entries" in text(page)
    assert "None in this range: nothing to draw." in page
    assert "audit-chart__svg" not in page and "audit-chart__legend" not in page
