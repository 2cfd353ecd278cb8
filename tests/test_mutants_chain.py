"""The audit chain's canonical encoding, byte for byte (docs/testing.md, "Mutation testing").

Every other chain test computes MACs with the same `canonical_bytes` that wrote them, so a change
to the encoding that is applied alike on both sides (another separator, a key renamed, the
version left out) passes them all. It must not pass: entries written by an earlier release
have to verify after an upgrade, and a witness outside the console holds MACs computed over
exactly these bytes. So the documents are written out here by hand.

The tests after the encoding's each kill mutants of `audit/chain.py` that the rest of the suite
let through (docs/testing.md, "#22, fourth run"); each docstring names them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection

from audit import chain
from audit.models import Action, AuditEntry, ChainCheckpoint, ChainHead
from audit.services import Origin, purge_old_entries, record, rotate_chain_key
from tests.test_audit_chain import forge, tamper

# 10:00:00.123456 fourteen hours east of UTC: the timestamp is written in UTC, with microseconds.
AT = datetime(2027, 3, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=14)))
VALUES = {
    "at": AT,
    "actor_username": "agent",
    "action": "lookup",
    "via": "page",
    "deployment": "dev",
    "meeting_id": "81234567890",
    "outcome": "found",
    "http_status": 200,
    "latency_ms": 12,
    "connvo_request_id": "req-1",
    "client_ip": None,
    "user_agent": "Firefox",
    "detail": "é ✓",  # written as UTF-8, not as \u escapes
    "request_id": "r1",
}
V1 = (
    '{"action":"lookup","actor_username":"agent","at":"2027-02-28T20:00:00.123456Z",'
    '"client_ip":null,"connvo_request_id":"req-1","deployment":"dev","detail":"é ✓",'
    '"http_status":200,"latency_ms":12,"meeting_id":"81234567890","outcome":"found",'
    '"prev":"PREV","request_id":"r1","user_agent":"Firefox","v":1,"via":"page"}'
)


def v2(calls: str, repeats: str, tally: str) -> str:
    return (
        '{"action":"lookup","actor_username":"agent","at":"2027-02-28T20:00:00.123456Z",'
        f'"calls":{calls},"client_ip":null,"connvo_request_id":"req-1","deployment":"dev",'
        '"detail":"é ✓","http_status":200,"latency_ms":12,"meeting_id":"81234567890",'
        f'"outcome":"found","prev":"PREV","repeats":{repeats},"request_id":"r1",'
        f'"tally":{tally},"user_agent":"Firefox","v":2,"via":"page"}}'
    )


def test_an_entry_without_counted_fields_is_encoded_as_version_1():
    assert chain.canonical_bytes(VALUES, prev_mac="PREV") == V1.encode("utf-8")
    # Counted fields present but all None (every entry from before spans, read back) alike.
    none = {**VALUES, "calls": None, "repeats": None, "tally": None}
    assert chain.canonical_bytes(none, prev_mac="PREV") == V1.encode("utf-8")


def test_an_entry_with_any_counted_field_is_encoded_as_version_2_with_all_three():
    calls_only = {**VALUES, "calls": 0}  # zero calls is a value, not an absence
    assert chain.canonical_bytes(calls_only, prev_mac="PREV") == v2("0", "null", "null").encode()

    tally = {"kind": "span", "outcomes": {"found": 2}, "final": True}
    counted = {**VALUES, "calls": None, "repeats": 3, "tally": tally}
    assert chain.canonical_bytes(counted, prev_mac="PREV") == v2(
        "null", "3", '{"final":true,"kind":"span","outcomes":{"found":2}}'
    ).encode("utf-8")


def test_the_mac_is_hmac_sha256_of_the_document_under_the_current_key(settings):
    settings.AUDIT_CHAIN_KEYS = ["the current key", "an older key"]
    document = V1.replace("PREV", "ab" * 32).encode("utf-8")

    assert chain.compute_mac(VALUES, prev_mac="ab" * 32) == (
        hmac.new(b"the current key", document, hashlib.sha256).hexdigest()
    )
    assert chain.compute_mac(VALUES, prev_mac="ab" * 32, key=b"an older key") == (
        hmac.new(b"an older key", document, hashlib.sha256).hexdigest()
    )


def test_a_key_is_named_by_the_same_id_in_every_release():
    """Key ids are stored: in the chain head, in every checkpoint, and in the chained entry of
    each key rotation. An id computed another way after an upgrade would name no key of
    AUDIT_CHAIN_KEY, and every rotated chain and checkpoint would fail to verify."""
    assert chain.key_id("the current key") == "e7005b49bb3c1215"


def test_the_encoding_is_in_utc_whatever_the_local_zone(monkeypatch):
    """The machines that ran the suite so far keep UTC as their local zone, where local time and
    UTC are the same; a host in another zone must write (and verify) the same bytes."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert chain.canonical_bytes(VALUES, prev_mac="PREV") == V1.encode("utf-8")
    finally:
        monkeypatch.undo()
        time.tzset()


