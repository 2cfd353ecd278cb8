"""Counting the audit log into `ActivityHour`, `ActivityDay`, `StaffDay` and `StaffHour`, from
the last counted entry on, in id order.

Runs from `manage.py audit_rollup` (cron) and, a bounded batch at a time, when the audit page is
opened: never in the transaction that writes an entry, so a lookup costs what it did before.
Entry ids follow the chain's order (each append holds the chain head's lock until it commits), so
an entry committed later always has a higher id than every entry already counted."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q, UniqueConstraint
from django.db.models.functions import ExtractHour, TruncDate, TruncHour

from .models import (
    DAY_HOURS,
    Action,
    ActivityDay,
    ActivityHour,
    AuditEntry,
    RollupProgress,
    StaffDay,
    StaffHour,
    Via,
)

KEY = ("hour", "action", "via", "deployment", "outcome")
DAY_KEY = ("day", "action", "via", "deployment", "outcome")


def _progress() -> RollupProgress | None:
    """The progress row, locked; None when another process is counting right now."""
    RollupProgress.objects.get_or_create(pk=1)
    return RollupProgress.objects.select_for_update(skip_locked=True).filter(pk=1).first()


def lock_progress() -> RollupProgress:
    """The progress row, locked, once any count in progress has finished."""
    RollupProgress.objects.get_or_create(pk=1)
    return RollupProgress.objects.select_for_update().get(pk=1)


def catch_up(*, limit: int | None = None) -> int:
    """Count up to `limit` entries not yet counted (all of them when None). Returns how many were
    counted; 0 also when another process holds the progress row."""
    with transaction.atomic():
        progress = _progress()
        if progress is None:
            return 0
        newer = AuditEntry.objects.filter(id__gt=progress.last_entry_id)
        if limit is None:
            upper = newer.aggregate(last=Max("id"))["last"]
        else:
            upper = (
                newer.order_by("id").values_list("id", flat=True)[limit - 1 : limit].first()
                or newer.aggregate(last=Max("id"))["last"]
            )
        if upper is None:
            return 0
        counted, _ = _count(
            newer.filter(id__lte=upper), sign=1, counted=AuditEntry.objects.filter(id__lte=upper)
        )
        progress.last_entry_id = upper
        progress.save(update_fields=["last_entry_id"])
    return counted


def forget(*, after_id: int, through_id: int) -> int:
    """Take the entries after `after_id` up to `through_id`, about to be purged, out of the
    summaries: subtract those already counted (a row left at zero goes), and recount the hours
    worked on the staff days that keep entries. Call it in the purge's transaction, before its
    DELETE, holding `lock_progress()`. Returns how many entries were taken out."""
    progress = lock_progress()
    counted_through = min(through_id, progress.last_entry_id)
    if counted_through <= after_id:
        return 0  # nothing of it counted yet: once deleted, it never will be
    entries = AuditEntry.objects.filter(id__gt=after_id, id__lte=counted_through)
    kept = AuditEntry.objects.filter(id__gt=through_id, id__lte=progress.last_entry_id)
    forgotten, staff_days = _count(entries, sign=-1, counted=kept)
    # An hour worked cannot be subtracted: the staff days that keep lookups (the purge's last
    # day, usually) are given theirs again from the entries they keep.
    _recount_staff_hours(kept, staff_days)
    return forgotten


def _count(entries, *, sign: int, counted) -> tuple[int, list[StaffDay]]:
    """Add (sign 1) or subtract (sign -1) `entries` to or from every summary; `counted` is every
    entry the summaries hold once this is done. Returns how many entries, and the staff days a
    subtraction changed and kept."""
    batch = entries.order_by()
    hourly = list(
        batch.annotate(hour=TruncHour("at", tzinfo=UTC)).values(*KEY).annotate(n=Count("id"))
    )
    _add_hours(hourly, sign=sign)
    _add_days(hourly, sign=sign)
    page_lookup = ~Q(via=Via.REFRESH)
    staff_days = _add_staff_days(
        list(
            batch.filter(action=Action.LOOKUP)
            .values(
                "actor_username",
                day=TruncDate("at", tzinfo=UTC),
                hour_of_day=ExtractHour("at", tzinfo=UTC),
            )
            .annotate(
                lookups=Count("id", filter=page_lookup),
                not_visible=Count("id", filter=page_lookup & Q(outcome="not_visible")),
                refreshes=Count("id", filter=Q(via=Via.REFRESH)),
            )
        ),
        sign=sign,
    )
    page_lookups = batch.filter(action=Action.LOOKUP).exclude(via=Via.REFRESH)
    _add_staff_hours(
        list(
            page_lookups.values("actor_username", hour=TruncHour("at", tzinfo=UTC)).annotate(
                lookups=Count("id"), not_visible=Count("id", filter=Q(outcome="not_visible"))
            )
        ),
        sign=sign,
        batch_meetings=_meetings_of(page_lookups) if sign > 0 else {},
        counted=counted,
    )
    return sum(row["n"] for row in hourly), staff_days


def _existing(model, field: str, values: list) -> list:
    found = []
    for start in range(0, len(values), 500):
        found.extend(model.objects.filter(**{f"{field}__in": values[start : start + 500]}))
    return found


def _save(model, *, changed: list, new: list, fields: list[str], empty) -> None:
    """Write a summary's changed and new rows, a thousand at a time in one statement (INSERT … ON
    CONFLICT on the summary's own key DO UPDATE: Django's bulk_update writes a CASE per row and
    column, and took most of a batch's time); rows a subtraction left empty are deleted."""
    gone = [item.pk for item in changed if empty(item)]
    model.objects.filter(pk__in=gone).delete()
    rows = [item for item in changed if not empty(item)] + new
    for item in rows:
        item.pk = None  # found again by its key
    key = next(c for c in model._meta.constraints if isinstance(c, UniqueConstraint)).fields
    model.objects.bulk_create(
        rows, batch_size=1000, update_conflicts=True, unique_fields=key, update_fields=fields
    )


