"""The two ends of the audit chain (audit/chain.py): purges that must be vouched for by a chained
entry, checkpoints that witness the tail outside the database, and key rotation."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit import chain
from audit.models import Action, AuditEntry, ChainCheckpoint, ChainHead
from audit.services import (
    NothingToRotate,
    Origin,
    purge_old_entries,
    record,
    rotate_chain_key,
)
from connvo_admin.logs import JsonFormatter
from tests.test_audit_chain import rewrite_with_the_key

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (triggers, concurrent writers)"
)
KEY_A = "a-first-audit-chain-key-of-more-than-32-characters"
KEY_B = "b-second-audit-chain-key-of-more-than-32-characters"


def tamper(sql: str, params: list | tuple = ()) -> None:
    """Change the tables behind the console's back, as the database owner could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")


def run(*args: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", StringIO(stdin))
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def keys(settings):
    """An empty chain under KEY_A (the migrations started it under the demo key)."""
    settings.AUDIT_CHAIN_KEYS = [KEY_A]
    ChainHead.objects.update_or_create(
        pk=1,
        defaults={
            "key_id": chain.key_id(KEY_A),
            "last_mac": chain.GENESIS,
            "purged_through_mac": chain.GENESIS,
        },
    )
    return settings


@pytest.fixture
def retention(settings):
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    return settings


@pytest.fixture
def aged(audit_entry, retention) -> tuple[list[AuditEntry], list[AuditEntry]]:
    """Three entries 40 days old and two recent ones, under a 30-day retention."""
    now = datetime.now(UTC)
    old = [audit_entry(at=now - timedelta(days=40, minutes=n)) for n in (3, 2, 1)]
    recent = [audit_entry(at=now - timedelta(days=1)), audit_entry(at=now)]
    return old, recent


# --- Purges ------------------------------------------------------------------------------------


def forge_purge(through: AuditEntry) -> None:
    """What the issue describes: move the head's start and delete, with no purge entry."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Any session may set the flag the trigger lets deletes through with.
            cursor.execute("SELECT set_config(%s, 'on', true)", [chain.PURGE_FLAG])
        cursor.execute(
            "UPDATE audit_chainhead SET purged_through_id = %s, purged_through_mac = %s",
            [through.pk, through.mac],
        )
        cursor.execute("DELETE FROM audit_auditentry WHERE id <= %s", [through.pk])


def test_a_forged_purge_is_named(audit_entry):
    entries = [audit_entry() for _ in range(5)]
    assert chain.verify().ok
    forge_purge(entries[1])

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == entries[2].pk
    assert (
        f"Entries up to #{entries[1].pk} were deleted, but no purge entry vouches for them"
        in result.message
    )
    assert "a forged purge" in result.message


def test_a_forged_purge_that_clears_the_head_start_is_named(audit_entry):
    entries = [audit_entry() for _ in range(3)]
    forge_purge(entries[0])
    tamper("UPDATE audit_chainhead SET purged_through_id = NULL")

    result = chain.verify()

    assert not result.ok
    assert "no purge entry vouches for them" in result.message


def test_deleting_more_than_a_genuine_purge_vouches_for_is_named(aged):
    _, recent = aged
    purge_old_entries(retention_days=30)
    assert chain.verify().ok
    forge_purge(recent[0])

    result = chain.verify()

    assert not result.ok
    assert f"Entries up to #{recent[0].pk} were deleted" in result.message


def test_a_genuine_purge_and_a_later_one_verify(aged, audit_entry, retention):
    purge_old_entries(retention_days=30)
    later = audit_entry(at=datetime.now(UTC) - timedelta(days=0))
    # Nothing old is left: the second purge deletes nothing and vouches for nothing.
    second = purge_old_entries(retention_days=30)

    result = chain.verify()

    assert second.deleted == 0
    assert result.ok, result.message
    assert AuditEntry.objects.filter(action=Action.AUDIT_PURGED).count() == 2
    assert AuditEntry.objects.filter(pk=later.pk).exists()


def test_a_purge_interrupted_between_batches_verifies(aged):
    old, _ = aged
    plan = chain.plan_purge(retention_days=30)
    record(
        origin=Origin.for_maintenance(),
        action=Action.AUDIT_PURGED,
        detail=plan.detail(os_user="ops"),
    )
    # The first batch ran, then the process died.
    chain.purge(plan=replace(plan, last=old[0].pk), batch_size=1)

    result = chain.verify()
    # A later purge with a longer retention deletes nothing: the interrupted one still vouches.
    purge_old_entries(retention_days=60)
    later = chain.verify()

    assert result.ok, result.message
    assert later.ok, later.message
    assert AuditEntry.objects.filter(pk__in=[e.pk for e in old[1:]]).count() == 2


def test_a_purge_younger_than_the_retention_in_force_is_named(audit_entry, settings):
    now = datetime.now(UTC)
    audit_entry(at=now - timedelta(days=3))
    audit_entry(at=now)
    # Someone ran the purge with a one-day retention to hide yesterday's lookups...
    settings.AUDIT_MIN_RETENTION_DAYS = 1
    purge_old_entries(retention_days=1)
    purge_entry = AuditEntry.objects.get(action=Action.AUDIT_PURGED)
    # ...but the retention in force, where audit_verify runs, is 90 days.
    settings.AUDIT_MIN_RETENTION_DAYS = 90

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == purge_entry.pk
    assert (
        f"Entry #{purge_entry.pk} is a purge of entries younger than the 90-day retention in force"
        in result.message
    )


def test_a_purge_entry_cannot_be_forged_without_the_key(aged):
    purge_old_entries(retention_days=30)
    purge_entry = AuditEntry.objects.get(action=Action.AUDIT_PURGED)
    # Widen the range the purge entry vouches for: its MAC no longer matches.
    tamper(
        "UPDATE audit_auditentry SET detail = replace(detail, %s, %s) WHERE id = %s",
        ["retention=30d", "retention=300d", purge_entry.pk],
    )

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == purge_entry.pk


def test_purge_entry_facts_read_back_as_written():
    cutoff = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    plan = chain.PurgePlan(
        count=12, first=3, last=20, last_mac="ab" * 32, retention_days=400, cutoff=cutoff
    )
    at = cutoff + timedelta(days=400)

    read = chain.PurgePlan.from_entry(entry_id=99, at=at, detail=plan.detail(os_user="ops"))

    assert read == replace(plan, entry_id=99, at=at)
    assert chain.PurgePlan.from_entry(entry_id=1, at=at, detail="deleted 3 entries") is None


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_refuses_truncate_of_the_audit_table(audit_entry):
    audit_entry()

    with (
        pytest.raises(DatabaseError, match="TRUNCATE refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE audit_auditentry")

    assert AuditEntry.objects.count() == 1


# --- Checkpoints -------------------------------------------------------------------------------


def truncate_tail(entries: list[AuditEntry], *, keep: int) -> None:
    """Delete the newest entries and rewind the head to the last one kept."""
    last = entries[keep - 1]
    tamper("DELETE FROM audit_auditentry WHERE id > %s", [last.pk])
    tamper("UPDATE audit_chainhead SET last_entry_id = %s, last_mac = %s", [last.pk, last.mac])


def test_tail_truncation_verifies_without_a_witness_but_not_past_a_checkpoint(audit_entry):
    entries = [audit_entry() for _ in range(4)]
    checkpoint = chain.checkpoint_now()
    entries.append(audit_entry(meeting_id="after-the-checkpoint"))
    truncate_tail(entries, keep=2)

    alone = chain.verify()
    witnessed = chain.verify(checkpoints=[checkpoint])

    # The database alone cannot show it: that is what the witness is for.
    assert alone.ok
    assert not witnessed.ok
    assert witnessed.first_bad_id == entries[3].pk
    assert f"Entry #{entries[3].pk}, witnessed by the checkpoint of" in witnessed.message
    assert "the newest entries were deleted and the chain head moved back" in witnessed.message


def test_entries_newer_than_the_last_checkpoint_are_the_remaining_window(audit_entry):
    entries = [audit_entry() for _ in range(3)]
    checkpoint = chain.checkpoint_now()
    entries += [audit_entry(), audit_entry()]
    truncate_tail(entries, keep=3)

    assert chain.verify(checkpoints=[checkpoint]).ok


def test_a_chain_rewritten_with_the_key_does_not_match_the_checkpoint(audit_entry):
    entries = [audit_entry() for _ in range(3)]
    checkpoint = chain.checkpoint_now()
    # Someone with the key rewrites the last entry and re-chains it: it verifies, but it is not
    # the entry the checkpoint saw.
    rewrite_with_the_key(entries[2], prev_mac=entries[1].mac, meeting_id="other")

    assert chain.verify().ok
    result = chain.verify(checkpoints=[checkpoint])
    assert not result.ok
    assert "is not the entry the checkpoint of" in result.message


def test_a_checkpoint_of_purged_entries_is_not_missing(aged):
    old, _ = aged
    checkpoint = chain.emit_checkpoint(last_id=old[-1].pk, last_mac=old[-1].mac, entries=3)
    purge_old_entries(retention_days=30)
    latest = chain.checkpoint_now()

    result = chain.verify(checkpoints=[checkpoint, latest])

    assert result.ok, result.message
    assert "1 witnessed checkpoints found in the chain (1 more were of entries purged since)." in (
        result.message
    )


def test_checkpoint_refuses_a_head_that_names_a_missing_entry(audit_entry):
    entries = [audit_entry() for _ in range(2)]
    tamper("DELETE FROM audit_auditentry WHERE id = %s", [entries[1].pk])

    with pytest.raises(chain.CheckpointRefused, match=f"entry #{entries[1].pk}"):
        chain.checkpoint_now()


def test_checkpoint_goes_to_the_log_the_file_and_the_pages(audit_entry, settings, tmp_path, caplog):
    entries = [audit_entry() for _ in range(3)]
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")

    with caplog.at_level(logging.INFO, logger="audit.chain"):
        status, out, _ = run("audit_checkpoint")

    assert status == 0
    assert f"Checkpoint at entry #{entries[-1].pk} (3 entries)." in out
    line = (tmp_path / "checkpoints.jsonl").read_text().splitlines()[-1]
    written = json.loads(line)
    assert written["last_id"] == entries[-1].pk
    assert written["last_mac"] == entries[-1].mac
    assert written["entries"] == 3
    assert written["key"] == chain.current_key_id()
    assert chain.Checkpoint.from_line(line).last_id == entries[-1].pk
    # The log line carries the same checkpoint, readable back from the formatted line.
    log_line = JsonFormatter().format(caplog.records[-1])
    assert chain.Checkpoint.from_line(log_line) == chain.Checkpoint.from_line(line)
    stored = ChainCheckpoint.objects.get()
    assert (stored.last_entry_id, stored.entries) == (entries[-1].pk, 3)
    # Nothing secret: neither key is in the line.
    for key in settings.AUDIT_CHAIN_KEYS:
        assert key not in line


def test_a_checkpoint_with_a_wrong_signature_or_key_is_refused(audit_entry, settings):
    audit_entry()
    line = chain.checkpoint_now().line()
    document = json.loads(line)

    forged = json.dumps({**document, "last_id": document["last_id"] - 1})
    settings.AUDIT_CHAIN_KEYS = [KEY_B]

    with pytest.raises(chain.BadCheckpoint, match="wrong signature"):
        chain.Checkpoint.from_line(forged.replace(document["key"], chain.key_id(KEY_B)))
    with pytest.raises(chain.BadCheckpoint, match="which AUDIT_CHAIN_KEY does not have"):
        chain.Checkpoint.from_line(line)
    assert chain.Checkpoint.from_line('{"level": "INFO", "message": "hello"}') is None
    assert chain.Checkpoint.from_line("not json at all") is None


def test_verify_command_checks_a_checkpoint_file_and_names_the_truncation(
    audit_entry, settings, tmp_path
):
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    entries = [audit_entry() for _ in range(3)]
    assert run("audit_verify")[0] == 0  # also emits a checkpoint
    entries.append(audit_entry())
    run("audit_checkpoint")
    truncate_tail(entries, keep=2)

    status, _, err = run("audit_verify", "--checkpoint", settings.AUDIT_CHECKPOINT_FILE)

    assert status == 1
    assert f"Entry #{entries[2].pk}, witnessed by the checkpoint of" in err


def test_verify_command_reads_checkpoints_from_log_lines_on_stdin(audit_entry, caplog, monkeypatch):
    entries = [audit_entry() for _ in range(2)]
    with caplog.at_level(logging.INFO, logger="audit.chain"):
        chain.checkpoint_now()
    logs = "\n".join(
        ['{"level": "INFO", "logger": "console.request", "message": "GET /"}']
        + [JsonFormatter().format(record) for record in caplog.records]
    )

    ok = run("audit_verify", "--checkpoint", "-", stdin=logs, monkeypatch=monkeypatch)
    truncate_tail(entries, keep=1)
    broken = run("audit_verify", "--checkpoint", "-", stdin=logs, monkeypatch=monkeypatch)

    assert ok[0] == 0, ok
    assert "1 witnessed checkpoints found in the chain." in ok[1]
    assert broken[0] == 1
    assert f"Entry #{entries[1].pk}, witnessed by the checkpoint of" in broken[2]


def test_verify_command_refuses_a_checkpoint_file_without_checkpoints(db, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")

    with pytest.raises(Exception, match="No checkpoint found"):
        call_command("audit_verify", "--checkpoint", str(empty))


def test_verify_emits_a_checkpoint_of_what_it_verified(audit_entry):
    entries = [audit_entry() for _ in range(3)]

    run("audit_verify")

    stored = ChainCheckpoint.objects.get()
    assert (stored.last_entry_id, stored.last_mac, stored.entries) == (
        entries[-1].pk,
        entries[-1].mac,
        3,
    )


# --- Key rotation ------------------------------------------------------------------------------


def statements(queries) -> list[str]:
    """The statements sent, savepoints aside."""
    return [q["sql"].split()[0].upper() for q in queries if "SAVEPOINT" not in q["sql"].upper()]


def test_an_append_costs_the_same_round_trips_with_a_rotated_key(keys, audit_entry, settings):
    """The key in use comes with the locked head row: no query is added to a lookup's write."""
    audit_entry()
    with CaptureQueriesContext(connection) as before:
        audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEY_B, KEY_A]
    rotate_chain_key()

    with CaptureQueriesContext(connection) as after:
        audit_entry()

    # Lock the head, then write: on PostgreSQL one statement inserts the entry and moves the head.
    one_write = ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "UPDATE"]
    assert statements(before.captured_queries) == ["SELECT", *one_write]
    assert statements(after.captured_queries) == statements(before.captured_queries)


