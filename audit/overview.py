"""The top of the audit log: for the current filter and range, how many entries, lookups over
time, how they ended, and who and what was looked up most.

The chart and the outcomes come from the summaries (per day, action, via, deployment and outcome
from `ActivityDay` for a range's whole days, per hour from `ActivityHour` for a short range and for
the partial days at a long range's ends) and the most active staff from `StaffDay`, so they cost
the same at ten thousand entries and at ten million. A filter on a staff member or a meeting reads
their own entries instead (on their own index, at most SAMPLE of them). The count of matching
entries stops at a bound, and the most looked-up meetings are counted over the newest
MEETINGS_SAMPLE lookups."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.db.models import F, Max, Q, QuerySet, Sum
from django.utils import dateformat

from connvo_admin.outcomes import Handling, Outcome, describe

from . import records
from .models import (
    DAY_HOURS,
    Action,
    ActivityDay,
    ActivityHour,
    AuditEntry,
    Span,
    StaffDay,
    Via,
)
from .rollup import TALLIED, ceil_hour, counted_hours, floor_hour
from .selectors import EntryFilter, filtered_entries

# Counting matching entries stops here: past it the page says "more than 10,000".
COUNT_BOUND = 10_000
# Without dates in the filter, the overview covers this much of the most recent log.
DEFAULT_RANGE = timedelta(days=7)
# Up to this long a range is drawn per hour, then per day, then per month, beyond it per year: a
# chart never has more than about 400 bars, however wide the range asked for.
HOUR = timedelta(hours=1)
HOURLY_UP_TO = timedelta(days=2)
DAILY_UP_TO = timedelta(days=400)
MONTHLY_UP_TO = timedelta(days=366 * 20)
TOP = 5
CHART_WIDTH, CHART_HEIGHT = 1000, 160
# How a bucket's start is written: under a bar and in the chart's table (with the year).
BUCKET_FORMATS = {
    "hour": ("j M, H:i", "j M Y, H:i"),
    "day": ("D j M", "D j M Y"),
    "month": ("M Y", "F Y"),
    "year": ("Y", "Y"),
}
# The most looked-up meetings (no summary holds meetings) are counted over this many of the newest
# matching lookups, and a staff member's or a meeting's overview over at most SAMPLE of them.
MEETINGS_SAMPLE = 5_000
SAMPLE = 20_000


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    lookups: int
    found: int = 0  # of them, lookups that showed the meeting

    @property
    def not_found(self) -> int:
        """Every other outcome: refused (not a participant, no such meeting…) or failed."""
        return self.lookups - self.found


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    outcome: str
    handling: Handling
    lookups: int


@dataclass(frozen=True, slots=True)
class Overview:
    since: datetime
    until: datetime
    default_range: bool  # the filter named no dates: the last DEFAULT_RANGE
    entries: int  # matching entries in the range, exact up to COUNT_BOUND
    entries_bounded: bool  # there are more than `entries`
    what: str  # what the chart counts: "lookups", or the filtered action
    # The chart's bars are split into found and not found (lookups only: other entries have
    # no outcome to split by).
    split: bool
    lookups: int
    per: str  # "hour", "day", "month" or "year"
    buckets: list[Bucket]
    outcomes: list[OutcomeCount]
    top_staff: list[tuple[str, int]]
    staff_counted: str  # "entries", "days" (the per-day summary) or "newest" (a sample)
    top_meetings: list[tuple[str, str, int]]  # deployment, meeting ID, lookups
    # When not None: the figures that could not come from the summaries were counted over this
    # many of the newest matching lookups, not all of them.
    sample: int | None
    zone: tzinfo = UTC  # the viewer's: the chart's days, months and labels are theirs

    @property
    def days(self) -> tuple[date, date]:
        """The first and last day of the range in the viewer's time zone (`until` is the
        midnight after the last day the filter names)."""
        last = self.until - timedelta(microseconds=1)
        return self.since.astimezone(self.zone).date(), last.astimezone(self.zone).date()

    @property
    def entries_stand_for_more(self) -> bool:
        """The chart counts more lookups than there are matching entries (spans and counted
        records each stand for many), which the page then explains."""
        return not self.entries_bounded and self.lookups > self.entries

    @property
    def peak(self) -> int:
        return max((bucket.lookups for bucket in self.buckets), default=0)

    def label(self, start: datetime, *, full: bool = False) -> str:
        """A bucket's start as the chart names it, in the viewer's time zone."""
        short, long = BUCKET_FORMATS[self.per]
        return dateformat.format(start.astimezone(self.zone), long if full else short)

    @property
    def scale(self) -> tuple[str, str]:
        """The labels under the chart's first and last bars."""
        if not self.buckets:
            return "", ""
        return self.label(self.buckets[0].start), self.label(self.buckets[-1].start)

    @property
    def axis(self) -> tuple[int, int]:
        """The y axis's top and its midpoint, the two labelled gridlines: the peak rounded up
        to a number whose half is whole (30 -> 30 and 15, 67 -> 80 and 40)."""
        top = 2 * _nice_ceiling(-(-self.peak // 2)) if self.peak else 0
        return top, top // 2

    @property
    def table(self) -> list[tuple[str, Bucket]]:
        """The chart's figures for screen readers: each bucket's full label and counts."""
        return [(self.label(bucket.start, full=True), bucket) for bucket in self.buckets]

    @property
    def bars(self) -> list[dict]:
        """The chart's bars in a CHART_WIDTH x CHART_HEIGHT box (the SVG stretches it), each
        found lookups below and the others stacked on them, to the scale of `axis`."""
        if not self.buckets:
            return []
        slot = CHART_WIDTH / len(self.buckets)
        top = self.axis[0] or 1
        bars = []
        for n, bucket in enumerate(self.buckets):
            parts = (bucket.found, bucket.not_found) if self.split else (bucket.lookups, 0)
            # One lookup is still visible; a part of none is not drawn.
            found, other = (max(part / top * CHART_HEIGHT, 1.5) if part else 0 for part in parts)
            bars.append(
                {
                    "bucket": bucket,
                    "label": self.label(bucket.start),
                    "x": round(n * slot + slot * 0.1, 2),
                    "width": round(slot * 0.8, 2),
                    "found_y": round(CHART_HEIGHT - found, 2),
                    "found_height": round(found, 2),
                    "other_y": round(max(CHART_HEIGHT - found - other, 0), 2),
                    "other_height": round(min(other, CHART_HEIGHT - found), 2),
                }
            )
        return bars


def _nice_ceiling(n: int) -> int:
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is whole and at
    least `n` (n >= 1): a scale's label a reader takes in at a glance."""
    magnitude = 1
    while True:
        for step in (10, 15, 20, 25, 30, 40, 50, 60, 80):
            value = step * magnitude
            if value % 10 == 0 and value // 10 >= n:
                return value // 10
        magnitude *= 10


def _range(entry_filter: EntryFilter, now: datetime) -> tuple[datetime, datetime, bool]:
    since, until = entry_filter.since, entry_filter.until
    if since and until:
        return since, until, False
    if since:
        return since, max(now, since + timedelta(hours=1)), False
    if until:
        return until - DEFAULT_RANGE, until, False
    return now - DEFAULT_RANGE, now, True


def _charted(since: datetime, until: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The part of the range the chart draws. Up to DAILY_UP_TO, all of it (an empty day is
    information); a longer range is drawn from its oldest entry to now at most (1900 to 9998 is a
    valid range, and must not be drawn as three million empty days)."""
    if until - since <= DAILY_UP_TO:
        return since, until
    until = min(until, max(now, since))
    oldest = AuditEntry.objects.order_by("at").values_list("at", flat=True).first()
    if oldest is not None and oldest > since:
        since = min(floor_hour(oldest), until)
    elif oldest is None:
        since = max(since, until - DEFAULT_RANGE)
    return since, until


def _per(span: timedelta) -> str:
    if span <= HOURLY_UP_TO:
        return "hour"
    if span <= DAILY_UP_TO:
        return "day"
    return "month" if span <= MONTHLY_UP_TO else "year"


def _matching(rows: QuerySet, entry_filter: EntryFilter) -> QuerySet:
    """A summary's rows matching a filter on anything but a staff member or a meeting."""
    rows = rows.filter(**entry_filter.exact("deployment", "outcome", "via", "action"))
    if not entry_filter.include_refreshes and entry_filter.via != Via.REFRESH:
        rows = rows.exclude(via=Via.REFRESH)
    return rows.order_by()


def _summed(
    entry_filter: EntryFilter, since: datetime, until: datetime, *, per: str
) -> tuple[Counter[datetime], Counter[datetime], Counter[str]]:
    """(entries per hour, found ones per hour, entries per outcome) in [since, until).
    The range's whole UTC hours come from the summaries; when the chart is per day, its whole
    UTC days from `ActivityDay` and only the hours before the first whole day and after the last
    one from `ActivityHour`: the same figures as reading every hour, from one row per day and
    kind of entry instead of 24. A partial first or last hour (a range starting at a local
    midnight of a zone half an hour off UTC, or the last 7 days from now) is counted from its
    entries, as the summaries count them (`_from_entries`), so that the chart holds what the
    list does; a partial first hour's figures are keyed by `since`, in the viewer's first day."""
    start, end = ceil_hour(since), floor_hour(until)
    # Where nothing of a partial hour lies outside the range (the usual last hour: the range
    # ends now), the summary's row of it is the range's part: the busiest hour is not read
    # entry by entry.
    if start > since and not AuditEntry.objects.filter(at__gte=start - HOUR, at__lt=since).exists():
        start -= HOUR
    if until > end and not AuditEntry.objects.filter(at__gte=until, at__lt=end + HOUR).exists():
        end += HOUR
    if start >= end:
        return _from_entries(entry_filter, [(since, until)], first=since)
    per_hour, found_per_hour, per_outcome = _from_entries(
        entry_filter, [(since, start), (end, until)], first=since
    )
    first_day = (
        start.date() if start.hour == 0 and start >= since else start.date() + timedelta(days=1)
    )
    last_day = end.date()  # the day `end` falls in: whole only if `end` is its midnight
    if per == "day" and first_day < last_day:
        days = _matching(
            ActivityDay.objects.filter(day__gte=first_day, day__lt=last_day), entry_filter
        )
        # One row per day: each hour summed, and its found lookups beside it.
        found = Q(outcome=Outcome.FOUND)
        sums = {f"all_{name}": Sum(name) for name in DAY_HOURS}
        sums |= {f"found_{name}": Sum(name, filter=found) for name in DAY_HOURS}
        for row in days.values("day").annotate(**sums):
            midnight = datetime.combine(row["day"], time.min, UTC)
            for n, name in enumerate(DAY_HOURS):
                if row[f"all_{name}"]:
                    per_hour[midnight + timedelta(hours=n)] += row[f"all_{name}"]
                if row[f"found_{name}"]:
                    found_per_hour[midnight + timedelta(hours=n)] += row[f"found_{name}"]
        for row in days.values("outcome").annotate(n=Sum("entries")):
            per_outcome[row["outcome"]] += row["n"]
        first_midnight = datetime.combine(first_day, time.min, UTC)
        last_midnight = datetime.combine(last_day, time.min, UTC)
        hours = Q(hour__gte=start, hour__lt=first_midnight) | Q(
            hour__gte=last_midnight, hour__lt=end
        )
    else:
        hours = Q(hour__gte=start, hour__lt=end)
    edges = _matching(ActivityHour.objects.filter(hours), entry_filter)
    for row in edges.values("hour", "outcome").annotate(n=Sum("entries")):
        # A first hour read whole from the summary is keyed by `since`, as `_from_entries` keys.
        hour = _keyed(row["hour"].astimezone(UTC), since)
        per_hour[hour] += row["n"]
        if row["outcome"] == Outcome.FOUND:
            found_per_hour[hour] += row["n"]
        per_outcome[row["outcome"]] += row["n"]
    return per_hour, found_per_hour, per_outcome


def _from_entries(
    entry_filter: EntryFilter, periods: list[tuple[datetime, datetime]], *, first: datetime
) -> tuple[Counter[datetime], Counter[datetime], Counter[str]]:
    """`_summed`'s figures for periods shorter than an hour at a range's ends, from the entries
    themselves, counted as the summaries count them (`rollup.counted_hours`). Keyed by the hour
    each falls in, or by `first` for those before the first whole hour (`_keyed`)."""
    per_hour: Counter[datetime] = Counter()
    found_per_hour: Counter[datetime] = Counter()
    per_outcome: Counter[str] = Counter()
    periods = [(start, end) for start, end in periods if start < end]
    if not periods:
        return per_hour, found_per_hour, per_outcome
    when = Q()
    for start, end in periods:
        when |= Q(at__gte=start, at__lt=end)
    # A record with a tally may hold several outcomes (one sealed before 8 December 2026): its
    # calls of the filtered outcome are counted, as the summaries' per-outcome rows hold them.
    entries = _counted(dataclasses.replace(entry_filter, outcome="")).filter(when).order_by()
    hourly, _ = counted_hours(
        entries.filter(tally__isnull=True),
        entries.filter(tally__isnull=False).values_list(*TALLIED),
    )
    for (hour, _, _, _, outcome), n in hourly.items():
        if entry_filter.outcome and outcome != entry_filter.outcome:
            continue
        key = _keyed(hour.astimezone(UTC), first)
        per_hour[key] += n
        if outcome == Outcome.FOUND:
            found_per_hour[key] += n
        per_outcome[outcome] += n
    return per_hour, found_per_hour, per_outcome


def _keyed(hour: datetime, since: datetime) -> datetime:
    """Where an hour's figures go on the chart: its own bar, or the range's first (from `since`)
    for the partial hour `since` falls in."""
    return max(hour, since)


def _buckets(
    hourly: dict[datetime, int],
    found_hourly: dict[datetime, int],
    *,
    since,
    until,
    zone: tzinfo,
    per: str,
) -> list[Bucket]:
    """Every hour or local day of the range, empty ones included (a gap is information)."""
    if per == "hour":
        # A partial first hour is a bar of its own, from `since` (`_summed` keys it so).
        starts, moment = [since] if ceil_hour(since) != since else [], ceil_hour(since)
        while moment < until:
            starts.append(moment)
            moment += timedelta(hours=1)
        return [
            Bucket(start=moment, lookups=hourly.get(moment, 0), found=found_hourly.get(moment, 0))
            for moment in starts
        ]
    totals: Counter[date] = Counter()
    found: Counter[date] = Counter()
    for counts, hours in ((totals, hourly), (found, found_hourly)):
        for hour, n in hours.items():
            counts[_bucket_day(hour.astimezone(zone).date(), per)] += n
    buckets, day = [], _bucket_day(since.astimezone(zone).date(), per)
    while (start := datetime.combine(day, time.min, zone)) < until:
        buckets.append(Bucket(start=start, lookups=totals.get(day, 0), found=found.get(day, 0)))
        day = _next_bucket_day(day, per)
    return buckets


def _bucket_day(day: date, per: str) -> date:
    """The first day of the day's bucket: itself, its month's first or its year's first."""
    if per == "month":
        return day.replace(day=1)
    if per == "year":
        return day.replace(month=1, day=1)
    return day


def _next_bucket_day(day: date, per: str) -> date:
    if per == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    if per == "year":
        return date(day.year + 1, 1, 1)
    return day + timedelta(days=1)


def bounded_count(entries: QuerySet[AuditEntry], bound: int | None = None) -> tuple[int, bool]:
    """(count, more): exact up to `bound` (COUNT_BOUND), never reading more than bound + 1
    index entries."""
    bound = bound or COUNT_BOUND
    n = entries.order_by()[: bound + 1].count()
    return (bound, True) if n > bound else (n, False)


def _ranked(counts: Counter) -> list:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]


def overview(entry_filter: EntryFilter, *, now: datetime, zone: tzinfo) -> Overview:
    since, until, default_range = _range(entry_filter, now)
    if default_range and entry_filter.meeting_id:
        # A meeting's whole history is short and on its own index: show all of it, from its
        # first entry (drawn per hour when that was less than two days ago), not the last 7 days.
        first = (
            filtered_entries(entry_filter).order_by("at", "id").values_list("at", flat=True).first()
        )
        since = first or since
    in_range = dataclasses.replace(entry_filter, since=since, until=until)
    chart_since, chart_until = _charted(since, until, now)
    per = _per(chart_until - chart_since)
    entries, bounded = bounded_count(filtered_entries(in_range))
    charted = dataclasses.replace(in_range, action=entry_filter.action or Action.LOOKUP)
    sample = None
    if entry_filter.staff or entry_filter.meeting_id:
        # A staff member's or a meeting's own entries: few, and on their own index.
        # Counting what each record stands for (audit/records.py) from the columns a meeting's
        # covering index holds, then a sealed span's calls per outcome from its tally.
        rows = list(
            _counted(charted).values_list(
                "id",
                "at",
                "outcome",
                "actor_username",
                "deployment",
                "meeting_id",
                "action",
                "calls",
                "repeats",
            )[: SAMPLE + 1]
        )
        if len(rows) > SAMPLE:
            rows, sample = rows[:SAMPLE], SAMPLE
        hourly, found_hourly, outcome_counts = Counter(), Counter(), Counter()
        staff, meetings = Counter(), Counter()
        hours = {}
        for pk, at, outcome, name, deployment, meeting, action, calls, repeats in rows:
            n = records.weight(action=action, calls=calls, repeats=repeats)
            # Keyed as `_summed` keys them: a partial first hour by the range's start.
            hour = _keyed(floor_hour(at), chart_since)
            hours[pk] = (hour, name, deployment, meeting)
            hourly[hour] += n
            if outcome == Outcome.FOUND:
                found_hourly[hour] += n
            outcome_counts[outcome] += n
            staff[name] += n
            if meeting:
                meetings[(deployment, meeting)] += n
        tallied = _counted(charted).filter(
            tally__isnull=False, at__gte=rows[-1][1] if rows else now
        )
        for pk, action, outcome, calls, repeats, tally in tallied.values_list(
            "id", "action", "outcome", "calls", "repeats", "tally"
        ):
            if pk not in hours:
                continue
            delta = records.correction(
                action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally
            )
            if entry_filter.outcome:
                # A record holding several outcomes (sealed before 8 December 2026) counts
                # only its calls of the filtered one, as the summaries' per-outcome rows do.
                delta = Counter({entry_filter.outcome: delta[entry_filter.outcome]})
            hour, name, deployment, meeting = hours[pk]
            outcome_counts.update(delta)
            found_hourly[hour] += delta[Outcome.FOUND]
            # A late answer with no retries stands for no call: out of every figure.
            hourly[hour] += delta.total()
            staff[name] += delta.total()
            if meeting:
                meetings[(deployment, meeting)] += delta.total()
        top_staff = _ranked(+staff)
        staff_counted = "newest" if sample else "entries"
        meetings = +meetings
        outcome_counts = +outcome_counts
        top_meetings = [
            (deployment, meeting, n)
            for (deployment, meeting), n in ([] if entry_filter.meeting_id else _ranked(meetings))
        ]
    else:
        hourly, found_hourly, outcome_counts = _summed(
            charted, chart_since, chart_until, per="hour" if per == "hour" else "day"
        )
        top_staff, staff_counted = _top_staff(charted, since, until)
        top_meetings, sample = _top_meetings(charted)
    outcomes = [
        OutcomeCount(outcome=outcome, handling=describe(outcome), lookups=n)
        for outcome, n in sorted(outcome_counts.items(), key=lambda item: (-item[1], item[0]))
        if outcome
    ]
    return Overview(
        since=since,
        until=until,
        default_range=default_range,
        entries=entries,
        entries_bounded=bounded,
        what=Action(entry_filter.action).label if entry_filter.action else "lookups",
        split=charted.action == Action.LOOKUP,
        lookups=sum(hourly.values()),
        per=per,
        buckets=_buckets(
            hourly, found_hourly, since=chart_since, until=chart_until, zone=zone, per=per
        ),
        outcomes=outcomes,
        top_staff=top_staff,
        staff_counted=staff_counted,
        top_meetings=top_meetings,
        sample=sample,
        zone=zone,
    )


def _top_staff(charted: EntryFilter, since: datetime, until: datetime) -> tuple[list, str]:
    """From the per-day summary when it holds what the filter asks (lookups, all of them or the
    not-visible ones, with or without refreshes, on any deployment), else from the newest
    MEETINGS_SAMPLE matching lookups."""
    column = {"": F("lookups"), "not_visible": F("not_visible")}.get(charted.outcome)
    if charted.via == Via.REFRESH and not charted.outcome:
        column = F("refreshes")
    elif charted.include_refreshes and not charted.via and not charted.outcome:
        column = F("lookups") + F("refreshes")
    elif charted.via or charted.include_refreshes:
        column = None
    if charted.action == Action.LOOKUP and column is not None and not charted.deployment:
        # The UTC days that overlap [since, until): `until` is exclusive, the midnight after the
        # range's last day, and the day it starts is not in the range.
        last = until - timedelta(microseconds=1)
        days = StaffDay.objects.filter(
            day__gte=since.astimezone(UTC).date(), day__lte=last.astimezone(UTC).date()
        )
        ranked = (
            days.values("actor_username")
            .annotate(n=Sum(column))
            .filter(n__gt=0)
            .order_by("-n", "actor_username")[:TOP]
        )
        return [(row["actor_username"], row["n"]) for row in ranked], "days"
    newest = list(_weighted(charted, "actor_username")[: MEETINGS_SAMPLE + 1])
    counts: Counter[str] = Counter()
    for name, *figures in newest[:MEETINGS_SAMPLE]:
        counts[name] += _weight_of(*figures, only=charted.outcome)
    return _ranked(+counts), ("newest" if len(newest) > MEETINGS_SAMPLE else "entries")


def _weighted(entry_filter: EntryFilter, *fields: str) -> QuerySet:
    """The matching entries' `fields`, each row followed by what the row counts for."""
    return _counted(entry_filter).values_list(
        *fields, "action", "outcome", "calls", "repeats", "tally"
    )


def _counted(entry_filter: EntryFilter) -> QuerySet[AuditEntry]:
    """The entries the figures count: the list's, but live refreshes only when asked for (the
    list shows span records of them by default; the figures, like the summaries' `_matching`,
    count page lookups unless "Include live refreshes" is ticked)."""
    entries = filtered_entries(entry_filter)
    if not entry_filter.include_refreshes and entry_filter.via != Via.REFRESH:
        entries = entries.exclude(via=Via.REFRESH)
    return entries


def _weight_of(action: str, outcome: str, calls, repeats, tally, *, only: str = "") -> int:
    """What a record counts for: all its calls, or (`only`, the filter's outcome) those of
    that outcome (a record sealed before 8 December 2026 may hold several)."""
    by_outcome = records.calls_by_outcome(
        action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally
    )
    return by_outcome.get(only, 0) if only else sum(by_outcome.values())


def _top_meetings(charted: EntryFilter) -> tuple[list, int | None]:
    if charted.action != Action.LOOKUP:
        return [], None
    newest = list(_weighted(charted, "deployment", "meeting_id")[: MEETINGS_SAMPLE + 1])
    sample = MEETINGS_SAMPLE if len(newest) > MEETINGS_SAMPLE else None
    counts: Counter[tuple[str, str]] = Counter()
    for deployment, meeting, *figures in newest[:MEETINGS_SAMPLE]:
        if meeting:
            counts[(deployment, meeting)] += _weight_of(*figures, only=charted.outcome)
    return [(deployment, meeting, n) for (deployment, meeting), n in _ranked(+counts)], sample


@dataclass(frozen=True, slots=True)
class StaffSummary:
    lookups: int
    refreshes: int
    not_visible: int
    # Their first and last entry of any kind, or call of a page still open.
    first_at: datetime | None
    last_at: datetime | None
    meetings: int  # distinct meetings among their newest MEETINGS_SAMPLE lookups
    meetings_sampled: bool

    @property
    def not_visible_share(self) -> float:
        return self.not_visible / self.lookups if self.lookups else 0.0


def _latest(*moments: datetime | None) -> datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def staff_summary(*, username: str) -> StaffSummary:
    """A staff member's whole record at a glance, from the per-day summary."""
    totals = StaffDay.objects.filter(actor_username=username).aggregate(
        lookups=Sum("lookups"), refreshes=Sum("refreshes"), not_visible=Sum("not_visible")
    )
    newest = list(
        filtered_entries(EntryFilter(staff=username, action=Action.LOOKUP)).values_list(
            "deployment", "meeting_id"
        )[: MEETINGS_SAMPLE + 1]
    )
    return StaffSummary(
        lookups=totals["lookups"] or 0,
        refreshes=totals["refreshes"] or 0,
        not_visible=totals["not_visible"] or 0,
        # Both ends of the staff member's index: two short reads, however long their record.
        first_at=AuditEntry.objects.filter(actor_username=username)
        .order_by("at", "id")
        .values_list("at", flat=True)
        .first(),
        last_at=_latest(
            AuditEntry.objects.filter(actor_username=username)
            .order_by("-at", "-id")
            .values_list("at", flat=True)
            .first(),
            # A page still refreshing has calls newer than its last seal: its span says when.
            Span.objects.filter(actor_username=username).aggregate(last=Max("last_at"))["last"],
        ),
        meetings=len(set(newest[:MEETINGS_SAMPLE])),
        meetings_sampled=len(newest) > MEETINGS_SAMPLE,
    )
