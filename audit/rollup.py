"""Counting the audit log into `ActivityHour`, `ActivityDay`, `StaffDay` and `StaffHour`, from
the last counted entry on, in id order.

Runs from `manage.py audit_rollup` (cron) and, a bounded batch at a time, when the audit page is
opened: never in the transaction that writes an entry, so a lookup costs what it did before.
Entry ids follow the chain's order (each append holds the chain head's lock until it commits), so
an entry committed later always has a higher id than every entry already counted."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet, Sum, UniqueConstraint
from django.db.models.functions import ExtractHour, TruncDate, TruncHour

from . import partitions, records
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


def forget_month(*, month: date) -> int:
    """Take a whole UTC month of entries, about to be dropped with its partition, out of the
    summaries: delete their rows of that month's hours and days, without reading an entry. Call
    it in the drop's transaction, holding `lock_progress()`. Returns how many summary rows went.

    Exact because every summary is keyed by a UTC hour or day (ActivityDay's h00…h23 are the UTC
    hours of its day; StaffDay's `hours` bits too; a span or counted record counts at its entry's
    hour), a month's bounds are UTC day and hour starts, and the partition holds every entry of
    the month: so the month's rows hold that month's entries and nothing else. Those the rollup
    had not reached yet (`RollupProgress` inside the month, or before it) are simply never
    counted: they go with the partition, and the next count starts after them."""
    lock_progress()
    start = datetime.combine(month, time.min, UTC)
    end = datetime.combine(partitions.next_month(month), time.min, UTC)
    deleted = 0
    for model, field, low, high in (
        (ActivityHour, "hour", start, end),
        (StaffHour, "hour", start, end),
        (ActivityDay, "day", start.date(), end.date()),
        (StaffDay, "day", start.date(), end.date()),
    ):
        gone, _ = model.objects.filter(**{f"{field}__gte": low, f"{field}__lt": high}).delete()
        deleted += gone
    return deleted


def _count(entries, *, sign: int, counted) -> tuple[int, list[StaffDay]]:
    """Add (sign 1) or subtract (sign -1) `entries` to or from every summary; `counted` is every
    entry the summaries hold once this is done. Returns how many entries, and the staff days a
    subtraction changed and kept.

    The figures count what each record stands for (`records.WEIGHT`): a lookup's Connvo calls,
    a counted record's requests. Ordinary entries are summed by the database; the few with a
    tally (sealed spans, counted records) are read here, a span adding its calls to each of its
    outcomes (its unanswered calls under `records.UNANSWERED`)."""
    batch = entries.order_by()
    plain = batch.filter(tally__isnull=True)
    tallied = list(batch.filter(tally__isnull=False).values_list(*TALLIED, "actor_username"))
    hourly, n_entries = counted_hours(plain, [row[:-1] for row in tallied])
    page_lookup = ~Q(via=Via.REFRESH)
    weight = records.WEIGHT
    staff_days: Counter[tuple] = Counter()
    for row in (
        plain.filter(action=Action.LOOKUP)
        .values(
            "actor_username",
            day=TruncDate("at", tzinfo=UTC),
            hour_of_day=ExtractHour("at", tzinfo=UTC),
        )
        .annotate(
            lookups=Sum(weight, filter=page_lookup),
            not_visible=Sum(weight, filter=page_lookup & Q(outcome="not_visible")),
            refreshes=Sum(weight, filter=Q(via=Via.REFRESH)),
        )
    ):
        key = (row["actor_username"], row["day"], row["hour_of_day"])
        for name in STAFF_COUNTS:
            staff_days[(*key, name)] += row[name] or 0
    page_lookups = batch.filter(action=Action.LOOKUP).exclude(via=Via.REFRESH)
    staff_hours: Counter[tuple] = Counter()
    for row in (
        page_lookups.filter(tally__isnull=True)
        .values("actor_username", hour=TruncHour("at", tzinfo=UTC))
        .annotate(lookups=Sum(weight), not_visible=Sum(weight, filter=Q(outcome="not_visible")))
    ):
        staff_hours[(row["actor_username"], row["hour"], "lookups")] += row["lookups"] or 0
        staff_hours[(row["actor_username"], row["hour"], "not_visible")] += row["not_visible"] or 0
    for at, action, via, _, outcome, calls, repeats, tally, name in tallied:
        hour = floor_hour(at)
        by_outcome = records.calls_by_outcome(
            action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally
        )
        if action != Action.LOOKUP:
            continue
        total, not_visible = sum(by_outcome.values()), by_outcome.get("not_visible", 0)
        key = (name, hour.date(), hour.hour)
        if via == Via.REFRESH:
            staff_days[(*key, "refreshes")] += total
            continue
        staff_days[(*key, "lookups")] += total
        staff_days[(*key, "not_visible")] += not_visible
        staff_hours[(name, hour, "lookups")] += total
        staff_hours[(name, hour, "not_visible")] += not_visible
    hourly_rows = [dict(zip(KEY, key, strict=True)) | {"n": n} for key, n in hourly.items() if n]
    _add_hours(hourly_rows, sign=sign)
    _add_days(hourly_rows, sign=sign)
    changed_days = _add_staff_days(
        _rows_of(staff_days, ("actor_username", "day", "hour_of_day")), sign=sign
    )
    _add_staff_hours(
        _rows_of(staff_hours, ("actor_username", "hour")),
        sign=sign,
        batch_meetings=_meetings_of(page_lookups) if sign > 0 else {},
        counted=counted,
    )
    return n_entries, changed_days


# An entry with a tally as `counted_hours` reads it.
TALLIED = ("at", *KEY[1:], "calls", "repeats", "tally")


def counted_hours(plain: QuerySet, tallied: Iterable[Sequence]) -> tuple[Counter[tuple], int]:
    """What entries count for in the hourly summary, per KEY, and how many entries they are:
    the ordinary ones (`plain`, no tally) summed by the database with `records.WEIGHT`; those
    with a tally (`tallied`, rows of TALLIED, read apart: few) by their calls per outcome, a
    span's unanswered calls under `records.UNANSWERED`. The one way entries are counted: into
    the summaries here, and from the entries for the overview's partial hours."""
    hourly: Counter[tuple] = Counter()
    tallied = list(tallied)
    n_entries = len(tallied)
    for row in (
        plain.annotate(hour=TruncHour("at", tzinfo=UTC))
        .values(*KEY)
        .annotate(n=Sum(records.WEIGHT), entries=Count("id"))
        .order_by()
    ):
        hourly[tuple(row[name] for name in KEY)] += row["n"] or 0
        n_entries += row["entries"]
    for at, action, via, deployment, outcome, calls, repeats, tally in tallied:
        by_outcome = records.calls_by_outcome(
            action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally
        )
        for each, n in by_outcome.items():
            hourly[(floor_hour(at), action, via, deployment, each)] += n
    return hourly, n_entries


