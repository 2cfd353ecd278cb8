"""The hash chain over the audit log: each entry's MAC covers its own fields and the MAC of the
entry before it, so an edited, deleted or inserted entry breaks the chain at that point.

Appends lock the one `ChainHead` row inside the caller's transaction, so writers on any number of
workers or hosts join the chain one at a time. `verify()` walks the chain in id order;
`purge()` trims it from the oldest end, after a chained entry that vouches for what it deletes.
Keys rotate by a chained entry too, and signed checkpoints witness the chain's tail outside the
database (see `Checkpoint`)."""

from __future__ import annotations

import errno
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from connvo_admin.plain_sql import select_where

from . import partitions, rollup
from .models import Action, AuditEntry, ChainCheckpoint, ChainHead
from .records import count_of

logger = logging.getLogger(__name__)

# What the first entry (or the first after a purge of nothing) chains to.
GENESIS = "0" * 64
# Bumped if the canonical encoding ever changes, so old and new entries cannot be confused.
ENCODING_VERSION = 1
COUNTED_ENCODING_VERSION = 2
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
# Chained too, from encoding 2 on: what spans and counted records add. An entry with none of them
# set (every entry before spans) keeps encoding 1, so an existing chain verifies unchanged; an
# entry with any of them set is encoded with all three, so clearing one breaks its MAC.
COUNTED_FIELDS = ("calls", "repeats", "tally")
MAC_FIELDS = CHAINED_FIELDS + COUNTED_FIELDS
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
    counted = {name: values.get(name) for name in COUNTED_FIELDS}
    if any(value is not None for value in counted.values()):
        document |= counted
        document["v"] = COUNTED_ENCODING_VERSION
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def key_id(key: str) -> str:
    """A key's public name: a hash of it that says which key, and nothing that helps guess it."""
    return hashlib.sha256(b"connvo-audit-chain-key-id:" + key.encode("utf-8")).hexdigest()[:16]


@functools.cache
def _ring(keys: tuple[str, ...]) -> dict[str, bytes]:
    return {key_id(key): key.encode("utf-8") for key in keys}


def keys() -> dict[str, bytes]:
    """Every configured key by id, the current one (the first of AUDIT_CHAIN_KEY) first."""
    return _ring(tuple(settings.AUDIT_CHAIN_KEYS))


def current_key_id() -> str:
    return next(iter(keys()))


class ChainKeyMissing(DatabaseError):
    """The chain is written under a key this process does not have. A `DatabaseError` because
    every caller already treats "the audit log cannot be written" as one (a lookup fails
    closed, a sign-in is logged)."""


def compute_mac(values: Mapping[str, object], *, prev_mac: str, key: bytes | None = None) -> str:
    key = key if key is not None else next(iter(keys().values()))
    return hmac.new(key, canonical_bytes(values, prev_mac=prev_mac), hashlib.sha256).hexdigest()


def head_key(head: ChainHead) -> bytes:
    """The key the next entry is written under, named by the head (read with its lock, so no
    extra query). A head from before key ids existed uses the current key."""
    ring = keys()
    if not head.key_id:
        return next(iter(ring.values()))
    try:
        return ring[head.key_id]
    except KeyError:
        raise ChainKeyMissing(
            f"The audit chain is written under key {head.key_id}, which AUDIT_CHAIN_KEY on this "
            "host does not have."
        ) from None


def lock_head() -> ChainHead:
    """The chain head, locked until the caller's transaction ends (a no-op lock on SQLite, where
    the transaction already holds the database's single writer lock)."""
    # Plain SQL (connvo_admin/plain_sql.py): every audited lookup takes this lock.
    sql = select_where(ChainHead, ChainHead.objects.db, "pk", for_update=True)
    head = next(iter(ChainHead.objects.raw(sql, [1])), None)
    if head is None:
        # A fresh database (or one the tests flushed). If entries exist without a head, the next
        # entry chains to the genesis value and `verify()` reports the break.
        head, _ = ChainHead.objects.select_for_update().get_or_create(
            pk=1,
            defaults={
                "last_mac": GENESIS,
                "purged_through_mac": GENESIS,
                "key_id": current_key_id(),
            },
        )
    return head