# --- A purge of entries younger than the retention in force (`_too_young`) ----------------------


def chained_purge(audit_entry, *, deleted, retention_days: int, cutoff: datetime, at: datetime):
    """A purge entry as `audit_purge` writes one (chained, with the key), saying that it deleted
    `deleted` under `retention_days`, everything before `cutoff`; stamped `at`."""
    plan = chain.PurgePlan(
        count=len(deleted),
        first=deleted[0].pk,
        last=deleted[-1].pk,
        last_mac=deleted[-1].mac,
        retention_days=retention_days,
        cutoff=cutoff,
    )
    return audit_entry(action=Action.AUDIT_PURGED, detail=plan.detail(os_user="ops"), at=at)


@pytest.mark.parametrize(
    ("retention_days", "cutoff_days_ago", "deleted_days_ago"),
    [
        (400, 1, 2),  # says it kept 400 days, but deleted everything before yesterday
        (1, 40, 50),  # deleted nothing younger than 30 days, but says it kept one day
    ],
)
def test_a_purge_of_young_entries_is_named_by_either_of_its_facts(
    audit_entry, settings, retention_days, cutoff_days_ago, deleted_days_ago
):
    """Kills `_too_young`'s `or` → `and`, from each side. Either fact of a purge entry can show
    that it broke the retention in force: its cutoff (what it deleted) or its retention (what it
    was run with). With `and`, a purge that showed it by one fact only would verify."""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    now = datetime.now(UTC)
    deleted = [audit_entry(at=now - timedelta(days=deleted_days_ago))]
    purge = chained_purge(
        audit_entry,
        deleted=deleted,
        retention_days=retention_days,
        cutoff=now - timedelta(days=cutoff_days_ago),
        at=now,
    )

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == purge.pk
    assert "younger than the 30-day retention in force" in result.message


def test_a_purge_at_exactly_the_minimum_retention_verifies(audit_entry, settings):
    """Kills `_too_young`'s `<` → `<=`. Entries are kept *at least* AUDIT_MIN_RETENTION_DAYS, so
    a purge of everything older than exactly that is allowed (`audit_purge` refuses only a
    shorter retention). A purge entry is stamped exactly 30 days after its cutoff when the
    clock does not move between planning the purge and writing its entry (a coarse clock): it
    must verify, not be named a purge of entries too young."""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    now = datetime.now(UTC)
    deleted = [audit_entry(at=now - timedelta(days=40))]
    chained_purge(
        audit_entry,
        deleted=deleted,
        retention_days=30,
        cutoff=now - timedelta(days=30),
        at=now,
    )

    result = chain.verify()

    assert result.ok, result.message


# --- Checkpoints (`Checkpoint`, `emit_checkpoint`, `checkpoint_now`, the witness file) -----------


def test_a_checkpoint_is_signed_over_the_same_bytes_in_every_release(settings):
    """Kills `Checkpoint._signature`'s mutants that sign other bytes (keys unsorted, other
    separators; 7). A checkpoint is checked by the same code that signed it, so such a change
    passes every other test; but a witness outside the console holds checkpoints signed by an
    earlier release, and `audit_verify --checkpoint` must still accept them after an upgrade."""
    settings.AUDIT_CHAIN_KEYS = ["the current key"]
    document = (
        '{"at":"2027-02-28T20:00:00.123456Z","entries":3,"key":"e7005b49bb3c1215",'
        '"last_id":7,"last_mac":"' + "ab" * 32 + '","type":"audit_checkpoint","v":1}'
    )

    checkpoint = chain.Checkpoint(last_id=7, last_mac="ab" * 32, entries=3, at=AT).signed()

    assert checkpoint.key_id == "e7005b49bb3c1215"
    assert checkpoint.signature == (
        hmac.new(b"the current key", document.encode("utf-8"), hashlib.sha256).hexdigest()
    )


