"""The audit log's monthly partitions on PostgreSQL (audit/partitions.py, migration 0017): entries
land in their month's partition, the DEFAULT partition catches the rest until its month exists, a
retention purge of whole months drops their partitions after its chained entry, and the chain
verifies across all of it. SQLite keeps one plain table."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit import chain, partitions
from audit.models import Action, AuditEntry, ChainHead
from audit.partitions import month_start, next_month, partition_name
from tests.test_audit_chain import tamper

pytestmark = pytest.mark.django_db
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")


def partition_of(entry: AuditEntry) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM audit_auditentry WHERE id = %s", [entry.pk]
        )
        return cursor.fetchone()[0]


def names() -> set[str]:
    return {p.name for p in partitions.partitions()}


def at_month(months_back: int, day: int = 2) -> datetime:
    """Noon on `day` of the month `months_back` before this one (UTC)."""
    month = month_start(datetime.now(UTC))
    for _ in range(months_back):
        month = date_before(month)
    return datetime(month.year, month.month, day, 12, tzinfo=UTC)


def date_before(month):
    return (datetime(month.year, month.month, 1) - timedelta(days=1)).date().replace(day=1)


def test_sqlite_keeps_one_plain_table(db):
    if connection.vendor == "postgresql":
        assert partitions.is_partitioned()
    else:
        assert not partitions.is_partitioned()
        assert partitions.ensure_partitions() == []
        assert partitions.partitions() == []


@on_postgres
def test_this_month_and_the_next_three_have_partitions(db):
    month = month_start(datetime.now(UTC))
    wanted = {month}
    for _ in range(3):
        month = next_month(month)
        wanted.add(month)

    assert {partition_name(m) for m in wanted} | {partitions.DEFAULT} <= names()


@on_postgres
def test_entries_land_in_their_months_partition(audit_entry):
    now = datetime.now(UTC)
    entry = audit_entry(at=now)

    assert partition_of(entry) == partition_name(month_start(now))
    # The ORM still finds it by its id alone, and the head's id is the one RETURNING gave.
    assert AuditEntry.objects.get(pk=entry.pk).mac == entry.mac
    assert ChainHead.objects.get().last_entry_id == entry.pk


@on_postgres
def test_the_default_partition_catches_a_month_without_one_until_it_exists(audit_entry):
    future = datetime(2041, 3, 15, 9, tzinfo=UTC)
    before = audit_entry(at=datetime.now(UTC))
    stray = audit_entry(at=future)
    assert partition_of(stray) == partitions.DEFAULT

    created = partitions.ensure_partitions()

    assert created == [partition_name(month_start(future))]
    assert partition_of(stray) == partition_name(month_start(future))
    assert AuditEntry.objects.get(pk=stray.pk).mac == stray.mac
    assert partitions.ensure_partitions() == []  # idempotent
    result = chain.verify()
    assert result.ok, result.message
    assert partition_of(before) != partitions.DEFAULT


@on_postgres
def test_a_partition_refuses_changes_and_truncate_like_the_table(audit_entry):
    entry = audit_entry(at=datetime.now(UTC))
    table = partition_of(entry)
    for statement in (
        f"UPDATE {table} SET detail = 'x' WHERE id = {entry.pk}",  # noqa: S608
        f"DELETE FROM {table} WHERE id = {entry.pk}",  # noqa: S608
        f"TRUNCATE {table}",
        f"TRUNCATE {partitions.DEFAULT}",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            # The entry's deferred foreign key check would refuse a TRUNCATE first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(statement)
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


@pytest.fixture
def three_old_months(audit_entry, settings):
    """Entries in three months a year back (written at their time, so in chain order), the
    third month's straddling the cutoff of the purge the tests ask for, and two recent ones."""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    whole = [audit_entry(at=at_month(12, day)) for day in (2, 20)]
    whole += [audit_entry(at=at_month(11, day)) for day in (3, 25)]
    partial = [audit_entry(at=at_month(10, 2)), audit_entry(at=at_month(10, 20))]
    recent = [audit_entry(at=datetime.now(UTC) - timedelta(days=1))]
    partitions.ensure_partitions()  # the old months' entries move out of DEFAULT
    return whole, partial, recent


@on_postgres
def test_a_purge_of_whole_months_drops_their_partitions_after_its_entry(three_old_months):
    whole, partial, recent = three_old_months
    gone = {partition_name(month_start(e.at)) for e in whole}
    assert gone <= names()
    cutoff = at_month(10, 10)
    days = (datetime.now(UTC) - cutoff).days

    out = io.StringIO()
    call_command("audit_purge", "--older-than", str(days), stdout=out)

    assert f"Deleted {len(whole) + 1} audit entries (through entry #{partial[0].pk})" in (
        out.getvalue()
    )
    assert not gone & names()  # dropped, not emptied
    assert partition_name(month_start(partial[0].at)) in names()
    kept = set(AuditEntry.objects.values_list("pk", flat=True))
    assert kept >= {partial[1].pk, recent[0].pk}
    assert not kept & {e.pk for e in [*whole, partial[0]]}
    purge_entry = AuditEntry.objects.get(action=Action.AUDIT_PURGED)
    assert f"count={len(whole) + 1} first={whole[0].pk} last={partial[0].pk}" in purge_entry.detail
    result = chain.verify()
    assert result.ok, result.message
    assert f"Entries up to #{partial[0].pk} were purged by audit_purge." in result.message


@on_postgres
def test_a_month_with_a_newer_entry_in_it_is_not_dropped(three_old_months):
    whole, _, _ = three_old_months
    cutoff = at_month(11, 10)  # inside the second month: it keeps its second entry
    days = (datetime.now(UTC) - cutoff).days

    call_command("audit_purge", "--older-than", str(days), stdout=io.StringIO())

    assert partition_name(month_start(whole[0].at)) not in names()
    assert partition_name(month_start(whole[2].at)) in names()
    assert list(AuditEntry.objects.filter(pk__in=[e.pk for e in whole])) == [whole[3]]
    assert chain.verify().ok


@on_postgres
def test_a_broken_chain_is_not_purged_and_keeps_its_partitions(three_old_months):
    whole, _, _ = three_old_months
    tamper("UPDATE audit_auditentry SET detail = 'x' WHERE id = %s", [whole[1].pk])
    before = names()
    days = (datetime.now(UTC) - at_month(10, 10)).days

    with pytest.raises(CommandError, match="Nothing deleted: the audit chain does not verify"):
        call_command("audit_purge", "--older-than", str(days), stdout=io.StringIO())

    assert names() == before
    assert AuditEntry.objects.filter(pk=whole[0].pk).exists()


@on_postgres
def test_dropping_a_months_partition_outside_audit_purge_is_found(three_old_months):
    whole, _, _ = three_old_months
    name = partition_name(month_start(whole[2].at))
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE audit_auditentry DETACH PARTITION {name}")
        cursor.execute(f"DROP TABLE {name}")

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == whole[-1].pk + 1


@on_postgres
def test_seeded_entries_of_past_months_land_in_their_months(db):
    from audit import seeding

    seeding.seed(rows=200, days=95, staff=5, meetings=20, random_seed=1)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT}")  # noqa: S608
        assert cursor.fetchone() == (0,)
    oldest = AuditEntry.objects.order_by("id").first()
    assert partition_of(oldest) == partition_name(month_start(oldest.at))
    assert chain.verify().ok
