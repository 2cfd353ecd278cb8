"""The audit log's hash chain (audit/chain.py): appends, verification, purges, and the
database's refusal to change entries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from audit import chain
from audit.models import Action, AppendOnlyError, AuditEntry, ChainHead
from audit.services import Origin, record

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (trigger, concurrent writers)"
)


def tamper(sql: str, params: list | tuple = ()) -> None:
    """Change the table behind the console's back, the way someone with database access could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # As a superuser would: triggers off for this session.
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")


def forge(**values) -> None:
    """Insert a row directly, with a made-up MAC (the key is not in the database)."""
    row = {
        "at": datetime.now(UTC),
        "actor_username": "intruder",
        "action": "lookup",
        "via": "page",
        "deployment": "prod",
        "meeting_id": "x",
        "outcome": "found",
        "connvo_request_id": "",
        "user_agent": "",
        "detail": "",
        "request_id": "",
        "mac": "f" * 64,
        **values,
    }
    columns, marks = ", ".join(row), ", ".join(["%s"] * len(row))
    sql = f"INSERT INTO audit_auditentry ({columns}) VALUES ({marks})"  # noqa: S608 (our names)
    tamper(sql, list(row.values()))


@pytest.fixture
def five_entries(audit_entry) -> list[AuditEntry]:
    return [audit_entry(meeting_id=f"meeting{n}", outcome="found") for n in range(5)]


def test_each_entry_chains_to_the_one_before(five_entries):
    first, second = five_entries[0], five_entries[1]

    assert first.mac == chain.compute_mac(
        {name: getattr(first, name) for name in chain.CHAINED_FIELDS}, prev_mac=chain.GENESIS
    )
    assert second.mac == chain.compute_mac(
        {name: getattr(second, name) for name in chain.CHAINED_FIELDS}, prev_mac=first.mac
    )
    head = ChainHead.objects.get()
    assert (head.last_entry_id, head.last_mac) == (five_entries[-1].pk, five_entries[-1].mac)


def test_mac_depends_on_the_key(settings, five_entries):
    entry = five_entries[0]
    values = {name: getattr(entry, name) for name in chain.CHAINED_FIELDS}

    settings.AUDIT_CHAIN_KEY = "another-key-of-at-least-thirty-two-characters"

    assert chain.compute_mac(values, prev_mac=chain.GENESIS) != entry.mac


def test_stored_entry_verifies_as_read_back_from_the_database(five_entries):
    """What the MAC covered must be exactly what the database gives back (timestamps to the
    microsecond, addresses normalised)."""
    odd = record(
        origin=Origin(user=None, username="ünïcode", client_ip="::ffff:10.0.0.1", user_agent="x"),
        action=Action.LOOKUP,
        meeting_id="m" * 80,  # cut to the column's 64
        detail='quote " and newline \n',
        latency_ms=12,
    )

    assert AuditEntry.objects.get(pk=odd.pk).meeting_id == "m" * 64
    assert chain.verify().ok


def test_clean_chain_verifies(five_entries):
    result = chain.verify()

    assert result.ok
    assert result.entries_checked == 5
    assert result.first_bad_id is None


def test_empty_log_verifies(db):
    assert chain.verify().ok


def test_verify_reads_in_small_batches_without_losing_a_link(five_entries):
    assert chain.verify(batch_size=2).ok


def test_edited_entry_is_the_first_broken_link(five_entries):
    edited = five_entries[2]
    tamper(
        "UPDATE audit_auditentry SET actor_username = %s WHERE id = %s", ["someone-else", edited.pk]
    )

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == edited.pk
    assert result.entries_checked == 2
    assert f"Entry #{edited.pk} does not match its MAC: it was changed" in result.message


def test_deleted_entry_breaks_the_link_of_the_next_one(five_entries):
    tamper("DELETE FROM audit_auditentry WHERE id = %s", [five_entries[2].pk])

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == five_entries[3].pk
    assert "or the entry just before it was deleted" in result.message


def test_inserted_entry_is_found(five_entries):
    # Make room between the second and third entries, then slip a row in.
    forged_id = five_entries[2].pk * 1000
    tamper("UPDATE audit_auditentry SET id = id * 1000 WHERE id > %s", [five_entries[1].pk])
    forge(id=forged_id - 1)
    tamper("UPDATE audit_chainhead SET last_entry_id = %s", [five_entries[-1].pk * 1000])

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == forged_id - 1
    assert "it was inserted" in result.message


def test_entry_appended_outside_the_console_is_found(five_entries):
    forge()

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id > five_entries[-1].pk


def test_deleting_the_newest_entries_is_found(five_entries):
    tamper("DELETE FROM audit_auditentry WHERE id >= %s", [five_entries[3].pk])

    result = chain.verify()

    assert not result.ok
    assert result.entries_checked == 3
    assert "the entries after it were deleted" in result.message


def test_record_joins_the_chain_inside_the_callers_savepoint(five_entries):
    with pytest.raises(RuntimeError), transaction.atomic():
        record(origin=Origin(user=None, username="x"), action=Action.LOOKUP)
        raise RuntimeError("the caller's work failed")

    # Entry and head were rolled back together: the chain is whole and the next entry fits.
    record(origin=Origin(user=None, username="y"), action=Action.LOOKUP)
    assert chain.verify().ok
    assert AuditEntry.objects.count() == 6