def test_the_empty_chain_is_witnessed_as_empty(db):
    """Kills `checkpoint_now`'s mutants of the empty chain (the head the migrations made names
    no entry yet): `and` for `or` refused to witness it, and the checkpoint's id, MAC or count
    changed or left out (6) would witness something else than an empty log."""
    assert not AuditEntry.objects.exists()

    checkpoint = chain.checkpoint_now()

    assert (checkpoint.last_id, checkpoint.last_mac, checkpoint.entries) == (
        None,
        chain.GENESIS,
        0,
    )
    stored = ChainCheckpoint.objects.get()
    assert (stored.last_entry_id, stored.last_mac, stored.entries) == (None, chain.GENESIS, 0)


def test_a_checkpoint_is_logged_stored_and_returned_alike(audit_entry, caplog):
    """Kills `emit_checkpoint`'s mutants that log the checkpoint without its entry or count, or
    store it without its time or key id (4). The pages show the stored copy beside the one the
    log carried off the host; they must be the same checkpoint."""
    audit_entry()
    last = audit_entry()

    with caplog.at_level(logging.INFO, logger="audit.chain"):
        checkpoint = chain.checkpoint_now()

    assert f"audit checkpoint at entry #{last.pk} (2 entries)" in caplog.messages
    stored = ChainCheckpoint.objects.get()
    assert (stored.at, stored.key_id, stored.last_entry_id, stored.entries) == (
        checkpoint.at,
        checkpoint.key_id,
        last.pk,
        2,
    )


def test_checkpoints_appended_to_the_witness_file_are_one_a_line(audit_entry, settings, tmp_path):
    """Kills `_ends_mid_line`'s mutants that read the wrong byte or the file the wrong way (5):
    each of them took a file ending in a line break for one cut short, and put a blank line
    before every checkpoint. And the file is created as a plain file, not an executable one
    (`_append_witness`'s mode 0o666 dropped or changed)."""
    path = tmp_path / "checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_FILE = str(path)
    audit_entry()

    first = chain.checkpoint_now()
    audit_entry()
    second = chain.checkpoint_now()

    assert path.read_text().split("\n") == [first.line(), second.line(), ""]
    assert stat.S_IMODE(path.stat().st_mode) & 0o111 == 0


# --- Purges -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_the_first_purge_of_a_log_counts_its_very_first_entry(audit_entry, settings):
    """Kills `plan_purge`'s `or 1` for `or 0` (the first id after a purge that never was). The
    purge deletes every entry up to the last it names either way; with `or 1` its chained entry
    said one entry fewer, starting at #2, and a purge with only #1 to delete deleted nothing."""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    now = datetime.now(UTC)
    old = [audit_entry(at=now - timedelta(days=40, minutes=n)) for n in (3, 2, 1)]
    audit_entry(at=now)
    assert old[0].pk == 1

    purged = purge_old_entries(retention_days=30)

    assert purged.deleted == 3
    plan = chain.PurgePlan.from_entry(
        entry_id=0, at=now, detail=AuditEntry.objects.get(action=Action.AUDIT_PURGED).detail
    )
    assert (plan.count, plan.first, plan.last) == (3, 1, old[-1].pk)
    # And `_walk`'s `=` for `+=`: the purge is said after the count, not instead of it.
    assert chain.verify().message == (
        f"2 entries verified. Entries up to #{old[-1].pk} were purged by audit_purge."
    )


