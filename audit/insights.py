""" "Worth a look": staff members whose recent lookups stand out against their own habits or
against what support work looks like. Shown on the audit log and printed by
`manage.py audit_insights` for cron and alerting.

Computed only from the log (the window's hours from the per-hour summary `StaffHour` and its own
entries, each staff member's habits from the per-day summary `StaffDay`) and from the `now` it is
given, so the same log and the same `now` always give the same flags. Hours of the day are UTC.
The thresholds are the AUDIT_FLAG_* settings (README, "Settings")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import ExtractHour, TruncHour
from django.urls import reverse
from django.utils import dateformat

from . import records, rollup
from .models import Action, AuditEntry, StaffDay, StaffHour, Via

DEFAULT_WINDOW = timedelta(hours=24)
HOUR = timedelta(hours=1)
KINDS = ("volume", "not_visible", "many_meetings", "off_hours")


@dataclass(frozen=True, slots=True)
class Flag:
    kind: str
    staff: str
    since: datetime
    until: datetime
    figures: dict = field(default_factory=dict)
    sentence: str = ""
    link: str = ""

    def as_json(self) -> dict:
        return {
            "kind": self.kind,
            "staff": self.staff,
            "window": {"since": self.since.isoformat(), "until": self.until.isoformat()},
            "figures": self.figures,
            "sentence": self.sentence,
            "link": self.link,
        }


@dataclass(slots=True)
class _Recent:
    lookups: int = 0
    not_visible: int = 0
    by_hour_of_day: dict[int, int] = field(default_factory=dict)
    # The first hour with the most different meetings, when at least AUDIT_FLAG_MEETINGS_PER_HOUR.
    busiest_hour: tuple[datetime, int] | None = None

    def add(self, hour_of_day: int, lookups: int, not_visible: int) -> None:
        self.lookups += lookups
        self.not_visible += not_visible
        self.by_hour_of_day[hour_of_day] = self.by_hour_of_day.get(hour_of_day, 0) + lookups

    def busy(self, hour: datetime, meetings: int) -> None:
        if meetings < settings.AUDIT_FLAG_MEETINGS_PER_HOUR:
            return
        if self.busiest_hour is None or (-meetings, hour) < (
            -self.busiest_hour[1],
            self.busiest_hour[0],
        ):
            self.busiest_hour = (hour, meetings)


def _flag(
    kind: str,
    staff: str,
    since: datetime,
    until: datetime,
    figures: dict,
    sentence: str,
    *,
    zone: tzinfo | None,
    **narrowing: str,
) -> Flag:
    """A flag, linked to the log filtered to its staff member and window (and `narrowing`), in
    days of the viewer's time zone `zone`."""
    return Flag(
        kind=kind,
        staff=staff,
        since=since,
        until=until,
        figures=figures,
        sentence=sentence,
        link=_link(staff, since, until, zone=zone, **narrowing),
    )


def _recent(since: datetime, until: datetime) -> dict[str, _Recent]:
    """Per staff member, their lookups in the window (refreshes aside), hour by hour. The window's
    whole hours come from `StaffHour`, summed per hour of the day by the database, and so does
    its last hour when nothing of that hour lies after the window; its partial first (and last)
    hour, and the hours holding entries not yet counted into the summaries, from the entries.
    The figures are the same as `recent_from_entries` gives."""
    first_whole = rollup.ceil_hour(since)
    last_whole = rollup.floor_hour(until)
    if first_whole >= last_whole:
        return recent_from_entries(since, until)
    if until > last_whole and not _page_lookups(until, last_whole + HOUR).exists():
        # Nothing of the last hour lies after the window (the usual case: it ends now), so the
        # summary's row of it is the window's part: the busiest hour is not read entry by entry.
        last_whole += HOUR
    uncounted = (
        _page_lookups(since, until)
        .filter(id__gt=rollup.counted_through())
        .values_list(TruncHour("at", tzinfo=UTC), flat=True)
        .distinct()
    )
    read_from_entries = Q(at__lt=first_whole) | Q(at__gte=last_whole)
    summed = StaffHour.objects.filter(
        hour__gte=first_whole, hour__lt=last_whole, actor_username__gt=""
    )
    for start, end in rollup.hour_spans(set(uncounted)):
        read_from_entries |= Q(at__gte=start, at__lt=end)
        summed = summed.exclude(hour__gte=start, hour__lt=end)
    found = _per_staff(_hours_of(_page_lookups(since, until).filter(read_from_entries)))
    per_hour_of_day = (
        summed.order_by()
        .values("actor_username", hour_of_day=ExtractHour("hour", tzinfo=UTC))
        .annotate(lookups=Sum("lookups"), not_visible=Sum("not_visible"))
        .values_list("actor_username", "hour_of_day", "lookups", "not_visible")
    )
    for name, hour_of_day, lookups, not_visible in per_hour_of_day:
        found.setdefault(name, _Recent()).add(hour_of_day, lookups, not_visible)
    busy = summed.filter(meetings__gte=settings.AUDIT_FLAG_MEETINGS_PER_HOUR).values_list(
        "actor_username", "hour", "meetings"
    )
    for name, hour, meetings in busy:
        found[name].busy(hour.astimezone(UTC), meetings)
    return found