def _add_hours(rows: list[dict], *, sign: int) -> None:
    if not rows:
        return
    existing = {
        tuple(getattr(item, name) for name in KEY): item
        for item in _existing(ActivityHour, "hour", sorted({row["hour"] for row in rows}))
    }
    changed, new = [], []
    for row in rows:
        key = tuple(row[name] for name in KEY)
        if key in existing:
            existing[key].entries += sign * row["n"]
            changed.append(existing[key])
        elif sign > 0:
            new.append(ActivityHour(**{name: row[name] for name in KEY}, entries=row["n"]))
    _save(ActivityHour, changed=changed, new=new, fields=["entries"], empty=_no_entries)


def _no_entries(item) -> bool:
    return item.entries <= 0


def _add_days(hourly: list[dict], *, sign: int) -> None:
    """The same counts as `_add_hours`, per day: each hour's count goes to its day's total and
    to its own hour of that day."""
    counts: defaultdict[tuple, list[int]] = defaultdict(lambda: [0] * 24)
    for row in hourly:
        hour = row["hour"].astimezone(UTC)
        key = (hour.date(), *(row[name] for name in DAY_KEY[1:]))
        counts[key][hour.hour] += sign * row["n"]
    if not counts:
        return
    existing = {
        tuple(getattr(item, name) for name in DAY_KEY): item
        for item in _existing(ActivityDay, "day", sorted({key[0] for key in counts}))
    }
    changed, new = [], []
    for key, per_hour in counts.items():
        item = existing.get(key)
        if item is None:
            if sign < 0:
                continue
            item = ActivityDay(**dict(zip(DAY_KEY, key, strict=True)))
            new.append(item)
        else:
            changed.append(item)
        item.entries += sum(per_hour)
        for name, n in zip(DAY_HOURS, per_hour, strict=True):
            setattr(item, name, getattr(item, name) + n)
    _save(ActivityDay, changed=changed, new=new, fields=["entries", *DAY_HOURS], empty=_no_entries)