# --- Group commit (`_group_commit`) -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_appends_that_arrive_while_one_is_written_are_written_next_together(monkeypatch):
    """Kills `_group_commit`'s mutants that let more than one appender write at a time, wake
    the wrong one or none, or take a woken leader for a finished follower (10): with them an
    appender got back no entry, or an entry not yet written, or waited for ever. The suite's
    tests of appends arriving together run on PostgreSQL only, and whether they group at all
    depends on timing; here the first writer is held until the three others wait behind it."""
    writers = 4
    append_all = chain._append_all
    batches: list[int] = []
    first_writes = threading.Event()

    def hold_the_first(batch, **kwargs):
        batches.append(len(batch))
        if len(batches) == 1:
            first_writes.set()
            deadline = time.monotonic() + 10
            while len(chain._queue) < writers - 1 and time.monotonic() < deadline:
                time.sleep(0.005)
        return append_all(batch, **kwargs)

    monkeypatch.setattr(chain, "_append_all", hold_the_first)
    returned: dict[int, AuditEntry | None] = {}
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            returned[n] = record(
                origin=Origin(user=None, username=f"w{n}"),
                action=Action.LOOKUP,
                meeting_id=f"m{n}",
            )
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(writers)]
    threads[0].start()
    assert first_writes.wait(timeout=10)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert batches == [1, writers - 1]
    stored = dict(AuditEntry.objects.values_list("meeting_id", "pk"))
    assert {n: entry.pk for n, entry in returned.items()} == {
        n: stored[f"m{n}"] for n in range(writers)
    }
    assert chain.verify().ok


# --- The walk (`_walk`) -------------------------------------------------------------------------

KEYS = [f"key {n} of the audit chain, more than 32 characters long" for n in "ABC"]


def test_a_walk_counts_the_key_rotations_it_read(audit_entry, settings):
    """Kills `_walk`'s `rotations - 1`: the other tests rotate once and look for "1 key
    rotation." in the message, which "-1 key rotation." contains too. And the message's other
    mutants: the count of entries replaced by the rotations (`=` for `+=`), "rotation" in the
    singular for two, and "still under key …" said of a chain already under the current key."""
    settings.AUDIT_CHAIN_KEYS = [KEYS[0]]
    ChainHead.objects.filter(pk=1).update(key_id=chain.key_id(KEYS[0]))
    audit_entry()
    for n in (1, 2):
        settings.AUDIT_CHAIN_KEYS = [KEYS[n], KEYS[n - 1]]
        rotate_chain_key()
        audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEYS[2], KEYS[1], KEYS[0]]

    result = chain.verify()

    assert result.ok, result.message
    assert result.message == "5 entries verified. 2 key rotations."
    # Without the last key, the walk stops at the rotation to it (`_walk`: its id, not None).
    settings.AUDIT_CHAIN_KEYS = [KEYS[1], KEYS[0]]
    second = AuditEntry.objects.filter(action=Action.AUDIT_KEY_ROTATED).order_by("id").last()
    assert chain.verify().first_bad_id == second.pk


def test_a_chain_not_yet_rotated_to_the_first_key_verifies_and_says_so(audit_entry, settings):
    """Kills `_walk`'s `=` for `+=` in the reminder to rotate: it replaced the count of entries
    verified."""
    settings.AUDIT_CHAIN_KEYS = [KEYS[0]]
    ChainHead.objects.filter(pk=1).update(key_id=chain.key_id(KEYS[0]))
    audit_entry()
    settings.AUDIT_CHAIN_KEYS = [KEYS[1], KEYS[0]]  # the new key first, not yet rotated to

    result = chain.verify()

    assert result.ok, result.message
    assert result.message == (
        f"1 entry verified. The chain is still under key {chain.key_id(KEYS[0])}: run "
        "audit_rotate_key to move it to the first key of AUDIT_CHAIN_KEY."
    )


def test_a_changed_entry_is_diagnosed_with_the_key_it_is_under(audit_entry, settings):
    """Kills `_walk`'s diagnosis under the first key of AUDIT_CHAIN_KEY instead of the one the
    chain is under: after a new key is configured and before the chain is rotated to it, a
    changed entry was reported as "several entries were changed" (its successor checked with
    the wrong key) instead of the one entry it is."""
    settings.AUDIT_CHAIN_KEYS = [KEYS[0]]
    ChainHead.objects.filter(pk=1).update(key_id=chain.key_id(KEYS[0]))
    entries = [audit_entry(meeting_id=f"m{n}") for n in range(3)]
    settings.AUDIT_CHAIN_KEYS = [KEYS[1], KEYS[0]]  # the new key first, not yet rotated to
    tamper("UPDATE audit_auditentry SET meeting_id = %s WHERE id = %s", ["x", entries[1].pk])

    result = chain.verify()

    assert not result.ok
    assert result.message == (
        f"Entry #{entries[1].pk} does not match its MAC: it was changed, or the entry just "
        "before it was deleted."
    )