def recent_from_entries(since: datetime, until: datetime) -> dict[str, _Recent]:
    """What `_recent` gives, read from the window's entries alone."""
    return _per_staff(_hours_of(_page_lookups(since, until)))


def _page_lookups(since: datetime, until: datetime):
    return AuditEntry.objects.filter(
        at__gte=since, at__lt=until, action=Action.LOOKUP, actor_username__gt=""
    ).exclude(via=Via.REFRESH)


def _hours_of(entries) -> list[tuple]:
    """(staff member, hour, lookups, not visible, different meetings) per staff member and hour
    (the part of the hour `entries` cover), lookups counting Connvo calls as the summaries do
    (audit/records.py): ordinary entries summed by the database, sealed spans read here."""
    plain = Q(tally__isnull=True)
    rows = {
        (name, bucket): [lookups or 0, not_visible or 0, meetings]
        for name, bucket, lookups, not_visible, meetings in entries.order_by()
        .values("actor_username", bucket=TruncHour("at", tzinfo=UTC))
        .annotate(
            lookups=Sum(records.WEIGHT, filter=plain),
            not_visible=Sum(records.WEIGHT, filter=plain & Q(outcome="not_visible")),
            meetings=Count("meeting_id", distinct=True, filter=~Q(meeting_id="")),
        )
        .values_list("actor_username", "bucket", "lookups", "not_visible", "meetings")
    }
    tallied = entries.filter(tally__isnull=False).order_by()
    for name, at, action, outcome, calls, repeats, tally in tallied.values_list(
        "actor_username", "at", "action", "outcome", "calls", "repeats", "tally"
    ):
        by_outcome = records.calls_by_outcome(
            action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally
        )
        figures = rows.setdefault((name, rollup.floor_hour(at)), [0, 0, 0])
        figures[0] += sum(by_outcome.values())
        figures[1] += by_outcome.get("not_visible", 0)
    return [(name, bucket, *figures) for (name, bucket), figures in rows.items()]


def _per_staff(rows: list[tuple]) -> dict[str, _Recent]:
    found: dict[str, _Recent] = {}
    for name, hour, lookups, not_visible, meetings in rows:
        recent = found.setdefault(name, _Recent())
        bucket = hour.astimezone(UTC)
        recent.add(bucket.hour, lookups, not_visible)
        recent.busy(bucket, meetings)
    return found


def _habits(first_day: date, last_day: date) -> dict[str, tuple[int, int]]:
    """Per staff member: their lookups over the baseline days, and the hours of the day (a bit
    mask, UTC) at which they made any."""
    habits: dict[str, tuple[int, int]] = {}
    days = StaffDay.objects.filter(day__gte=first_day, day__lte=last_day).values_list(
        "actor_username", "lookups", "hours"
    )
    for name, lookups, hours in days:
        total, mask = habits.get(name, (0, 0))
        habits[name] = (total + lookups, mask | hours)
    return habits


def _link(
    staff: str, since: datetime, until: datetime, *, zone: tzinfo | None, **params: str
) -> str:
    """The staff member's page for the days that hold [since, until). The audit pages read From
    and To as whole days in the viewer's time zone, so the days are the viewer's (`zone`): UTC's
    would miss hours at either end for anyone else (a flag at 19:00 in Los Angeles is the next
    day in UTC). Without a zone (`audit_insights`), UTC's, as its sentences."""
    zone = zone or UTC
    query = {
        "since": since.astimezone(zone).date().isoformat(),
        "until": (until - timedelta(microseconds=1)).astimezone(zone).date().isoformat(),
        **params,
    }
    return f"{reverse('audit:staff', args=[staff])}?{urlencode(query)}"


def _hour_words(hour: datetime, zone: tzinfo | None) -> str:
    if zone is None:
        return f"{hour:%Y-%m-%d %H}:00 UTC"
    return dateformat.format(hour.astimezone(zone), "j M Y, H:i T")


