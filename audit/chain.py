"""The hash chain over the audit log: each entry's MAC covers its own fields and the MAC of the
entry before it, so an edited, deleted or inserted entry breaks the chain at that point.

Appends lock the one `ChainHead` row inside the caller's transaction, so writers on any number of
workers or hosts join the chain one at a time. `verify()` walks the chain in id order;
`purge()` trims it from the oldest end and remembers where the rest starts."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEntry, ChainHead

# What the first entry (or the first after a purge of nothing) chains to.
GENESIS = "0" * 64
# Bumped if the canonical encoding ever changes, so old and new entries cannot be confused.
ENCODING_VERSION = 1
# The fields the MAC covers: everything an auditor reads. Not `id` (assigned by the database on
# insert, and the walk's order already fixes each entry's place), nor `actor` (set to NULL when an
# account is deleted; `actor_username` is the record).
CHAINED_FIELDS = (
    "at",
    "actor_username",
    "action",
    "via",
    "deployment",
    "meeting_id",
    "outcome",
    "http_status",
    "latency_ms",
    "connvo_request_id",
    "client_ip",
    "user_agent",
    "detail",
    "request_id",
)
# The PostgreSQL setting that lets the append-only trigger allow DELETE (only `purge()` sets it,
# and only for its own transaction).
PURGE_FLAG = "audit.allow_purge"


def _timestamp(value: datetime) -> str:
    """One fixed form for every backend: UTC, microseconds, 'Z'."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(values: Mapping[str, object], *, prev_mac: str) -> bytes:
    document = {name: values[name] for name in CHAINED_FIELDS}
    document["at"] = _timestamp(values["at"])
    document["prev"] = prev_mac
    document["v"] = ENCODING_VERSION
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def compute_mac(values: Mapping[str, object], *, prev_mac: str, key: bytes | None = None) -> str:
    key = key if key is not None else settings.AUDIT_CHAIN_KEY.encode("utf-8")
    return hmac.new(key, canonical_bytes(values, prev_mac=prev_mac), hashlib.sha256).hexdigest()


def lock_head() -> ChainHead:
    """The chain head, locked until the caller's transaction ends (a no-op lock on SQLite, where
    the transaction already holds the database's single writer lock)."""
    head = ChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        # A fresh database (or one the tests flushed). If entries exist without a head, the next
        # entry chains to the genesis value and `verify()` reports the break.
        head, _ = ChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"last_mac": GENESIS, "purged_through_mac": GENESIS}
        )
    return head


def append(**fields: object) -> AuditEntry:
    """Insert one entry at the end of the chain, durably, and return it.

    Inside a caller's transaction, the entry joins that transaction: it and the head move with
    the caller's work or not at all (no savepoint of its own: a failed append fails the caller's
    transaction, which is what every caller wants). Outside one, concurrent appends of this
    process are committed together (`_group_commit`): one lock of the head and one durable commit
    for all of them, instead of one each while every other writer waits for the head."""
    if connection.in_atomic_block:
        (entry,) = _append_all([fields])
        return entry
    return _group_commit(fields)


def _append_all(batch: list[Mapping[str, object]]) -> list[AuditEntry]:
    with transaction.atomic(savepoint=False):
        head = lock_head()
        entries, prev_mac = [], head.last_mac
        for fields in batch:
            # Stamped under the lock, so time order and chain order agree on one clock.
            entry = AuditEntry(at=timezone.now(), **fields)
            entry.mac = compute_mac(
                {name: getattr(entry, name) for name in CHAINED_FIELDS}, prev_mac=prev_mac
            )
            entries.append(entry)
            prev_mac = entry.mac
        _insert_at_head(entries)
    return entries


@dataclass(slots=True)
class _Waiting:
    fields: Mapping[str, object]
    done: threading.Event = field(default_factory=threading.Event)
    entry: AuditEntry | None = None
    error: BaseException | None = None
    leads: bool = False  # woken to write the next batch, not because its entry is written


_queue_lock = threading.Lock()
_queue: list[_Waiting] = []
_writing = False


