"""The audit log's hash chain (audit/chain.py): appends, verification, purges, and the
database's refusal to change entries."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit import chain
from audit.models import Action, AppendOnlyError, AuditEntry, ChainHead
from audit.services import Origin, purge_old_entries, record, record_many
from connvo_admin.logs import request_id_var

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


def rewrite_with_the_key(entry: AuditEntry, *, prev_mac: str, **changes) -> str:
    """Rewrite the chain's last entry and re-chain it, as someone holding the key could: the
    chain verifies on its own; only a witness of the entry shows it. Returns the new MAC."""
    values = dict(
        AuditEntry.objects.filter(pk=entry.pk).values(*chain.CHAINED_FIELDS).get(), **changes
    )
    mac = chain.compute_mac(values, prev_mac=prev_mac)
    columns = ", ".join(f"{name} = %s" for name in changes)
    tamper(
        f"UPDATE audit_auditentry SET {columns}, mac = %s WHERE id = %s",  # noqa: S608 (our names)
        [*changes.values(), mac, entry.pk],
    )
    tamper("UPDATE audit_chainhead SET last_mac = %s", [mac])
    return mac


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

    settings.AUDIT_CHAIN_KEYS = ["another-key-of-at-least-thirty-two-characters"]

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


# What the README promises the MAC covers: every field an auditor reads, written out here rather
# than taken from `chain.CHAINED_FIELDS`, so that dropping one from the code's list fails a test.
# Each has a changed value that a tamperer might write.
PROMISED_MAC_FIELDS = {
    "at": lambda entry: entry.at + timedelta(seconds=1),
    "actor_username": lambda entry: "someone-else",
    "action": lambda entry: "export",
    "via": lambda entry: "command",
    "deployment": lambda entry: "other",
    "meeting_id": lambda entry: "another-meeting",
    "outcome": lambda entry: "not_found",
    "http_status": lambda entry: 404,
    "latency_ms": lambda entry: entry.latency_ms + 1,
    "connvo_request_id": lambda entry: "req-forged",
    "client_ip": lambda entry: "192.0.2.99",
    "user_agent": lambda entry: "forged-agent",
    "detail": lambda entry: "nothing to see",
    "request_id": lambda entry: "forged-request",
    # Encoding 2's fields: setting one on an entry written without them changes its encoding.
    "calls": lambda entry: 7,
    "repeats": lambda entry: 3,
}
# Also covered, with tests of their own (a JSON document is tampered with differently): a sealed
# span's or counted record's tally, changed or cleared, in tests/test_audit_chain_counted.py.
PROMISED_JSON_FIELDS = {"tally"}
# Not covered, on purpose (README): the database assigns `id`, and `actor` is cleared when an
# account is deleted (the username as written is what the MAC covers); `mac` is the MAC itself.
NOT_COVERED = {"id", "actor", "mac"}


def test_the_promised_fields_are_every_field_of_an_entry():
    names = {field.name for field in AuditEntry._meta.get_fields()}

    assert names - NOT_COVERED == set(PROMISED_MAC_FIELDS) | PROMISED_JSON_FIELDS


@pytest.mark.parametrize("field", sorted(PROMISED_MAC_FIELDS))
def test_changing_any_covered_field_names_the_entry(field, audit_entry):
    entries = []
    for n in range(3):
        request = request_id_var.set(f"request-{n}")
        entries.append(
            audit_entry(
                meeting_id=f"meeting{n}",
                via="page",
                deployment="dev",
                outcome="found",
                http_status=200,
                latency_ms=40 + n,
                connvo_request_id=f"req-{n}",
                detail=f"detail {n}",
            )
        )
        request_id_var.reset(request)
    edited = entries[1]
    new_value = PROMISED_MAC_FIELDS[field](edited)
    assert new_value != getattr(edited, field)
    tamper(
        f"UPDATE audit_auditentry SET {field} = %s WHERE id = %s",  # noqa: S608 (our names)
        [new_value, edited.pk],
    )
    assert getattr(AuditEntry.objects.get(pk=edited.pk), field) == new_value

    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("audit_verify", stdout=out, stderr=out)

    assert exited.value.code == 1
    assert f"Entry #{edited.pk} does not match its MAC" in out.getvalue()
    assert chain.verify().first_bad_id == edited.pk


def test_several_changed_entries_are_reported_as_such(five_entries):
    for edited in five_entries[1:3]:
        tamper("UPDATE audit_auditentry SET detail = %s WHERE id = %s", ["rewritten", edited.pk])

    result = chain.verify()

    assert result.first_bad_id == five_entries[1].pk
    assert result.message == (
        f"Entry #{five_entries[1].pk} does not match its MAC, and neither does the entry after "
        "it: several entries were changed, deleted or inserted from here on."
    )


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


def test_many_entries_appended_at_once_join_the_chain_in_order(five_entries):
    origin = Origin(user=None, username="lead")

    written = record_many(
        origin=origin,
        entries=[{"action": Action.LOOKUP, "meeting_id": f"table{n}"} for n in range(3)],
    )
    record(origin=origin, action=Action.LOOKUP, meeting_id="after")

    ids = [entry.pk for entry in written]
    assert ids == sorted(ids) and ids[0] > five_entries[-1].pk
    assert list(AuditEntry.objects.order_by("id").values_list("meeting_id", flat=True))[5:] == [
        "table0",
        "table1",
        "table2",
        "after",
    ]
    assert ChainHead.objects.get().last_mac == AuditEntry.objects.order_by("id").last().mac
    assert chain.verify().ok


def test_many_entries_roll_back_together(five_entries):
    with pytest.raises(RuntimeError), transaction.atomic():
        record_many(
            origin=Origin(user=None, username="x"),
            entries=[{"action": Action.LOOKUP}, {"action": Action.LOOKUP}],
        )
        raise RuntimeError("the caller's work failed")

    assert AuditEntry.objects.count() == 5
    record(origin=Origin(user=None, username="y"), action=Action.LOOKUP)
    assert chain.verify().ok


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


@pytest.fixture
def thirty_day_retention(settings):
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    return settings


def test_purge_deletes_only_old_entries_and_the_rest_still_verifies(
    audit_entry, thirty_day_retention
):
    now = datetime.now(UTC)
    old = [audit_entry(at=now - timedelta(days=40, minutes=n)) for n in (3, 2, 1)]
    recent = [audit_entry(at=now - timedelta(days=5)), audit_entry(at=now)]

    result = purge_old_entries(retention_days=30, batch_size=2)

    assert result.deleted == 3
    assert result.through_id == old[-1].pk
    purge_entry = AuditEntry.objects.get(action=Action.AUDIT_PURGED)
    assert list(AuditEntry.objects.order_by("id")) == [*recent, purge_entry]
    head = ChainHead.objects.get()
    assert (head.purged_through_id, head.purged_through_mac) == (old[-1].pk, old[-1].mac)
    verified = chain.verify()
    assert verified.ok, verified.message
    assert verified.entries_checked == 3
    assert f"Entries up to #{old[-1].pk} were purged by audit_purge." in verified.message


def test_purge_deletes_in_batches_of_the_size_asked(audit_entry, thirty_day_retention):
    """Each batch is its own short transaction holding the chain head, so lookups wait for one
    batch at most: five old entries in batches of two are three deletes of at most two rows."""
    now = datetime.now(UTC)
    old = [audit_entry(at=now - timedelta(days=40, minutes=n)) for n in range(5, 0, -1)]

    with CaptureQueriesContext(connection) as queries:
        result = purge_old_entries(retention_days=30, batch_size=2)

    deletes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("DELETE FROM audit_auditentry")
    ]
    assert len(deletes) == 3
    assert result.deleted == 5
    assert result.through_id == old[-1].pk
    assert chain.verify().ok


def test_purge_never_deletes_past_a_newer_entry(audit_entry, thirty_day_retention):
    """The chain can only lose its oldest end: an old entry after a new one (a clock stepped
    back) is kept."""
    now = datetime.now(UTC)
    first = audit_entry(at=now - timedelta(days=40))
    audit_entry(at=now - timedelta(days=1))
    audit_entry(at=now - timedelta(days=50))

    result = purge_old_entries(retention_days=30)

    assert result.deleted == 1
    assert result.through_id == first.pk
    assert AuditEntry.objects.count() == 3  # two kept, and the purge's own entry
    assert chain.verify().ok


def test_entries_written_after_a_purge_verify(audit_entry, thirty_day_retention):
    now = datetime.now(UTC)
    audit_entry(at=now - timedelta(days=40))
    purge_old_entries(retention_days=30)
    audit_entry()

    assert chain.verify().ok


def test_a_row_older_than_the_purge_is_found(audit_entry, thirty_day_retention):
    now = datetime.now(UTC)
    old = audit_entry(at=now - timedelta(days=40))
    audit_entry(at=now)
    purge_old_entries(retention_days=30)
    forge(id=old.pk, at=old.at, mac=old.mac, actor_username="ghost")

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == old.pk
    assert result.message == f"Entry #{old.pk} is older than the last purge, which deleted it."


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
def test_postgres_refuses_deletes_again_after_a_purge(audit_entry, thirty_day_retention):
    now = datetime.now(UTC)
    audit_entry(at=now - timedelta(days=40))
    kept = audit_entry(at=now)
    purge_old_entries(retention_days=30)

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


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_an_append_inside_a_transaction_holds_the_chain_head_until_the_transaction_ends():
    """Two connections append inside transactions of their own (a first look records its entry
    with its span's seal): the second waits on the head row's lock (`lock_head`'s FOR UPDATE)
    until the first's transaction ends, then chains after the first's entry. Without the lock
    both would read the same head, the second's entry would chain to the entry before, and
    `audit_verify` would name it. Group commit cannot cover this: it only groups the appends of
    one process made outside a transaction."""
    record(origin=Origin(user=None, username="before"), action=Action.LOOKUP)
    first_appended, first_may_commit = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    backends: dict[str, int] = {}

    def append_in_a_transaction(name: str, *, hold: bool) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backends[name] = cursor.fetchone()[0]
            with transaction.atomic():
                chain.append(
                    actor_username=name, action=Action.LOOKUP, client_ip="10.0.0.7", user_agent="t"
                )
                if hold:
                    first_appended.set()
                    first_may_commit.wait(30)
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    first = threading.Thread(target=append_in_a_transaction, args=("first",), kwargs={"hold": True})
    first.start()
    assert first_appended.wait(30)
    second = threading.Thread(
        target=append_in_a_transaction, args=("second",), kwargs={"hold": False}
    )
    second.start()
    # The second's backend comes to wait on a lock, and stays there while the first holds it.
    waiting = None
    for _ in range(300):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                [backends.get("second", -1)],
            )
            row = cursor.fetchone()
        waiting = row[0] if row else None
        if waiting == "Lock" or not second.is_alive():
            break
        time.sleep(0.05)
    assert waiting == "Lock" and second.is_alive()
    first_may_commit.set()
    first.join(30)
    second.join(30)

    assert failures == []
    result = chain.verify()
    assert result.ok, result.message
    assert list(AuditEntry.objects.order_by("id").values_list("actor_username", flat=True)) == [
        "before",
        "first",
        "second",
    ]


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