STAFF_COUNTS = ("lookups", "not_visible", "refreshes")


def _add_staff_days(rows: list[dict], *, sign: int) -> list[StaffDay]:
    """Returns the rows changed and kept (not new, not emptied)."""
    if not rows:
        return []
    days: dict[tuple, StaffDay] = {
        (item.day, item.actor_username): item
        for item in _existing(StaffDay, "day", sorted({row["day"] for row in rows}))
    }
    changed: set[tuple] = set()
    new: dict[tuple, StaffDay] = {}
    for row in rows:
        key = (row["day"], row["actor_username"])
        item = days.get(key)
        if item is None:
            if sign < 0:
                continue
            item = days[key] = StaffDay(day=row["day"], actor_username=row["actor_username"])
            new[key] = item
        elif key not in new:
            changed.add(key)
        for name in STAFF_COUNTS:
            setattr(item, name, getattr(item, name) + sign * row[name])
        if row["lookups"] and sign > 0:
            item.hours |= 1 << row["hour_of_day"]
    _save(
        StaffDay,
        changed=[days[key] for key in changed],
        new=list(new.values()),
        fields=[*STAFF_COUNTS, "hours"],
        empty=_no_lookups,
    )
    return [days[key] for key in changed if not _no_lookups(days[key])]


def _no_lookups(item: StaffDay) -> bool:
    return not any(getattr(item, name) > 0 for name in STAFF_COUNTS)


# How long a staff hour keeps the meetings it has seen (`StaffHour.meeting_ids`) after the newest
# hour counted: a batch adds its own meetings to them instead of reading the hour's entries again.
OPEN_HOURS = timedelta(hours=2)


def _add_staff_hours(rows: list[dict], *, sign: int, batch_meetings: dict, counted) -> None:
    """Lookups and not-visible answers are added or subtracted. Different meetings cannot be:
    an open staff hour adds the batch's meetings to the ones it has seen; any other staff hour
    the batch touches (a closed one, or one a purge takes entries from) is counted again from the
    entries `counted` holds. Staff hours that fall more than OPEN_HOURS behind the batch's newest
    hour counted forget their meetings."""
    if not rows:
        return
    hours: dict[tuple, StaffHour] = {
        (item.hour, item.actor_username): item
        for item in _existing(StaffHour, "hour", sorted({row["hour"] for row in rows}))
    }
    changed: set[tuple] = set()
    new: dict[tuple, StaffHour] = {}
    for row in rows:
        key = (row["hour"], row["actor_username"])
        item = hours.get(key)
        if item is None:
            if sign < 0:
                continue
            # Nothing of this staff hour was counted before: the batch holds all it has seen.
            item = hours[key] = StaffHour(
                hour=row["hour"], actor_username=row["actor_username"], meeting_ids=[]
            )
            new[key] = item
        elif key not in new:
            changed.add(key)
        item.lookups += sign * row["lookups"]
        item.not_visible += sign * row["not_visible"]
    touched = [hours[key] for key in changed] + list(new.values())
    closed = [item for item in touched if sign < 0 or item.meeting_ids is None]
    recounted = _meetings_per_staff_hour(
        counted,
        names={item.actor_username for item in closed},
        hours={item.hour for item in closed},
    )
    # The newest hour counted so far, not this batch's: an entry late for an old hour does not
    # open it again.
    newest = max(
        [row["hour"] for row in rows]
        + [hour for hour in [StaffHour.objects.aggregate(newest=Max("hour"))["newest"]] if hour]
    )
    for item in touched:
        key = (item.hour, item.actor_username)
        if item.meeting_ids is None or sign < 0:
            seen = recounted.get(key, set())
        else:
            seen = set(item.meeting_ids) | batch_meetings.get(key, set())
        item.meetings = len(seen)
        item.meeting_ids = sorted(seen) if sign > 0 and item.hour >= newest - OPEN_HOURS else None
    _save(
        StaffHour,
        changed=[hours[key] for key in changed],
        new=list(new.values()),
        fields=["lookups", "not_visible", "meetings", "meeting_ids"],
        empty=lambda item: item.lookups <= 0,
    )
    if sign > 0:
        StaffHour.objects.filter(hour__lt=newest - OPEN_HOURS, meeting_ids__isnull=False).update(
            meeting_ids=None
        )


