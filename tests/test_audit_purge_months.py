"""A month purged whole leaves the summaries as a fresh count of what remains: its rows of the
overview's and the flags' summaries go by their UTC hours and days (`rollup.forget_month`), on
PostgreSQL when `audit_purge` drops the month's partition, whatever the rollup had counted."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction

from audit import insights, overview, partitions, rollup, services
from audit.models import (
    Action,
    ActivityDay,
    ActivityHour,
    AuditEntry,
    RollupProgress,
    StaffDay,
    StaffHour,
)
from audit.partitions import month_start, next_month, partition_name
from audit.selectors import EntryFilter
from tests.test_audit_chain import tamper

pytestmark = pytest.mark.django_db
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")

STAFF = ["alice", "bob", "carol"]
# The overview's range ends here; the flags' windows too (everything is older).
NOW = datetime.now(UTC).replace(microsecond=0)
MEETINGS = [f"meeting-{n:02d}".ljust(32, "x") for n in range(6)]


def months_back(n: int) -> date:
    month = month_start(datetime.now(UTC))
    for _ in range(n):
        month = month_start(datetime(month.year, month.month, 1) - timedelta(days=1))
    return month


def utc(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def page(name: str, at: datetime, meeting: str, **fields) -> dict:
    """A lookup as `audit_entry` writes it (through the chain, stamped `at`)."""
    return {"username": name, "at": at, "action": Action.LOOKUP, "via": "page"} | {
        "deployment": "prod",
        "meeting_id": meeting,
        "outcome": "found",
        "calls": 1,
        **fields,
    }


def span_part(name: str, at: datetime, meeting: str, rng: random.Random) -> dict:
    """A sealed span part (the shape in the brief): calls counted per outcome."""
    found, timeout = rng.randrange(1, 9), rng.randrange(3)
    outcomes = {"found": found, "timeout": timeout} if timeout else {"found": found}
    stamp = at.isoformat()
    tally = {"kind": "span", "span": "k" * 22, "opened": stamp, "from": stamp, "to": stamp}
    tally |= {"outcomes": outcomes, "unanswered": 0, "first_request": "", "last_request": ""}
    tally["final"] = True
    return page(name, at, meeting, via="refresh", calls=found + timeout, tally=tally)


def month_of_work(month: date, rng: random.Random, *, until: datetime | None = None) -> list:
    """Lookups, refreshes and span parts through the month, thickest at its edges (the first
    and last hours and days, where a summary row could straddle two months), and sign-ins."""
    start, end = utc(month), utc(next_month(month))
    if until is not None:
        end = min(end, until)
    span = (end - start).total_seconds()
    moments = [start + timedelta(seconds=rng.uniform(0, span)) for _ in range(40)]
    moments += [start + timedelta(seconds=rng.uniform(0, 3600)) for _ in range(6)]
    moments += [end - timedelta(seconds=rng.uniform(1, 3600)) for _ in range(6)]
    entries = []
    for at in moments:
        name, meeting = rng.choice(STAFF), rng.choice(MEETINGS)
        kind = rng.random()
        if kind < 0.6:
            outcome = rng.choice(["found", "found", "not_visible"])
            entries.append(page(name, at, meeting, outcome=outcome))
        elif kind < 0.8:
            entries.append(page(name, at, meeting, via="refresh"))
        elif kind < 0.95:
            entries.append(span_part(name, at, meeting, rng))
        else:
            entries.append({"username": name, "at": at, "action": Action.SIGN_IN})
    return entries


def summaries() -> tuple[list, ...]:
    return (
        sorted(ActivityHour.objects.values_list("hour", "action", "via", "outcome", "entries")),
        sorted(ActivityDay.objects.values_list(*[f.name for f in ActivityDay._meta.fields][1:])),
        sorted(StaffDay.objects.values_list("day", "actor_username", "lookups", "hours")),
        sorted(StaffHour.objects.values_list("hour", "actor_username", "lookups", "meetings")),
    )


def figures(months: list[date]) -> tuple:
    """What the overview shows of the whole log, and the flags of a window in each month (against
    the days before it, which reach into the month before), read from the summaries. The flags'
    thresholds are at their lowest, so that every staff member is flagged with figures."""
    now = NOW
    shown = overview.overview(EntryFilter(since=utc(months[0]), until=now), now=now, zone=UTC)
    flags = [insights.find_flags(now=utc(m) + timedelta(days=8), since=utc(m)) for m in months]
    return shown, flags


def afresh(months: list[date]) -> tuple:
    """Summaries and figures counted from nothing, from the entries that remain."""
    for model in (ActivityHour, ActivityDay, StaffDay, StaffHour):
        model.objects.all().delete()
    RollupProgress.objects.update(last_entry_id=0)
    rollup.catch_up()
    return summaries(), figures(months)


@pytest.fixture
def four_months(settings, audit_entry):
    """Entries through three whole months a year back and the first days of the month after,
    in chain order; and one recent entry."""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    settings.AUDIT_FLAG_MIN_LOOKUPS = settings.AUDIT_FLAG_NOT_VISIBLE_MIN = 1
    settings.AUDIT_FLAG_MEETINGS_PER_HOUR = settings.AUDIT_FLAG_OFF_HOURS_MIN = 1
    settings.AUDIT_FLAG_OFF_HOURS_MIN_BASELINE = 1
    rng = random.Random(22)
    months = [months_back(n) for n in (13, 12, 11, 10)]
    entries = [entry for month in months[:3] for entry in month_of_work(month, rng)]
    entries += month_of_work(months[3], rng, until=utc(months[3]) + timedelta(days=9))
    entries.append(page("alice", datetime.now(UTC) - timedelta(days=1), MEETINGS[0]))
    for entry in sorted(entries, key=lambda entry: entry["at"]):
        audit_entry(**entry)
    partitions.ensure_partitions()
    return months


def test_forgetting_a_month_leaves_what_a_fresh_count_of_the_rest_gives(four_months):
    """On either database: the month's rows go by time, and with the month's entries gone the
    summaries are those of a count from nothing."""
    rollup.catch_up()
    month = four_months[1]

    with transaction.atomic():
        rollup.forget_month(month=month)
    tamper(
        "DELETE FROM audit_auditentry WHERE at >= %s AND at < %s",
        [utc(month), utc(next_month(month))],
    )
    after, shown = summaries(), figures(four_months)

    assert not ActivityDay.objects.filter(day__gte=month, day__lt=next_month(month)).exists()
    assert ActivityHour.objects.filter(hour__lt=utc(month)).exists()
    assert ActivityHour.objects.filter(hour__gte=utc(next_month(month))).exists()
    assert shown[1][1] == []  # nothing left of that month to flag
    assert shown[1][2]  # the month after it: flagged against a baseline partly in that month
    assert (after, shown) == afresh(four_months)


@on_postgres
@pytest.mark.parametrize("counted", ["all", "none", "mid-second-month", "mid-partial-month"])
def test_a_purge_of_whole_months_leaves_the_figures_of_a_fresh_count(four_months, counted):
    """Whatever the rollup had counted before the purge (everything, nothing, up to the middle
    of a month the purge drops, or of the month it deletes part of), the overview and the flags
    show after it what a count of the remaining entries from nothing shows."""
    months = four_months
    if counted != "none":
        if counted == "all":
            upper = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()
        else:
            month = months[1] if counted == "mid-second-month" else months[3]
            upper = (
                AuditEntry.objects.filter(at__lt=utc(month) + timedelta(days=4))
                .order_by("-id")
                .values_list("id", flat=True)
                .first()
            )
        rollup.catch_up(limit=AuditEntry.objects.filter(id__lte=upper).count())
    cutoff = utc(months[3]) + timedelta(days=5)

    purged = services.purge_old_entries(retention_days=(datetime.now(UTC) - cutoff).days)
    rollup.catch_up()

    names = {p.name for p in partitions.partitions()}
    assert not {partition_name(month) for month in months[:3]} & names
    assert partition_name(months[3]) in names
    assert purged.deleted > 150
    assert AuditEntry.objects.filter(at__lt=utc(months[3])).count() == 0
    assert (summaries(), figures(months)) == afresh(months)