def test_an_inserted_entry_is_diagnosed_alike_in_batches_of_any_size(audit_entry):
    """Kills `_walk`'s `batch_size - 1` rows read per batch: the walk reads one row more than
    it checks, so that an entry at a batch's end is diagnosed from the entry after it. With
    one row less, a batch of one read nothing and the walk stopped, and an inserted entry at
    a batch's end was reported as a changed one."""
    entries = [audit_entry(meeting_id=f"m{n}") for n in range(4)]
    tamper("UPDATE audit_auditentry SET id = id * 10 WHERE id > %s", [entries[1].pk])
    forge(id=entries[2].pk * 10 - 1)
    tamper("UPDATE audit_chainhead SET last_entry_id = %s", [entries[-1].pk * 10])

    for batch_size in range(1, 6):
        result = chain.verify(batch_size=batch_size)

        assert not result.ok
        assert result.first_bad_id == entries[2].pk * 10 - 1, batch_size
        assert "it was inserted" in result.message, batch_size


def test_a_failed_walk_from_a_checkpoint_is_recorded_as_starting_there(audit_entry, settings):
    """Kills `_walk`'s failed result without `from_id` (2): a walk from a checkpoint that finds
    a break is recorded without where it started, as if it had read the whole chain."""
    settings.AUDIT_CHECKPOINT_FILE = ""
    before = [audit_entry() for _ in range(3)]
    whole = chain.verify()
    chain.record_verification(whole, duration_ms=1)
    checkpoint = chain.emit_checkpoint(
        last_id=whole.last_id, last_mac=whole.last_mac, entries=whole.entries
    )
    after = [audit_entry() for _ in range(2)]
    tamper("UPDATE audit_auditentry SET outcome = %s WHERE id = %s", ["x", after[1].pk])

    result = chain.verify_since_checkpoint(checkpoints=[checkpoint])

    assert not result.ok
    assert result.first_bad_id == after[1].pk
    assert result.from_id == before[-1].pk
    # `record_verification` without `message=`: the pages show what the walk found.
    recorded = chain.record_verification(result, duration_ms=5)
    assert (recorded.from_entry_id, recorded.message) == (before[-1].pk, result.message)


def test_a_chain_head_moved_back_is_named(audit_entry):
    """Kills `_walk`'s mutants of the check that the head names the last entry (15): the head
    moved back to an earlier entry (as someone rewinding it would, to hide the newest entries
    from a later checkpoint) leaves entries after it that verify; the walk names the first of
    them. No other test reaches it: a forged entry fails its MAC first."""
    entries = [audit_entry() for _ in range(4)]
    tamper(
        "UPDATE audit_chainhead SET last_entry_id = %s, last_mac = %s",
        [entries[1].pk, entries[1].mac],
    )

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == entries[2].pk
    assert result.message == (
        f"The chain ends at entry #{entries[1].pk}, but entries after it exist from "
        f"#{entries[2].pk}: they were added outside the console."
    )


def test_a_chain_head_with_another_mac_is_named(audit_entry):
    """Kills `_walk`'s `and` for `or` in that check: a head naming the right entry with another
    MAC is a head changed outside the console too."""
    entries = [audit_entry() for _ in range(2)]
    tamper("UPDATE audit_chainhead SET last_mac = %s", ["e" * 64])

    result = chain.verify()

    assert not result.ok
    assert f"The chain ends at entry #{entries[1].pk}, but" in result.message


@pytest.mark.django_db(transaction=True)
def test_a_walk_from_a_checkpoint_counts_the_log_only_after_a_purge(audit_entry, settings):
    """Kills `_walk`'s mutants of a walk's `entries` (9). A walk from a checkpoint adds the
    entries it read to the checkpoint's count, so that `audit_verify` need not count a log of
    millions of rows; only after a purge since the checkpoint is the sum wrong, and the walk
    says it does not know (None: `audit_verify` counts the log then)."""
    settings.AUDIT_CHECKPOINT_FILE = ""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    now = datetime.now(UTC)
    old = [audit_entry(at=now - timedelta(days=40, minutes=n)) for n in (2, 1)]
    audit_entry()
    whole = chain.verify()
    chain.record_verification(whole, duration_ms=1)
    checkpoint = chain.emit_checkpoint(
        last_id=whole.last_id, last_mac=whole.last_mac, entries=whole.entries
    )
    audit_entry()

    since = chain.verify_since_checkpoint(checkpoints=[checkpoint])

    assert since.ok, since.message
    assert (whole.entries, since.entries) == (3, 4)
    assert "purged" not in since.message  # `_walk`'s `or` for `and`: no purge said

    purge_old_entries(retention_days=30)
    after_purge = chain.verify_since_checkpoint(checkpoints=[checkpoint])

    assert not AuditEntry.objects.filter(pk__in=[entry.pk for entry in old]).exists()
    assert after_purge.ok, after_purge.message
    assert after_purge.from_id == checkpoint.last_id
    assert after_purge.entries is None