def _group_commit(fields: Mapping[str, object]) -> AuditEntry:
    """Group commit: the first appender writes; appenders that arrive while it writes wait, and
    the first of them then writes all of theirs in one transaction. Each returns only once its own
    entry is committed (or raises the batch's error), so nothing is shown before it is audited."""
    global _writing
    me = _Waiting(fields)
    with _queue_lock:
        _queue.append(me)
        if _writing:
            leads = False
        else:
            _writing, leads = True, True
    if not leads:
        me.done.wait()
        if not me.leads:
            if me.error is not None:
                raise me.error
            return me.entry
    with _queue_lock:
        batch = list(_queue)
        _queue.clear()
    try:
        entries = _append_all([waiting.fields for waiting in batch])
    except BaseException as error:
        for waiting in batch:
            waiting.error = error
    else:
        for waiting, entry in zip(batch, entries, strict=True):
            waiting.entry = entry
    finally:
        with _queue_lock:
            if _queue:
                _queue[0].leads = True
                _queue[0].done.set()
            else:
                _writing = False
        for waiting in batch:
            if waiting is not me:
                waiting.done.set()
    if me.error is not None:
        raise me.error
    return me.entry


def _insert_at_head(entries: list[AuditEntry]) -> None:
    """Insert the entries, in chain order, and point the (locked) head at the last."""
    if connection.vendor != "postgresql":
        # SQLite runs in-process: a statement per row costs no round trip.
        for entry in entries:
            entry.save(force_insert=True)
        last = entries[-1]
        ChainHead.objects.filter(pk=1).update(last_entry_id=last.pk, last_mac=last.mac)
        return
    # PostgreSQL: one statement (one round trip) inserts the entries and moves the head. Ids come
    # from the sequence in VALUES order, so id order (the order `verify()` walks) is chain order.
    # Columns come from the model, so a field added to AuditEntry is written here too.
    columns = [column for column in AuditEntry._meta.concrete_fields if not column.primary_key]
    values = [
        column.get_db_prep_save(column.pre_save(entry, True), connection)
        for entry in entries
        for column in columns
    ]
    quote = connection.ops.quote_name
    table, heads = quote(AuditEntry._meta.db_table), quote(ChainHead._meta.db_table)
    names = ", ".join(quote(column.column) for column in columns)
    rows = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(entries))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH new AS (INSERT INTO {table} ({names}) VALUES {rows} RETURNING id), "  # noqa: S608 (names from the model)
            f"moved AS (UPDATE {heads} SET last_entry_id = (SELECT max(id) FROM new), "
            "last_mac = %s WHERE id = 1) SELECT id FROM new ORDER BY id",
            [*values, entries[-1].mac],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for entry, entry_id in zip(entries, ids, strict=True):
        entry.pk = entry_id
        entry._state.adding = False
        entry._state.db = connection.alias


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    entries_checked: int
    first_bad_id: int | None
    message: str


def _diagnose(bad: tuple, following: tuple | None, prev_mac: str) -> str:
    """Say what most likely happened at the first broken link, from the entry after it."""
    bad_id, bad_mac = bad[0], bad[-1]
    if following is not None:
        values = dict(zip(CHAINED_FIELDS, following[1:-1], strict=True))
        if hmac.compare_digest(compute_mac(values, prev_mac=prev_mac), following[-1]):
            return f"Entry #{bad_id} is not part of the chain: it was inserted."
        if not hmac.compare_digest(compute_mac(values, prev_mac=bad_mac), following[-1]):
            return (
                f"Entry #{bad_id} does not match its MAC, and neither does the entry after it: "
                "several entries were changed, deleted or inserted from here on."
            )
    return (
        f"Entry #{bad_id} does not match its MAC: it was changed, or the entry just before it was "
        "deleted."
    )