def append(*, rotate_to: str | None = None, **fields: object) -> AuditEntry:
    """Insert one entry at the end of the chain, durably, and return it.

    Inside a caller's transaction, the entry joins that transaction: it and the head move with
    the caller's work or not at all (no savepoint of its own: a failed append fails the caller's
    transaction, which is what every caller wants). Outside one, concurrent appends of this
    process are committed together (`_group_commit`): one lock of the head and one durable commit
    for all of them, instead of one each while every other writer waits for the head.

    With `rotate_to` (a key id), the entry is the rotation itself: written under the old key,
    and every entry after it under the new one (never grouped: `audit_rotate_key` only)."""
    if rotate_to is not None or connection.in_atomic_block:
        with transaction.atomic(savepoint=False):
            (entry,) = _append_all([fields], rotate_to=rotate_to)
        return entry
    return _group_commit(fields)


def _append_all(
    batch: list[Mapping[str, object]], *, rotate_to: str | None = None
) -> list[AuditEntry]:
    with transaction.atomic(savepoint=False):
        head = lock_head()
        # The key the head names (read with its lock: no extra query).
        key = head_key(head)
        entries, prev_mac = [], head.last_mac
        for fields in batch:
            # Stamped under the lock, so time order and chain order agree on one clock.
            entry = AuditEntry(at=timezone.now(), **fields)
            entry.mac = compute_mac(
                {name: getattr(entry, name) for name in MAC_FIELDS}, prev_mac=prev_mac, key=key
            )
            entries.append(entry)
            prev_mac = entry.mac
        _insert_at_head(entries)
        if rotate_to is not None:
            ChainHead.objects.filter(pk=1).update(key_id=rotate_to)
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


def append_many(entries: list[dict[str, object]]) -> list[AuditEntry]:
    """Insert several entries at the end of the chain, in order, under one lock of the head and
    in one transaction (all or none): a triage table's fifty lookups cost one round of
    statements, not fifty."""
    if not entries:
        return []
    with transaction.atomic(savepoint=False):
        return _append_all(entries)


# --- What purge and rotation entries say --------------------------------------------------------
# Their `detail` is written for the auditor and read back by `verify()`: `name=value` facts
# after a sentence. The MAC covers it like any other field, so only the key holder can write one.
_FACT = re.compile(r"\b([a-z_]+)=(\S+)")


def _facts(detail: str) -> dict[str, str]:
    return dict(_FACT.findall(detail))