def _rows_of(counts: Counter[tuple], key: tuple[str, ...]) -> list[dict]:
    """{(*key values, figure name): n} as one row per key with every figure (0 when absent)."""
    rows: dict[tuple, dict] = {}
    for (*values, name), n in counts.items():
        row = rows.setdefault(
            tuple(values), dict(zip(key, values, strict=True)) | dict.fromkeys(STAFF_COUNTS, 0)
        )
        row[name] += n
    return [row for row in rows.values() if any(row[name] for name in STAFF_COUNTS)]


def _existing(model, field: str, values: list) -> list:
    found = []
    for start in range(0, len(values), 500):
        found.extend(model.objects.filter(**{f"{field}__in": values[start : start + 500]}))
    return found


def _key_of(model) -> tuple[str, ...]:
    """The fields a summary is unique on: what identifies one of its rows."""
    return next(c for c in model._meta.constraints if isinstance(c, UniqueConstraint)).fields


def _summary_rows(model, keys, *, sign: int, **fresh) -> dict[tuple, object]:
    """The row of the summary `model` for each key (values of `_key_of(model)`, the first a day
    or an hour): the stored one, else a new one starting from `fresh`, which has no primary key
    yet. A subtraction (sign -1) makes no new row."""
    keys = set(keys)
    fields = _key_of(model)
    stored = {
        tuple(getattr(item, name) for name in fields): item
        for item in _existing(model, fields[0], sorted({key[0] for key in keys}))
    }
    rows = {}
    for key in keys:
        item = stored.get(key)
        if item is None and sign > 0:
            item = model(**dict(zip(fields, key, strict=True)), **fresh)
        if item is not None:
            rows[key] = item
    return rows