def _walk(*, batch_size: int) -> tuple[Verification, ChainHead | None]:
    start_head = ChainHead.objects.filter(pk=1).first()
    purged_through = start_head.purged_through_id if start_head else None
    prev_mac = start_head.purged_through_mac if start_head else GENESIS
    checked = 0
    last_id, last_mac = 0, GENESIS
    columns = ("id", *CHAINED_FIELDS, "mac")
    caught_up = False
    while True:
        # Keyset batches by id: constant memory, and no transaction held open for the whole walk.
        rows = list(
            AuditEntry.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list(*columns)[: batch_size + 1]
        )
        if not rows:
            if caught_up:
                break
            # Entries appended while we walked are committed before the head that names them:
            # read the head, then look once more.
            head = ChainHead.objects.filter(pk=1).first()
            caught_up = True
            continue
        caught_up = False
        for index, row in enumerate(rows[:batch_size]):
            entry_id, mac = row[0], row[-1]
            if purged_through is not None and entry_id <= purged_through:
                message = f"Entry #{entry_id} is older than the last purge, which deleted it."
                return Verification(False, checked, entry_id, message), start_head
            values = dict(zip(CHAINED_FIELDS, row[1:-1], strict=True))
            if not hmac.compare_digest(compute_mac(values, prev_mac=prev_mac), mac):
                following = rows[index + 1] if index + 1 < len(rows) else None
                message = _diagnose(row, following, prev_mac)
                return Verification(False, checked, entry_id, message), start_head
            prev_mac, last_id, last_mac = mac, entry_id, mac
            checked += 1

    if head is None:
        if checked:
            return Verification(False, checked, None, "The chain head is missing."), start_head
    elif last_id == 0:
        if (head.last_entry_id or 0) != (head.purged_through_id or 0):
            message = f"Every entry up to #{head.last_entry_id} is missing."
            return Verification(False, 0, None, message), start_head
    elif (head.last_entry_id or 0) > last_id:
        message = (
            f"The chain ends at entry #{head.last_entry_id}, but the newest entry left is "
            f"#{last_id}: the entries after it were deleted."
        )
        return Verification(False, checked, head.last_entry_id, message), start_head
    elif head.last_entry_id != last_id or not hmac.compare_digest(head.last_mac, last_mac):
        extra = (
            AuditEntry.objects.filter(id__gt=head.last_entry_id or 0)
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        message = (
            f"The chain ends at entry #{head.last_entry_id}, but entries after it exist from "
            f"#{extra}: they were added outside the console."
        )
        return Verification(False, checked, extra, message), start_head
    return Verification(True, checked, None, f"{checked:,} entries verified."), start_head


def verify(*, batch_size: int = 5000) -> Verification:
    """Walk the whole chain and return the first broken link, if any."""
    for _ in range(3):
        result, start_head = _walk(batch_size=batch_size)
        if result.ok:
            return result
        # A purge that ran during the walk moves the chain's start; walk again from the new one.
        head = ChainHead.objects.filter(pk=1).first()
        moved = (head and head.purged_through_id) != (start_head and start_head.purged_through_id)
        if not moved:
            return result
    return result


def record_verification(result: Verification, *, duration_ms: int):
    from .models import ChainVerification

    return ChainVerification.objects.create(
        ok=result.ok,
        entries_checked=result.entries_checked,
        first_bad_id=result.first_bad_id,
        message=result.message[:500],
        duration_ms=duration_ms,
    )


@dataclass(frozen=True, slots=True)
class Purge:
    deleted: int
    through_id: int | None
    cutoff: datetime


def purge(*, older_than: timedelta, batch_size: int = 10_000) -> Purge:
    """Delete the oldest entries, never one newer than `older_than`, in chain order.

    Works in batches, each in its own short transaction holding the chain head, so lookups wait
    for one batch at most. Each batch moves the head's checkpoint to its newest deleted entry, so
    the remaining chain still verifies."""
    cutoff = timezone.now() - older_than
    # The chain can only lose a prefix: stop at the first entry (in chain order) that is new.
    keep_from = (
        AuditEntry.objects.filter(at__gte=cutoff).order_by("id").values_list("id", flat=True)
    ).first()
    deleted, through_id = 0, None
    while True:
        with transaction.atomic():
            head = lock_head()
            candidates = AuditEntry.objects.filter(id__gt=head.purged_through_id or 0)
            if keep_from is not None:
                candidates = candidates.filter(id__lt=keep_from)
            batch_end = (
                (
                    candidates.order_by("id").values_list("id", "mac")[batch_size - 1 : batch_size]
                ).first()
                or candidates.order_by("-id").values_list("id", "mac").first()
            )
            if batch_end is None:
                break
            batch_through, batch_mac = batch_end
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("SELECT set_config(%s, 'on', true)", [PURGE_FLAG])
                cursor.execute(
                    f"DELETE FROM {AuditEntry._meta.db_table} WHERE id <= %s",  # noqa: S608
                    [batch_through],
                )
                deleted += cursor.rowcount
                if connection.vendor == "postgresql":
                    # Already local to this transaction; also off at once, in case a caller's
                    # outer transaction goes on after this batch.
                    cursor.execute("SELECT set_config(%s, 'off', true)", [PURGE_FLAG])
            head.purged_through_id = batch_through
            head.purged_through_mac = batch_mac
            head.save(update_fields=["purged_through_id", "purged_through_mac"])
            through_id = batch_through
    return Purge(deleted=deleted, through_id=through_id, cutoff=cutoff)


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