@dataclass(frozen=True, slots=True)
class PurgePlan:
    """What one `audit_purge` deletes: entries `first`..`last` (ids; the ids between that exist),
    `count` of them, the last one's MAC (what the oldest remaining entry chains to), all older
    than `cutoff` under a retention of `retention_days`."""

    count: int
    first: int | None
    last: int | None
    last_mac: str
    retention_days: int
    cutoff: datetime
    entry_id: int | None = None  # the purge entry, once written and read back
    at: datetime | None = None

    def detail(self, *, os_user: str) -> str:
        cutoff = _timestamp(self.cutoff)
        if not self.count:
            return (
                f"Nothing older than {self.retention_days} days to delete: count=0 "
                f"retention={self.retention_days}d cutoff={cutoff} os_user={os_user}"
            )
        return (
            f"Deleting {self.count} {'entry' if self.count == 1 else 'entries'} older than "
            f"{self.retention_days} days: "
            f"count={self.count} first={self.first} last={self.last} last_mac={self.last_mac} "
            f"retention={self.retention_days}d cutoff={cutoff} os_user={os_user}"
        )

    @classmethod
    def from_entry(cls, *, entry_id: int, at: datetime, detail: str) -> PurgePlan | None:
        """The plan a verified purge entry announced; None for one written before purges were
        chained (it vouches for nothing)."""
        facts = _facts(detail)
        try:
            count = int(facts["count"])
            # Unknown for the purge an upgrade vouches for (count=0: never checked for age).
            retention = int(facts.get("retention", "0d").removesuffix("d"))
            cutoff = (
                datetime.strptime(facts["cutoff"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                if "cutoff" in facts
                else at
            )
            first = int(facts["first"]) if "first" in facts else None
            # A purge entry of nothing has no range; one written at the upgrade that chained
            # purges vouches for the earlier purge's end without a count (see migration 0008).
            last = int(facts["last"]) if "last" in facts else None
            last_mac = facts.get("last_mac", GENESIS)
        except (KeyError, ValueError):
            return None
        return cls(count, first, last, last_mac, retention, cutoff, entry_id=entry_id, at=at)


def rotation_detail(*, old: str, new: str, os_user: str) -> str:
    return f"Entries after this one use key {new}: from={old} to={new} os_user={os_user}"


def rotated_to(detail: str) -> str | None:
    found = _facts(detail).get("to", "")
    return found if re.fullmatch(r"[0-9a-f]{16}", found) else None


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    entries_checked: int
    first_bad_id: int | None
    message: str
    # Where the verified chain ends (what the checkpoint `audit_verify` emits witnesses).
    last_id: int | None = None
    last_mac: str = GENESIS
    # A walk from a checkpoint (`verify_since_checkpoint`): the checkpoint's entry, after which
    # it started (None: the whole chain was walked).
    from_id: int | None = None
    # The log's entries up to `last_id` (what a checkpoint of it counts), when the walk knows
    # them: every entry it checked, or a checkpoint's count plus those after it (None after a
    # purge since that checkpoint).
    entries: int | None = None


class BadCheckpoint(ValueError):
    """A line that claims to be a checkpoint but is malformed or not signed by a known key."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's tail as the console saw it: the newest entry's id and MAC, how many entries
    there were, when. Signed with the current key and kept outside the database (the JSON log,
    `AUDIT_CHECKPOINT_FILE`), so cutting the tail back past it and rewinding the chain head is
    found by `audit_verify --checkpoint`."""

    last_id: int | None
    last_mac: str
    entries: int
    at: datetime
    key_id: str = ""
    signature: str = ""

    KIND = "audit_checkpoint"

    def _document(self) -> dict:
        return {
            "type": self.KIND,
            "v": ENCODING_VERSION,
            "last_id": self.last_id,
            "last_mac": self.last_mac,
            "entries": self.entries,
            "at": _timestamp(self.at),
            "key": self.key_id,
        }

    def _signature(self, key: bytes) -> str:
        document = json.dumps(self._document(), sort_keys=True, separators=(",", ":"))
        return hmac.new(key, document.encode("utf-8"), hashlib.sha256).hexdigest()

    def signed(self) -> Checkpoint:
        kid = current_key_id()
        unsigned = replace(self, key_id=kid)
        return replace(unsigned, signature=unsigned._signature(keys()[kid]))

    def line(self) -> str:
        return json.dumps({**self._document(), "sig": self.signature}, sort_keys=True)

    @classmethod
    def from_line(cls, text: str) -> Checkpoint | None:
        """The checkpoint in one line of the checkpoint file or of the console's JSON log; None
        for any other line. Raises `BadCheckpoint` for a checkpoint that does not check out."""
        try:
            document = json.loads(text)
            if isinstance(document, dict) and isinstance(document.get(cls.KIND), str):
                document = json.loads(document[cls.KIND])  # a log line carries it as a field
        except ValueError:
            return None
        except RecursionError:
            # Neither the console nor its log writes JSON this deep: this line was made to fail
            # the reader, so the witnesses around it cannot be trusted to be all there is.
            raise BadCheckpoint("A line is JSON nested too deeply to read.") from None
        if not isinstance(document, dict) or document.get("type") != cls.KIND:
            return None
        try:
            last_id = document["last_id"]
            checkpoint = cls(
                last_id=None if last_id is None else int(last_id),
                last_mac=str(document["last_mac"]),
                entries=int(document["entries"]),
                at=datetime.strptime(document["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                key_id=str(document["key"]),
                signature=str(document["sig"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise BadCheckpoint(f"A checkpoint line is malformed ({error}).") from None
        key = keys().get(checkpoint.key_id)
        if key is None:
            raise BadCheckpoint(
                f"The checkpoint of {document['at']} is signed with key {checkpoint.key_id}, "
                "which AUDIT_CHAIN_KEY does not have."
            )
        if document.get("v") != ENCODING_VERSION or not hmac.compare_digest(
            checkpoint._signature(key), checkpoint.signature
        ):
            raise BadCheckpoint(f"The checkpoint of {document['at']} has a wrong signature.")
        return checkpoint

    @property
    def when(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} UTC"


def read_checkpoints(lines: Iterable[str | bytes], *, source: str = "") -> list[Checkpoint]:
    """The checkpoints among `lines` (of the checkpoint file, or of the console's JSON log).
    Raises `BadCheckpoint` for a checkpoint that does not check out, and for input that is not
    text (a byte that is not UTF-8, a NUL): the console writes neither, so a witness that holds
    them was damaged or replaced, and what it witnesses cannot be told."""
    where = source or "the checkpoints"
    checkpoints = []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise BadCheckpoint(
                    f"Line {number} of {where} is not UTF-8 text (byte 0x{line[error.start]:02x} "
                    f"at position {error.start + 1}): not a checkpoint file or a console log."
                ) from None
        if "\x00" in line:
            raise BadCheckpoint(
                f"Line {number} of {where} holds a NUL byte: not a checkpoint file or a "
                "console log."
            )
        if checkpoint := Checkpoint.from_line(line):
            checkpoints.append(checkpoint)
    return checkpoints


def _key_that_signed(
    values: dict, *, prev_mac: str, mac: str, ring: dict[str, bytes]
) -> str | None:
    for kid, key in ring.items():
        if hmac.compare_digest(compute_mac(values, prev_mac=prev_mac, key=key), mac):
            return kid
    return None


def _diagnose(bad: tuple, following: tuple | None, prev_mac: str, key: bytes) -> str:
    """Say what most likely happened at the first broken link, from the entry after it."""
    bad_id, bad_mac = bad[0], bad[-1]
    if following is not None:
        values = dict(zip(MAC_FIELDS, following[1:-1], strict=True))
        if hmac.compare_digest(compute_mac(values, prev_mac=prev_mac, key=key), following[-1]):
            return f"Entry #{bad_id} is not part of the chain: it was inserted."
        if not hmac.compare_digest(compute_mac(values, prev_mac=bad_mac, key=key), following[-1]):
            return (
                f"Entry #{bad_id} does not match its MAC, and neither does the entry after it: "
                "several entries were changed, deleted or inserted from here on."
            )
    return (
        f"Entry #{bad_id} does not match its MAC: it was changed, or the entry just before it was "
        "deleted."
    )


def _too_young(plan: PurgePlan) -> str | None:
    retention = timedelta(days=settings.AUDIT_MIN_RETENTION_DAYS)
    if plan.count and (
        plan.at - plan.cutoff < retention or plan.retention_days * 86400 < retention.total_seconds()
    ):
        return (
            f"Entry #{plan.entry_id} is a purge of entries younger than the "
            f"{settings.AUDIT_MIN_RETENTION_DAYS}-day retention in force: it deleted entries "
            f"#{plan.first} to #{plan.last}, everything before {plan.cutoff:%Y-%m-%d %H:%M} UTC."
        )
    return None


def _unvouched_start(purged_through: int | None, start_mac: str, purges: list[PurgePlan]) -> bool:
    """Whether the chain starts after deleted entries that no verified purge entry accounts
    for: the newest deleted entry must be a purge's last, with the MAC that purge announced, or
    lie inside a purge's range while its batches run (or after they were interrupted)."""
    if purged_through is None and start_mac == GENESIS:
        return False
    if purged_through is None:
        return True
    for plan in purges:
        if plan.last == purged_through and hmac.compare_digest(plan.last_mac, start_mac):
            return False
        if plan.count and plan.first <= purged_through < plan.last:
            return False
    return True


def _walk(
    *, batch_size: int, witnessed: Mapping[int, Checkpoint], start: Checkpoint | None = None
) -> tuple[Verification, ChainHead | None]:
    """Walk the chain from its start, or from the entry `start` witnessed (whose MAC the caller
    checked: `verify_since_checkpoint`), to the head."""
    if batch_size < 1:  # no batch would move the walk on: it would never end
        raise ValueError(f"A walk reads at least 1 entry per batch, not {batch_size}.")
    start_head = ChainHead.objects.filter(pk=1).first()
    purged_through = start_head.purged_through_id if start_head else None
    start_mac = start_head.purged_through_mac if start_head else GENESIS
    prev_mac = start.last_mac if start else start_mac
    ring = keys()
    key = (
        None  # the id of the key the entries are under: the first entry decides, rotations move it
    )
    purges: list[PurgePlan] = []
    rotations = 0
    seen_witnessed: set[int] = set()
    checked = 0
    first_id, last_id, last_mac = None, 0, GENESIS
    if start is not None:
        last_id, last_mac = start.last_id, start.last_mac
    columns = ("id", *MAC_FIELDS, "mac")
    action_at, detail_at = 1 + CHAINED_FIELDS.index("action"), 1 + CHAINED_FIELDS.index("detail")
    caught_up = False

    from_id = start.last_id if start else None

    def broken(bad_id: int | None, message: str) -> tuple[Verification, ChainHead | None]:
        return Verification(False, checked, bad_id, message, from_id=from_id), start_head

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
                return broken(entry_id, message)
            values = dict(zip(MAC_FIELDS, row[1:-1], strict=True))
            if key is None:
                key = _key_that_signed(values, prev_mac=prev_mac, mac=mac, ring=ring)
                good = key is not None
            else:
                good = hmac.compare_digest(
                    compute_mac(values, prev_mac=prev_mac, key=ring[key]), mac
                )
            if not good:
                following = rows[index + 1] if index + 1 < len(rows) else None
                signing_key = ring[key] if key else next(iter(ring.values()))
                return broken(entry_id, _diagnose(row, following, prev_mac, signing_key))
            if row[action_at] == Action.AUDIT_PURGED:
                plan = PurgePlan.from_entry(
                    entry_id=entry_id, at=values["at"], detail=row[detail_at]
                )
                if plan is not None:
                    if problem := _too_young(plan):
                        return broken(entry_id, problem)
                    purges.append(plan)
            elif row[action_at] == Action.AUDIT_KEY_ROTATED and (new := rotated_to(row[detail_at])):
                if new not in ring:
                    return broken(
                        entry_id,
                        f"Entry #{entry_id} moved the chain to key {new}, which AUDIT_CHAIN_KEY "
                        "does not have: add it to check the entries after it.",
                    )
                key, rotations = new, rotations + 1
            witness = witnessed.get(entry_id)
            if witness is not None:
                if not hmac.compare_digest(witness.last_mac, mac):
                    return broken(
                        entry_id,
                        f"Entry #{entry_id} is not the entry the checkpoint of {witness.when} "
                        "witnessed: the chain was rewritten from there on with the key.",
                    )
                seen_witnessed.add(entry_id)
            if first_id is None:
                first_id = entry_id
            prev_mac, last_id, last_mac = mac, entry_id, mac
            checked += 1

    if head is None:
        if checked:
            return broken(None, "The chain head is missing.")
    elif last_id == 0:
        if (head.last_entry_id or 0) != (head.purged_through_id or 0):
            return broken(None, f"Every entry up to #{head.last_entry_id} is missing.")
    elif (head.last_entry_id or 0) > last_id:
        message = (
            f"The chain ends at entry #{head.last_entry_id}, but the newest entry left is "
            f"#{last_id}: the entries after it were deleted."
        )
        return broken(head.last_entry_id, message)
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
        return broken(extra, message)
    elif head.key_id and key is not None and head.key_id != key:
        message = (
            f"The chain head says the next entry is written under key {head.key_id}, but the "
            f"chain is under key {key}: the head was changed outside the console."
        )
        return broken(None, message)

    # A walk from a checkpoint reads no purge entry from before it: the earlier walk that
    # verified the checkpoint's entry checked the chain's start.
    if start is None and _unvouched_start(purged_through, start_mac, purges):
        message = (
            f"Entries up to #{purged_through} were deleted, but no purge entry vouches for "
            "them: they were removed outside audit_purge (a forged purge)."
        )
        return broken(first_id, message)

    for entry_id, witness in sorted(witnessed.items()):
        purged_since = purged_through is not None and entry_id <= purged_through
        before_start = from_id is not None and entry_id <= from_id
        if entry_id in seen_witnessed or purged_since or before_start or witness.last_id is None:
            continue
        message = (
            f"Entry #{entry_id}, witnessed by the checkpoint of {witness.when}, is missing: the "
            "newest entries were deleted and the chain head moved back to hide it."
        )
        return broken(entry_id, message)

    entries = count_of(checked, "entry", "entries")
    message = f"{entries} verified."
    if start is not None:
        span = f"#{first_id}\N{EN DASH}#{last_id}" if first_id is not None else "none"
        message = (
            f"The walk started at entry #{start.last_id}, witnessed by the checkpoint of "
            f"{start.when} and verified by an earlier walk (the entries before it were not read "
            f"this time): {entries} after it verified ({span})."
        )
    if start is None and purged_through is not None:
        message += f" Entries up to #{purged_through} were purged by audit_purge."
    if rotations:
        message += f" {rotations} key rotation{'s' if rotations > 1 else ''}."
    if witnessed:
        # A walk from a checkpoint does not read the entries up to it, nor their checkpoints.
        unread = sum(1 for entry_id in witnessed if from_id is not None and entry_id <= from_id)
        purged = len(witnessed) - len(seen_witnessed) - unread
        message += f" {len(seen_witnessed)} witnessed checkpoints found in the chain"
        notes = [f"{purged} more were of entries purged since"] if purged else []
        if unread:
            unread_entries = count_of(unread, "witnessed entry", "witnessed entries")
            notes.append(f"{unread_entries} up to the walk's start, not read")
        message += f" ({'; '.join(notes)})." if notes else "."
    if key is not None and key != current_key_id():
        message += (
            f" The chain is still under key {key}: run audit_rotate_key to move it to the first "
            "key of AUDIT_CHAIN_KEY."
        )
    if start is None:
        entries = checked
    else:
        entries = None if purges or start.entries is None else start.entries + checked
    verified = Verification(
        True, checked, None, message, last_id or None, last_mac, from_id=from_id, entries=entries
    )
    return verified, start_head


def verify(*, batch_size: int = 5000, checkpoints: Iterable[Checkpoint] = ()) -> Verification:
    """Walk the whole chain and return the first broken link, if any. Each of `checkpoints` (read
    back from outside the database) must still be in the chain, unless purged since."""
    witnessed = {c.last_id: c for c in sorted(checkpoints, key=lambda c: c.at) if c.last_id}
    for _ in range(3):
        result, start_head = _walk(batch_size=batch_size, witnessed=witnessed)
        if result.ok or not _purged_meanwhile(start_head):
            return result
    return result


def _purged_meanwhile(start_head: ChainHead | None) -> bool:
    """A purge that ran during a walk moved the chain's start: the walk is to be made again."""
    head = ChainHead.objects.filter(pk=1).first()
    return (head and head.purged_through_id) != (start_head and start_head.purged_through_id)


class NoCheckpointToStartFrom(Exception):
    """`verify_since_checkpoint` found no witnessed checkpoint an earlier walk had verified: its
    message says why, and the whole chain is walked instead."""


def start_checkpoint(checkpoints: Iterable[Checkpoint]) -> Checkpoint | Verification:
    """The newest of `checkpoints` whose entry an earlier successful walk verified and which is
    still in the log with the MAC the checkpoint witnessed: where a walk can start.

    Returns a broken `Verification` when a witnessed entry is in the log with another MAC (it was
    rewritten with the key: the walk from it would vouch for the rewrite). Raises
    `NoCheckpointToStartFrom` when none can serve."""
    from .models import ChainVerification

    latest = ChainVerification.objects.order_by("-at", "-id").first()
    if latest is not None and not latest.ok:
        # Starting after the break would verify only what follows it and hide it.
        where = f" at entry #{latest.first_bad_id}" if latest.first_bad_id else ""
        raise NoCheckpointToStartFrom(f"The last verification found a broken link{where}.")
    verified_through = (
        ChainVerification.objects.filter(ok=True, last_entry_id__isnull=False)
        .order_by("-last_entry_id")
        .values_list("last_entry_id", flat=True)
        .first()
    )
    candidates = sorted(
        (c for c in checkpoints if c.last_id is not None), key=lambda c: (c.last_id, c.at)
    )
    if not candidates:
        raise NoCheckpointToStartFrom("No checkpoint witnesses an entry of the chain.")
    if verified_through is None:
        raise NoCheckpointToStartFrom("No earlier walk verified the chain.")
    candidates = [c for c in candidates if c.last_id <= verified_through]
    if not candidates:
        raise NoCheckpointToStartFrom(
            f"No checkpoint witnesses an entry up to #{verified_through}, where the last "
            "successful walk ended."
        )
    stored = dict(
        AuditEntry.objects.filter(id__in=[c.last_id for c in candidates]).values_list("id", "mac")
    )
    for candidate in reversed(candidates):
        mac = stored.get(candidate.last_id)
        if mac is None:
            continue  # purged since
        if not hmac.compare_digest(mac, candidate.last_mac):
            return Verification(
                False,
                0,
                candidate.last_id,
                f"Entry #{candidate.last_id} is not the entry the checkpoint of {candidate.when} "
                "witnessed: the chain was rewritten from there on with the key. No walk starts "
                "from it; run audit_verify without --since-checkpoint to check the whole chain.",
            )
        return candidate
    raise NoCheckpointToStartFrom("Every witnessed entry was purged since.")


def stored_checkpoints(*, limit: int = 20) -> list[Checkpoint]:
    """The console's own copy of its newest checkpoints up to where the last successful walk
    ended (unsigned: rows in the database, not witnesses outside it)."""
    from .models import ChainVerification

    verified_through = (
        ChainVerification.objects.filter(ok=True, last_entry_id__isnull=False)
        .order_by("-at", "-id")
        .values_list("last_entry_id", flat=True)
        .first()
    )
    rows = ChainCheckpoint.objects.filter(
        last_entry_id__isnull=False, last_entry_id__lte=verified_through or 0
    ).order_by("-last_entry_id", "-at")[:limit]
    return [
        Checkpoint(last_id=row.last_entry_id, last_mac=row.last_mac, entries=row.entries, at=row.at)
        for row in rows
    ]


def verify_since_checkpoint(
    *, checkpoints: Iterable[Checkpoint], batch_size: int = 5000
) -> Verification:
    """Walk only from the newest usable checkpoint (`start_checkpoint`) to the head: a daily check
    reads a day, not the year before it. The entries before the checkpoint are not read again;
    an earlier walk verified them, and the checkpoint witnesses the MAC they all lead to. With
    no usable checkpoint, walk the whole chain and say so."""
    checkpoints = list(checkpoints)
    witnessed = {c.last_id: c for c in sorted(checkpoints, key=lambda c: c.at) if c.last_id}
    for _ in range(3):
        # Read before the start is chosen: a purge committed from here on may delete it and
        # the entries after it before the walk reads them.
        before = ChainHead.objects.filter(pk=1).first()
        try:
            start = start_checkpoint(checkpoints)
        except NoCheckpointToStartFrom as reason:
            result = verify(batch_size=batch_size, checkpoints=checkpoints)
            return replace(
                result,
                message=f"{reason} Walked the whole chain instead. {result.message}",
            )
        if isinstance(start, Verification):
            return start
        result, _ = _walk(batch_size=batch_size, witnessed=witnessed, start=start)
        if result.ok or not _purged_meanwhile(before):
            return result
    return result


def record_verification(result: Verification, *, duration_ms: int):
    from .models import ChainVerification

    return ChainVerification.objects.create(
        ok=result.ok,
        entries_checked=result.entries_checked,
        first_bad_id=result.first_bad_id,
        last_entry_id=result.last_id if result.ok else None,
        from_entry_id=result.from_id,
        message=result.message[:500],
        duration_ms=duration_ms,
    )


class CheckpointRefused(Exception):
    """The chain head does not match the entries, so its state is not worth witnessing."""


def emit_checkpoint(*, last_id: int | None, last_mac: str, entries: int) -> Checkpoint:
    """Sign a checkpoint and send it to the witnesses: the JSON log (which the log pipeline
    carries off the host), `AUDIT_CHECKPOINT_FILE` when set, and then the audit pages. Raises
    `OSError` when the file cannot be written (after the log line went out): the checkpoint is
    then not stored, since the pages call every stored checkpoint "witnessed outside the
    database"."""
    checkpoint = Checkpoint(
        last_id=last_id, last_mac=last_mac, entries=entries, at=timezone.now()
    ).signed()
    line = checkpoint.line()
    logger.info(
        "audit checkpoint at entry #%s (%s entries)",
        last_id,
        entries,
        extra={Checkpoint.KIND: line},
    )
    if settings.AUDIT_CHECKPOINT_FILE:
        _append_witness(settings.AUDIT_CHECKPOINT_FILE, line)
    ChainCheckpoint.objects.create(
        at=checkpoint.at,
        last_entry_id=last_id,
        last_mac=last_mac,
        entries=entries,
        key_id=checkpoint.key_id,
    )
    return checkpoint


def _append_witness(path: str, line: str) -> None:
    """Append `line` to the checkpoint file in one write, on the disk before this returns.

    The file is append-only (`chattr +a`), so a line cut short earlier (a full disk) stays: the
    new line then starts after a line break of its own instead of completing that one, which
    would make both unreadable."""
    data = (line + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        if _ends_mid_line(path, size=os.fstat(descriptor).st_size):
            data = b"\n" + data
        if os.write(descriptor, data) != len(data):
            raise OSError(errno.ENOSPC, "only part of the checkpoint line was written", path)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _ends_mid_line(path: str, *, size: int) -> bool:
    if size == 0:
        return False
    try:
        with open(path, "rb") as witness:
            witness.seek(size - 1)
            return witness.read(1) != b"\n"
    except OSError:
        # A file this process may append to but not read: nothing to go by, and a blank line
        # costs nothing (readers skip it).
        return True


def checkpoint_now() -> Checkpoint:
    """Witness the chain's tail as the head names it (two short queries and a count: never on a
    lookup's path). Refuses when the head's entry is not there as the head says."""
    head = ChainHead.objects.filter(pk=1).first()
    if head is None or head.last_entry_id is None:
        if AuditEntry.objects.exists():
            raise CheckpointRefused("The chain head is missing.")
        return emit_checkpoint(last_id=None, last_mac=GENESIS, entries=0)
    stored = AuditEntry.objects.filter(id=head.last_entry_id).values_list("mac", flat=True).first()
    if stored is None or not hmac.compare_digest(stored, head.last_mac):
        raise CheckpointRefused(
            f"The chain head names entry #{head.last_entry_id}, which is not in the log as the "
            "head says: run audit_verify."
        )
    entries = entries_through(head.last_entry_id)
    return emit_checkpoint(last_id=head.last_entry_id, last_mac=head.last_mac, entries=entries)


def entries_through(last_id: int | None) -> int:
    """The log's entries up to `last_id` (a count of the log: never on a lookup's path)."""
    return AuditEntry.objects.filter(id__lte=last_id or 0).count()


@dataclass(frozen=True, slots=True)
class Purge:
    deleted: int
    through_id: int | None
    cutoff: datetime


def plan_purge(*, retention_days: int) -> PurgePlan:
    """What a purge keeping `retention_days` would delete: the oldest entries up to the first
    (in chain order) that is newer, since the chain can only lose a prefix."""
    cutoff = timezone.now() - timedelta(days=retention_days)
    keep_from = (
        AuditEntry.objects.filter(at__gte=cutoff).order_by("id").values_list("id", flat=True)
    ).first()
    head = ChainHead.objects.filter(pk=1).first()
    candidates = AuditEntry.objects.filter(id__gt=(head.purged_through_id if head else None) or 0)
    if keep_from is not None:
        candidates = candidates.filter(id__lt=keep_from)
    found = candidates.aggregate(first=Min("id"), last=Max("id"), count=Count("id"))
    last_mac = GENESIS
    if found["last"] is not None:
        last_mac = AuditEntry.objects.filter(id=found["last"]).values_list("mac", flat=True).get()
    return PurgePlan(
        count=found["count"],
        first=found["first"],
        last=found["last"],
        last_mac=last_mac,
        retention_days=retention_days,
        cutoff=cutoff,
    )


def purge(*, plan: PurgePlan, batch_size: int = 10_000) -> Purge:
    """Delete what `plan` names, oldest first, after its purge entry was written.

    Works in batches, each in its own short transaction holding the chain head, so lookups wait
    for one batch at most. Each batch moves the head's start to its newest deleted entry, so
    the remaining chain still verifies, and takes what it deletes out of the overview's
    summaries (`rollup.forget`; a month dropped whole, `rollup.forget_month`)."""
    dropped_through = None
    if plan.count and partitions.is_partitioned():
        dropped_through = _drop_whole_months(plan)
    deleted, through_id = 0, dropped_through
    # A batch larger than the plan is all of it, and its offset stays one a database takes
    # (an offset past 2**63 failed after the purge's entry was written).
    batch_size = min(batch_size, plan.count)
    while plan.count:
        with transaction.atomic():
            # The summaries' counter before the head: a count in progress delays the purge, never
            # a lookup waiting for the head.
            rollup.lock_progress()
            head = lock_head()
            candidates = AuditEntry.objects.filter(
                id__gt=head.purged_through_id or 0, id__lte=plan.last
            )
            batch_end = (
                (
                    candidates.order_by("id").values_list("id", "mac")[batch_size - 1 : batch_size]
                ).first()
                or candidates.order_by("-id").values_list("id", "mac").first()
            )
            if batch_end is None:
                break
            batch_through, batch_mac = batch_end
            rollup.forget(after_id=head.purged_through_id or 0, through_id=batch_through)
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
    if dropped_through is not None:
        # Every entry the plan counted is gone (the loop above ends only then), and no entry
        # joins that id range later: the count the plan made, without counting each month again.
        deleted = plan.count
    return Purge(deleted=deleted, through_id=through_id, cutoff=plan.cutoff)


def _drop_whole_months(plan: PurgePlan) -> int | None:
    """On a partitioned log, drop the month partitions the plan deletes whole (oldest first, one
    transaction each, holding the chain head like a batch): a month goes in one DETACH and DROP,
    not millions of DELETEs, and its rows of the summaries by their hours and days, without
    reading its entries back. The rest (the partial month) is deleted in batches as before.
    Returns the newest entry dropped (None: no month was)."""
    through_id = None
    while True:
        with transaction.atomic():
            rollup.lock_progress()
            head = lock_head()
            after = head.purged_through_id or 0
            months = partitions.droppable(after_id=after, through_id=plan.last)
            if not months:
                return through_id
            month = months[0]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id, mac FROM {month.name} ORDER BY id DESC LIMIT 1"  # noqa: S608
                )
                last_id, last_mac = cursor.fetchone()
            # The month's summary rows are its entries' counts: deleted by time, none read.
            rollup.forget_month(month=month.month)
            partitions.drop(month)
            head.purged_through_id, head.purged_through_mac = last_id, last_mac
            head.save(update_fields=["purged_through_id", "purged_through_mac"])
            through_id = last_id


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
