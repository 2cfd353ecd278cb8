"""Counting the audit log into `ActivityHour`, `ActivityDay` and `StaffDay`, from the last
counted entry on, in id order.

Runs from `manage.py audit_rollup` (cron) and, a bounded batch at a time, when the audit page is
opened: never in the transaction that writes an entry, so a lookup costs what it did before.
Entry ids follow the chain's order (each append holds the chain head's lock until it commits), so
an entry committed later always has a higher id than every entry already counted."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC

from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import ExtractHour, TruncDate, TruncHour

from .models import (
    DAY_HOURS,
    Action,
    ActivityDay,
    ActivityHour,
    AuditEntry,
    RollupProgress,
    StaffDay,
    Via,
)

KEY = ("hour", "action", "via", "deployment", "outcome")
DAY_KEY = ("day", "action", "via", "deployment", "outcome")


def _progress() -> RollupProgress | None:
    """The progress row, locked; None when another process is counting right now."""
    RollupProgress.objects.get_or_create(pk=1)
    return RollupProgress.objects.select_for_update(skip_locked=True).filter(pk=1).first()


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
        batch = newer.filter(id__lte=upper).order_by()
        hourly = list(
            batch.annotate(hour=TruncHour("at", tzinfo=UTC)).values(*KEY).annotate(n=Count("id"))
        )
        _add_hours(hourly)
        _add_days(hourly)
        lookups = batch.filter(action=Action.LOOKUP)
        page_lookup = ~Q(via=Via.REFRESH)
        _add_staff_days(
            list(
                lookups.values(
                    "actor_username",
                    day=TruncDate("at", tzinfo=UTC),
                    hour_of_day=ExtractHour("at", tzinfo=UTC),
                ).annotate(
                    lookups=Count("id", filter=page_lookup),
                    not_visible=Count("id", filter=page_lookup & Q(outcome="not_visible")),
                    refreshes=Count("id", filter=Q(via=Via.REFRESH)),
                )
            )
        )
        progress.last_entry_id = upper
        progress.save(update_fields=["last_entry_id"])
    return sum(row["n"] for row in hourly)


def _existing(model, field: str, values: list) -> list:
    found = []
    for start in range(0, len(values), 500):
        found.extend(model.objects.filter(**{f"{field}__in": values[start : start + 500]}))
    return found


def _add_hours(rows: list[dict]) -> None:
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
            existing[key].entries += row["n"]
            changed.append(existing[key])
        else:
            new.append(ActivityHour(**{name: row[name] for name in KEY}, entries=row["n"]))
    ActivityHour.objects.bulk_update(changed, ["entries"], batch_size=2000)
    ActivityHour.objects.bulk_create(new, batch_size=5000)


def _add_days(hourly: list[dict]) -> None:
    """The same counts as `_add_hours`, per day: each hour's count goes to its day's total and
    to its own hour of that day."""
    counts: defaultdict[tuple, list[int]] = defaultdict(lambda: [0] * 24)
    for row in hourly:
        hour = row["hour"].astimezone(UTC)
        key = (hour.date(), *(row[name] for name in DAY_KEY[1:]))
        counts[key][hour.hour] += row["n"]
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
            item = ActivityDay(**dict(zip(DAY_KEY, key, strict=True)))
            new.append(item)
        else:
            changed.append(item)
        item.entries += sum(per_hour)
        for name, n in zip(DAY_HOURS, per_hour, strict=True):
            setattr(item, name, getattr(item, name) + n)
    ActivityDay.objects.bulk_update(changed, ["entries", *DAY_HOURS], batch_size=1000)
    ActivityDay.objects.bulk_create(new, batch_size=2000)


def _add_staff_days(rows: list[dict]) -> None:
    if not rows:
        return
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
            item = days[key] = StaffDay(day=row["day"], actor_username=row["actor_username"])
            new[key] = item
        elif key not in new:
            changed.add(key)
        item.lookups += row["lookups"]
        item.not_visible += row["not_visible"]
        item.refreshes += row["refreshes"]
        if row["lookups"]:
            item.hours |= 1 << row["hour_of_day"]
    fields = ["lookups", "not_visible", "refreshes", "hours"]
    StaffDay.objects.bulk_update([days[key] for key in changed], fields, batch_size=2000)
    StaffDay.objects.bulk_create(list(new.values()), batch_size=5000)


def counted_through() -> int:
    progress = RollupProgress.objects.filter(pk=1).first()
    return progress.last_entry_id if progress else 0