def _save(model, items, *, fields: list[str], empty) -> None:
    """Write a summary's rows, a thousand at a time in one statement (INSERT … ON CONFLICT on the
    summary's own key DO UPDATE: Django's bulk_update writes a CASE per row and column, and took
    most of a batch's time); stored rows a subtraction left empty are deleted."""
    items = list(items)
    gone = [item.pk for item in items if item.pk is not None and empty(item)]
    model.objects.filter(pk__in=gone).delete()
    rows = [item for item in items if not empty(item)]
    for item in rows:
        item.pk = None  # found again by its key (the upsert sets it again)
    model.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=_key_of(model),
        update_fields=fields,
    )


def _add_hours(rows: list[dict], *, sign: int) -> None:
    if not rows:
        return
    hours = _summary_rows(
        ActivityHour, [tuple(row[name] for name in KEY) for row in rows], sign=sign, entries=0
    )
    for row in rows:
        item = hours.get(tuple(row[name] for name in KEY))
        if item is not None:
            item.entries += sign * row["n"]
    _save(ActivityHour, hours.values(), fields=["entries"], empty=_no_entries)


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
    days = _summary_rows(ActivityDay, counts, sign=sign)
    for key, item in days.items():
        per_hour = counts[key]
        item.entries += sum(per_hour)
        for name, n in zip(DAY_HOURS, per_hour, strict=True):
            setattr(item, name, getattr(item, name) + n)
    _save(ActivityDay, days.values(), fields=["entries", *DAY_HOURS], empty=_no_entries)


STAFF_COUNTS = ("lookups", "not_visible", "refreshes")


def _add_staff_days(rows: list[dict], *, sign: int) -> list[StaffDay]:
    """Returns the rows changed and kept (not new, not emptied)."""
    if not rows:
        return []
    days = _summary_rows(StaffDay, [(row["day"], row["actor_username"]) for row in rows], sign=sign)
    stored = [item for item in days.values() if item.pk is not None]
    for row in rows:
        item = days.get((row["day"], row["actor_username"]))
        if item is None:
            continue
        for name in STAFF_COUNTS:
            setattr(item, name, getattr(item, name) + sign * row[name])
        if row["lookups"] and sign > 0:
            item.hours |= 1 << row["hour_of_day"]
    _save(StaffDay, days.values(), fields=[*STAFF_COUNTS, "hours"], empty=_no_lookups)
    return [item for item in stored if not _no_lookups(item)]


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
    # A new staff hour: nothing of it was counted before, so the batch holds all it has seen.
    hours = _summary_rows(
        StaffHour, [(row["hour"], row["actor_username"]) for row in rows], sign=sign, meeting_ids=[]
    )
    for row in rows:
        item = hours.get((row["hour"], row["actor_username"]))
        if item is not None:
            item.lookups += sign * row["lookups"]
            item.not_visible += sign * row["not_visible"]
    touched = list(hours.values())
    closed = [item for item in touched if sign < 0 or item.meeting_ids is None]
    recounted = _meetings_per_staff_hour(
        counted,
        names={item.actor_username for item in closed},
        hours={item.hour for item in closed},
    )
    # The newest hour counted so far, not this batch's: an entry late for an old hour does not
    # open it again.
    stored_newest = StaffHour.objects.aggregate(newest=Max("hour"))["newest"]
    newest = max(filter(None, [stored_newest, *(row["hour"] for row in rows)]))
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
        touched,
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


def ceil_hour(moment: datetime) -> datetime:
    """The first hour's start (UTC) at or after `moment`: where a range's whole hours begin."""
    down = floor_hour(moment)
    return down if down == moment else down + timedelta(hours=1)


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