def test_rotation_is_a_chained_entry_and_later_entries_use_the_new_key(keys, audit_entry, settings):
    before = [audit_entry() for _ in range(2)]
    settings.AUDIT_CHAIN_KEYS = [KEY_B, KEY_A]
    between = audit_entry()  # the head still names key A until the rotation

    new = rotate_chain_key()
    after = [audit_entry(), audit_entry()]

    rotation = AuditEntry.objects.get(action=Action.AUDIT_KEY_ROTATED)
    assert new == chain.key_id(KEY_B)
    assert f"from={chain.key_id(KEY_A)} to={chain.key_id(KEY_B)}" in rotation.detail
    assert KEY_A not in rotation.detail and KEY_B not in rotation.detail
    values = {name: getattr(rotation, name) for name in chain.CHAINED_FIELDS}
    assert rotation.mac == chain.compute_mac(values, prev_mac=between.mac, key=KEY_A.encode())
    first_after = {name: getattr(after[0], name) for name in chain.CHAINED_FIELDS}
    assert after[0].mac == chain.compute_mac(first_after, prev_mac=rotation.mac, key=KEY_B.encode())
    result = chain.verify()
    assert result.ok, result.message
    assert result.entries_checked == len(before) + 1 + 1 + len(after)
    assert "1 key rotation." in result.message
    assert ChainHead.objects.get().key_id == chain.key_id(KEY_B)


