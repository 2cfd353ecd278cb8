"""The audit log's monthly partitions on PostgreSQL (by `at`, declarative): a retention purge of a
whole month drops its partition instead of deleting its rows one by one, and a month's entries
and indexes stay together however long the log grows. SQLite keeps one plain table: every
function here does nothing there.

Partitions are kept by `ensure_partitions` (run after `migrate`, by `audit_purge` and by
`audit_seal`), not by pg_partman: that extension needs a superuser to install and a scheduler of
its own, which not every deployment has; a partition a month is a few lines of SQL. An entry whose
`at` falls outside every month's partition lands in the DEFAULT partition, and
`ensure_partitions` moves it to its month's partition once that exists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection, transaction
from django.utils import timezone

TABLE = "audit_auditentry"
DEFAULT = f"{TABLE}_default"
MONTHS_AHEAD = 3
# Only one `ensure_partitions` at a time (post_migrate, audit_seal on every host, audit_purge).
_LOCK = 0x4A0D17_0001
# What the append-only triggers of migrations 0003 and 0009 do, on each partition too: a
# statement trigger on the parent does not fire for a TRUNCATE of one partition.
NO_TRUNCATE = (
    "CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON {table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_no_truncate()"
)


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{TABLE}_{month:%Y_%m}"


def _bound(month: date) -> str:
    return datetime(month.year, month.month, 1, tzinfo=UTC).isoformat()


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [TABLE])
        return cursor.fetchone() is not None


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    month: date | None  # None: the DEFAULT partition

    @property
    def upper(self) -> date | None:
        return next_month(self.month) if self.month else None


def partitions() -> list[Partition]:
    """The log's partitions, oldest month first, DEFAULT last."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        month = None
        if bound != "DEFAULT":
            # FOR VALUES FROM ('2026-12-01 00:00:00+00') TO (...)
            month = month_start(datetime.fromisoformat(bound.split("'")[1]))
        found.append(Partition(name, month))
    return sorted(found, key=lambda p: (p.month is None, p.month or date.min))


def ensure_partitions(
    *,
    months_ahead: int = MONTHS_AHEAD,
    now: datetime | None = None,
    since: datetime | None = None,
) -> list[str]:
    """Create the partitions of this month and the `months_ahead` after it (and of every month
    from `since`'s on, for entries written with past times: `audit_seed`), and of every month the
    DEFAULT partition holds entries of, moving them there. Idempotent, and cheap when there is
    nothing to do (a catalog read and a read of DEFAULT, which is empty unless an entry's time was
    off). Returns the partitions created."""
    if not is_partitioned():
        return []
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        existing = {p.month for p in partitions() if p.month}
        month, last = month_start(min(since or now, now)), month_start(now)
        for _ in range(months_ahead):
            last = next_month(last)
        wanted = []
        while month <= last:
            wanted.append(month)
            month = next_month(month)
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'UTC') FROM ONLY {DEFAULT}"  # noqa: S608
        )
        stranded = {month_start(row[0]) for row in cursor.fetchall()}
        created = []
        for month in sorted((set(wanted) | stranded) - existing):
            _create(cursor, month, move=month in stranded)
            created.append(partition_name(month))
    return created


def _create(cursor, month: date, *, move: bool) -> None:
    """A month's partition, built outside the table and attached (a brief lock of the parent),
    with the entries of that month the DEFAULT partition held moved into it."""
    name, lower, upper = partition_name(month), _bound(month), _bound(next_month(month))
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_range "
        f"CHECK (at IS NOT NULL AND at >= '{lower}' AND at < '{upper}')"
    )
    if move:
        # Moving is not changing: the same rows, ids and MACs, in their month's partition. The
        # append-only trigger allows the DELETE only with the purge flag, as for audit_purge.
        cursor.execute("SELECT set_config('audit.allow_purge', 'on', true)")
        cursor.execute(
            f"INSERT INTO {name} SELECT * FROM ONLY {DEFAULT} "  # noqa: S608
            "WHERE at >= %s AND at < %s",
            [lower, upper],
        )
        cursor.execute(
            f"DELETE FROM ONLY {DEFAULT} WHERE at >= %s AND at < %s",  # noqa: S608
            [lower, upper],
        )
        cursor.execute("SELECT set_config('audit.allow_purge', 'off', true)")
    cursor.execute(
        f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}')"
    )
    # The CHECK spared ATTACH a scan; the partition's bound says the same from now on.
    cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")
    cursor.execute(NO_TRUNCATE.format(table=name))


def droppable(*, after_id: int, through_id: int) -> list[Partition]:
    """The month partitions, oldest first, that a purge of the entries after `after_id` up to
    `through_id` deletes whole: every entry in them is in that range, and every entry in that
    range up to their newest is in them. (Dropping one that fails either would delete a newer
    entry, or leave an older one behind the chain's new start.)"""
    found = []
    low = after_id
    with connection.cursor() as cursor:
        for part in partitions():
            if part.month is None:
                break
            cursor.execute(
                f"SELECT min(id), max(id) FROM {part.name}"  # noqa: S608 (a partition's name)
            )
            first, last = cursor.fetchone()
            if first is None:
                continue  # empty: nothing to gain, nothing to check
            if first <= low or last > through_id:
                break
            # Nothing of the range up to its newest entry outside it (in a later month or in
            # DEFAULT): read on the (id, at) keys of the other partitions.
            cursor.execute(
                f"SELECT 1 FROM {TABLE} WHERE id > %s AND id <= %s "  # noqa: S608
                "AND (at < %s OR at >= %s) LIMIT 1",
                [low, last, _bound(part.month), _bound(part.upper)],
            )
            if cursor.fetchone() is not None:
                break
            found.append(part)
            low = last
    return found


def drop(part: Partition) -> None:
    """Detach and drop one month's partition (in the caller's transaction, which holds the chain
    head): what `audit_purge` does instead of deleting the month's rows, in the same time
    whatever their number."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {part.name}")
        cursor.execute(f"DROP TABLE {part.name}")