def test_the_orm_refuses_to_change_or_delete_entries(five_entries):
    entry = five_entries[0]
    entry.detail = "rewritten"

    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(detail="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    assert chain.verify().ok


def test_purge_deletes_only_old_entries_and_the_rest_still_verifies(audit_entry):
    now = datetime.now(UTC)
    old = [audit_entry(at=now - timedelta(days=40, minutes=n)) for n in (3, 2, 1)]
    recent = [audit_entry(at=now - timedelta(days=5)), audit_entry(at=now)]

    result = chain.purge(older_than=timedelta(days=30), batch_size=2)

    assert result.deleted == 3
    assert result.through_id == old[-1].pk
    assert list(AuditEntry.objects.order_by("id")) == recent
    head = ChainHead.objects.get()
    assert (head.purged_through_id, head.purged_through_mac) == (old[-1].pk, old[-1].mac)
    verified = chain.verify()
    assert verified.ok
    assert verified.entries_checked == 2


def test_purge_never_deletes_past_a_newer_entry(audit_entry):
    """The chain can only lose its oldest end: an old entry after a new one (a clock stepped
    back) is kept."""
    now = datetime.now(UTC)
    first = audit_entry(at=now - timedelta(days=40))
    audit_entry(at=now - timedelta(days=1))
    audit_entry(at=now - timedelta(days=50))

    result = chain.purge(older_than=timedelta(days=30))

    assert result.deleted == 1
    assert result.through_id == first.pk
    assert AuditEntry.objects.count() == 2
    assert chain.verify().ok


def test_entries_written_after_a_purge_verify(audit_entry):
    now = datetime.now(UTC)
    audit_entry(at=now - timedelta(days=40))
    chain.purge(older_than=timedelta(days=30))
    audit_entry()

    assert chain.verify().ok


def test_a_row_older_than_the_purge_is_found(audit_entry):
    now = datetime.now(UTC)
    old = audit_entry(at=now - timedelta(days=40))
    audit_entry(at=now)
    chain.purge(older_than=timedelta(days=30))
    forge(id=old.pk, at=old.at, mac=old.mac, actor_username="ghost")

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == old.pk


def test_deleting_an_account_keeps_its_entries_and_their_username(agent, five_entries):
    entry = record(origin=Origin(user=agent, username="agent"), action=Action.SIGN_IN)

    agent.delete()

    kept = AuditEntry.objects.get(pk=entry.pk)
    assert kept.actor_id is None
    assert kept.actor_username == "agent"
    assert chain.verify().ok


@on_postgres
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_auditentry SET detail = 'rewritten'", "DELETE FROM audit_auditentry"],
    ids=["update", "delete"],
)
def test_postgres_refuses_to_change_or_delete_entries(five_entries, statement):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)

    assert AuditEntry.objects.filter(detail="").count() == 5


@on_postgres
def test_postgres_refuses_to_repoint_an_entry_to_another_account(agent, outsider):
    entry = record(origin=Origin(user=agent, username="agent"), action=Action.SIGN_IN)

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE audit_auditentry SET actor_id = %s", [outsider.pk])

    assert AuditEntry.objects.get(pk=entry.pk).actor_id == agent.pk


@on_postgres
def test_postgres_refuses_deletes_again_after_a_purge(audit_entry):
    now = datetime.now(UTC)
    audit_entry(at=now - timedelta(days=40))
    kept = audit_entry(at=now)
    chain.purge(older_than=timedelta(days=30))

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [kept.pk])


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_allows_delete_only_with_the_purge_flag_for_that_transaction(five_entries):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', true)", [chain.PURGE_FLAG])
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [five_entries[0].pk])

    # The flag ended with its transaction.
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [five_entries[1].pk])
    assert AuditEntry.objects.count() == 4


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_linear_chain():
    writers, entries_each = 6, 15
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(entries_each):
                record(
                    origin=Origin(user=None, username=f"worker{n}"),
                    action=Action.LOOKUP,
                    meeting_id=f"m{n}-{i}",
                )
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    result = chain.verify()
    assert result.ok, result.message
    assert result.entries_checked == writers * entries_each
    # Time order and chain order agree: each entry was stamped under the lock.
    stamps = list(AuditEntry.objects.order_by("id").values_list("at", flat=True))
    assert stamps == sorted(stamps)
    assert len({u for u in AuditEntry.objects.values_list("actor_username", flat=True)}) == 6


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_each_return_their_own_committed_entry():
    """Appends outside a transaction are committed together when they arrive together: each
    caller still gets back its own entry, already committed (visible to another connection)."""
    writers, entries_each = 8, 10
    start = threading.Barrier(writers)
    returned: list[tuple[str, int, str]] = []
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(entries_each):
                entry = record(
                    origin=Origin(user=None, username=f"w{n}"),
                    action=Action.LOOKUP,
                    meeting_id=f"m{n}-{i}",
                )
                returned.append((entry.meeting_id, entry.pk, entry.mac))
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    stored = {
        (meeting_id, pk, mac)
        for pk, meeting_id, mac in AuditEntry.objects.values_list("pk", "meeting_id", "mac")
    }
    assert set(returned) == stored
    assert len(stored) == writers * entries_each
    assert chain.verify().ok


@pytest.mark.django_db(transaction=True)
def test_a_failed_group_append_raises_for_its_caller_and_the_chain_goes_on(monkeypatch):
    def refuse(entries):
        raise DatabaseError("disk full")

    monkeypatch.setattr(chain, "_insert_at_head", refuse)
    with pytest.raises(DatabaseError, match="disk full"):
        record(origin=Origin(user=None, username="x"), action=Action.LOOKUP)
    monkeypatch.undo()

    entry = record(origin=Origin(user=None, username="y"), action=Action.LOOKUP)
    assert AuditEntry.objects.get().pk == entry.pk
    assert chain.verify().ok