def test_verify_needs_the_earlier_keys_for_earlier_entries(keys, audit_entry, settings):
    first = audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEY_B, KEY_A]
    rotate_chain_key()
    audit_entry()

    settings.AUDIT_CHAIN_KEYS = [KEY_B]
    without_old = chain.verify()
    settings.AUDIT_CHAIN_KEYS = [KEY_A]
    without_new = chain.verify()

    assert not without_old.ok
    assert without_old.first_bad_id == first.pk
    assert not without_new.ok
    assert f"moved the chain to key {chain.key_id(KEY_B)}, which AUDIT_CHAIN_KEY does not have" in (
        without_new.message
    )


def test_after_a_rotation_the_old_key_can_no_longer_extend_the_chain(keys, audit_entry, settings):
    audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEY_B, KEY_A]
    rotate_chain_key()
    audit_entry()
    # Someone holding the leaked old key points the head back at it: the next entry is written
    # under the old key, and verification refuses it.
    tamper("UPDATE audit_chainhead SET key_id = %s", [chain.key_id(KEY_A)])
    under_old_key = audit_entry()

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == under_old_key.pk


def test_a_head_pointing_at_another_key_is_named(keys, audit_entry, settings):
    audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEY_A, KEY_B]
    tamper("UPDATE audit_chainhead SET key_id = %s", [chain.key_id(KEY_B)])

    result = chain.verify()

    assert not result.ok
    assert "the head was changed outside the console" in result.message