def _meetings_of(page_lookups) -> dict[tuple, set[str]]:
    """{(hour, staff member): the meetings of `page_lookups` in it}."""
    found: defaultdict[tuple, set[str]] = defaultdict(set)
    rows = (
        page_lookups.exclude(meeting_id="")
        .order_by()
        .values_list("actor_username", TruncHour("at", tzinfo=UTC), "meeting_id")
        .distinct()
    )
    for name, hour, meeting in rows:
        found[(hour, name)].add(meeting)
    return found


def _meetings_per_staff_hour(entries, *, names: set[str], hours: set[datetime]) -> dict:
    """{(hour, staff member): the different meetings they looked up in it} over `entries`, for
    the given staff members and hours (UTC hour starts)."""
    if not names or not hours:
        return {}
    within = Q()
    for start, end in hour_spans(hours):
        within |= Q(at__gte=start, at__lt=end)
    found: defaultdict[tuple, set[str]] = defaultdict(set)
    names_in_order = sorted(names)
    for first in range(0, len(names_in_order), 500):
        found_here = _meetings_of(
            entries.filter(
                within,
                action=Action.LOOKUP,
                actor_username__in=names_in_order[first : first + 500],
            ).exclude(via=Via.REFRESH)
        )
        found.update(found_here)
    return found


def floor_hour(moment: datetime) -> datetime:
    """The start (UTC) of the hour `moment` falls in: the key of the hourly summaries."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_spans(hours, *, most: int = 100) -> list[tuple[datetime, datetime]]:
    """The hours (UTC hour starts) as [start, end) spans, neighbours joined; beyond `most` spans,
    one span from the first to the last, so that a query's condition stays short."""
    spans: list[list[datetime]] = []
    for hour in sorted(hours):
        if spans and spans[-1][1] == hour:
            spans[-1][1] = hour + timedelta(hours=1)
        else:
            spans.append([hour, hour + timedelta(hours=1)])
    if len(spans) > most:
        return [(spans[0][0], spans[-1][1])]
    return [(start, end) for start, end in spans]


def _recount_staff_hours(kept, staff_days: list[StaffDay]) -> None:
    """Set the hours worked of `staff_days` from the counted entries they keep."""
    if not staff_days:
        return
    first = min(item.day for item in staff_days)
    last = max(item.day for item in staff_days)
    worked = (
        kept.filter(
            action=Action.LOOKUP,
            actor_username__in={item.actor_username for item in staff_days},
            at__gte=datetime.combine(first, time.min, UTC),
            at__lt=datetime.combine(last + timedelta(days=1), time.min, UTC),
        )
        .exclude(via=Via.REFRESH)
        .order_by()
        .values_list(
            "actor_username",
            TruncDate("at", tzinfo=UTC),
            ExtractHour("at", tzinfo=UTC),
        )
        .distinct()
    )
    hours: defaultdict[tuple, int] = defaultdict(int)
    for name, day, hour in worked:
        hours[(day, name)] |= 1 << hour
    for item in staff_days:
        item.hours = hours[(item.day, item.actor_username)]
    StaffDay.objects.bulk_update(staff_days, ["hours"], batch_size=1000)


def counted_through() -> int:
    progress = RollupProgress.objects.filter(pk=1).first()
    return progress.last_entry_id if progress else 0