def _hours_of_day_words(hours: list[int], on: datetime, zone: tzinfo | None) -> str:
    """Hours of the day counted in UTC, as the viewer reads them on the day of `on` ("04:00,
    05:00 CEST"); without a zone, "02:00, 03:00 UTC"."""
    moments = [
        on.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) for hour in hours
    ]
    if zone is None:
        return ", ".join(f"{moment:%H:%M}" for moment in moments) + " UTC"
    local = [moment.astimezone(zone) for moment in moments]
    names = {dateformat.format(moment, "T") for moment in local}
    if len(names) == 1:  # one offset all day: named once
        return ", ".join(dateformat.format(moment, "H:i") for moment in local) + f" {names.pop()}"
    return ", ".join(dateformat.format(moment, "H:i T") for moment in local)


def find_flags(
    *, now: datetime, since: datetime | None = None, zone: tzinfo | None = None
) -> list[Flag]:
    """The flags for the window [since, now) (by default the last 24 hours), against each staff
    member's AUDIT_FLAG_BASELINE_DAYS whole days (UTC) before the window's first day. Sorted by
    kind, then staff member. `zone`: the viewer's, for the moments a sentence names (the audit
    page's, as the rest of the page); without it they are written in UTC (`audit_insights`)."""
    until = now
    since = since if since is not None else now - DEFAULT_WINDOW
    window_hours = (until - since) / timedelta(hours=1)
    baseline_days = settings.AUDIT_FLAG_BASELINE_DAYS
    first_day = since.astimezone(UTC).date()
    habits = _habits(first_day - timedelta(days=baseline_days), first_day - timedelta(days=1))
    flags: list[Flag] = []
    for staff, recent in sorted(_recent(since, until).items()):
        baseline, usual_hours = habits.get(staff, (0, 0))
        expected = baseline * window_hours / (baseline_days * 24)
        lookups, not_visible = recent.lookups, recent.not_visible
        if (
            lookups >= settings.AUDIT_FLAG_MIN_LOOKUPS
            and lookups >= settings.AUDIT_FLAG_VOLUME_FACTOR * expected
        ):
            flags.append(
                _flag(
                    "volume",
                    staff,
                    since,
                    until,
                    {"lookups": lookups, "expected": round(expected, 1)},
                    f"{staff} made {lookups} lookups in {window_hours:.0f} hours; their last "
                    f"{baseline_days} days suggest about {expected:.0f}.",
                    zone=zone,
                )
            )
        if (
            not_visible >= settings.AUDIT_FLAG_NOT_VISIBLE_MIN
            and not_visible >= settings.AUDIT_FLAG_NOT_VISIBLE_SHARE * lookups
        ):
            flags.append(
                _flag(
                    "not_visible",
                    staff,
                    since,
                    until,
                    {"lookups": lookups, "not_visible": not_visible},
                    f"{not_visible} of {staff}'s {lookups} lookups were of meetings they are "
                    f"not a participant of ({not_visible / lookups:.0%}).",
                    outcome="not_visible",
                    zone=zone,
                )
            )
        if recent.busiest_hour:
            hour, meetings = recent.busiest_hour
            flags.append(
                _flag(
                    "many_meetings",
                    staff,
                    hour,
                    hour + timedelta(hours=1),
                    {"meetings": meetings},
                    f"{staff} looked up {meetings} different meetings within one hour "
                    f"(from {_hour_words(hour, zone)}).",
                    zone=zone,
                )
            )
        odd_hours = sorted(h for h in recent.by_hour_of_day if not usual_hours & (1 << h))
        at_odd_hours = sum(recent.by_hour_of_day[h] for h in odd_hours)
        if (
            baseline >= settings.AUDIT_FLAG_OFF_HOURS_MIN_BASELINE
            and at_odd_hours >= settings.AUDIT_FLAG_OFF_HOURS_MIN
        ):
            named = _hours_of_day_words(odd_hours, until, zone)
            flags.append(
                _flag(
                    "off_hours",
                    staff,
                    since,
                    until,
                    {"lookups": at_odd_hours, "hours_utc": odd_hours},
                    f"{staff} made {at_odd_hours} lookups at hours they never worked in the "
                    f"{baseline_days} days before: {named}.",
                    zone=zone,
                )
            )
    return sorted(flags, key=lambda flag: (KINDS.index(flag.kind), flag.staff))


def records_behind(flag: Flag, *, limit: int = 3) -> list[str]:
    """The largest sealed spans and counted records of the flag's staff member in its window, in
    words (audit/records.py): what `audit_insights` prints under a flag, so a volume of calls is
    seen as the pages that made it."""
    entries = AuditEntry.objects.filter(
        actor_username=flag.staff, at__gte=flag.since, at__lt=flag.until, tally__isnull=False
    ).order_by(F("calls").desc(nulls_last=True), F("repeats").desc(nulls_last=True), "-at", "-id")[
        :limit
    ]
    return [words for entry in entries if (words := records.record_words(entry, zone=UTC))]