def test_rotating_to_the_key_in_use_is_refused(keys, audit_entry):
    audit_entry()

    with pytest.raises(NothingToRotate):
        rotate_chain_key()
    with pytest.raises(Exception, match="already written under key"):
        call_command("audit_rotate_key", stdout=StringIO())


def test_rotate_command_moves_the_chain_and_verify_says_when_it_is_due(keys, audit_entry, settings):
    audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEY_B, KEY_A]
    due = chain.verify()

    status, out, _ = run("audit_rotate_key")

    assert f"still under key {chain.key_id(KEY_A)}: run audit_rotate_key" in due.message
    assert status == 0
    assert f"The audit chain now uses key {chain.key_id(KEY_B)}." in out
    assert run("audit_verify")[0] == 0


def test_a_host_without_the_chains_key_cannot_write(keys, audit_entry, settings):
    audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEY_B, KEY_A]
    rotate_chain_key()
    settings.AUDIT_CHAIN_KEYS = [KEY_A]  # a host that was not given the new key

    with pytest.raises(DatabaseError, match="which AUDIT_CHAIN_KEY on this host does not have"):
        audit_entry()


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_a_rotation_amid_concurrent_writers_keeps_one_verifiable_chain(settings):
    record(origin=Origin(user=None, username="first"), action=Action.LOOKUP)
    settings.AUDIT_CHAIN_KEYS = [KEY_B, *settings.AUDIT_CHAIN_KEYS]
    writers, entries_each = 4, 12
    start = threading.Barrier(writers + 1)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(entries_each):
                record(
                    origin=Origin(user=None, username=f"w{n}"),
                    action=Action.LOOKUP,
                    meeting_id=f"{i}",
                )
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    def rotate() -> None:
        try:
            start.wait()
            rotate_chain_key()
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    threads.append(threading.Thread(target=rotate))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    result = chain.verify()
    assert result.ok, result.message
    assert result.entries_checked == 1 + writers * entries_each + 1
    assert "1 key rotation." in result.message


def test_seeded_entries_use_the_key_the_head_names(keys, audit_entry, settings):
    audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEY_B, KEY_A]  # not rotated yet: the chain is still under A

    call_command(
        "audit_seed", "--rows", "20", "--random-seed", "3", "--bench-database", stdout=StringIO()
    )

    assert chain.verify().ok


def test_audit_verify_names_a_forged_purge(audit_entry):
    entries = [audit_entry() for _ in range(3)]
    forge_purge(entries[0])

    forged = run("audit_verify")

    assert forged[0] == 1
    assert "a forged purge" in forged[2]


def test_audit_verify_names_a_purge_younger_than_the_retention(audit_entry, settings):
    audit_entry(at=datetime.now(UTC) - timedelta(days=2))
    audit_entry()
    settings.AUDIT_MIN_RETENTION_DAYS = 1
    run("audit_purge", "--older-than", "1")
    settings.AUDIT_MIN_RETENTION_DAYS = 400

    status, _, err = run("audit_verify")

    assert status == 1
    assert "younger than the 400-day retention in force" in err