def test_a_walks_duration_is_in_milliseconds(monkeypatch):
    """Kills `elapsed_ms`'s mutants (3): the duration `audit_verify` records for the pages."""
    monkeypatch.setattr(chain.time, "monotonic", lambda: 12.3456)

    assert chain.elapsed_ms(10.0) == 2346


def test_a_log_with_every_entry_deleted_is_named(audit_entry):
    """Kills `_walk`'s mutants of the message for a log emptied behind the head's back (3): no
    other test deletes every entry."""
    entries = [audit_entry() for _ in range(2)]
    tamper("DELETE FROM audit_auditentry")

    result = chain.verify()

    assert not result.ok
    assert result.message == f"Every entry up to #{entries[-1].pk} is missing."


def test_the_newest_entries_deleted_are_named_from_the_one_the_head_names(audit_entry):
    """Kills `_walk`'s `broken(None, …)` for the newest entries deleted: the pages link the
    first bad entry, here the one the head still names."""
    entries = [audit_entry() for _ in range(4)]
    tamper("DELETE FROM audit_auditentry WHERE id >= %s", [entries[2].pk])

    result = chain.verify()

    assert not result.ok
    assert result.first_bad_id == entries[-1].pk


def test_a_missing_chain_head_is_named_and_not_witnessed(audit_entry):
    """Kills the mutants of "The chain head is missing." in `_walk` and `checkpoint_now` (5):
    `audit_verify` and `audit_checkpoint` print these messages, and no test read them."""
    audit_entry()
    tamper("DELETE FROM audit_chainhead")

    assert chain.verify().message == "The chain head is missing."
    with pytest.raises(chain.CheckpointRefused) as refused:
        chain.checkpoint_now()
    assert str(refused.value) == "The chain head is missing."


def test_a_witnessed_entry_deleted_after_one_still_there_is_named(audit_entry):
    """Kills `_walk`'s `break` for `continue` among the checkpoints: the walk stopped at the
    first witnessed entry it had read, so a newer witnessed entry deleted with the tail (and
    the head moved back to hide it) passed whenever an older checkpoint was given too, as
    `audit_verify --checkpoint` gives every line of the file."""
    entries = [audit_entry() for _ in range(2)]
    older = chain.checkpoint_now()
    entries += [audit_entry() for _ in range(2)]
    newer = chain.checkpoint_now()
    tamper("DELETE FROM audit_auditentry WHERE id > %s", [entries[1].pk])
    tamper(
        "UPDATE audit_chainhead SET last_entry_id = %s, last_mac = %s",
        [entries[1].pk, entries[1].mac],
    )

    result = chain.verify(checkpoints=[older, newer])

    assert not result.ok
    assert result.first_bad_id == entries[3].pk


# --- The chain head (`head_key`) ----------------------------------------------------------------


def test_a_head_that_names_no_key_chains_under_the_current_key(audit_entry, settings):
    """Kills `head_key`'s `next(None)` and `next(iter(None))` (2): a head that names no key (one
    from before key ids; migration 0008 names the key in every head, so no other test has such a
    head) chains the next entry under the current key, the first of AUDIT_CHAIN_KEY. With the
    mutants every append raised TypeError, and every audited lookup failed closed."""
    settings.AUDIT_CHAIN_KEYS = [KEYS[1], KEYS[0]]
    ChainHead.objects.filter(pk=1).update(key_id="")
    prev_mac = ChainHead.objects.get().last_mac

    entry = audit_entry()

    values = {name: getattr(entry, name) for name in chain.MAC_FIELDS}
    assert entry.mac == chain.compute_mac(values, prev_mac=prev_mac, key=KEYS[1].encode())
    assert chain.verify().ok
