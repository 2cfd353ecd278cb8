"""Repeated refusals, counted instead of appended one by one (issue #22).

The interface the write paths call. `refused()` records one refusal; the first of its kind from
its source in a minute is a full chained entry, the rest of that minute are counted in
`RepeatCount` (one narrow upsert each: no chain-head lock, no insert into the indexed log) and
sealed into one chained counted record once the minute is over (`seal_past()`, run by
`manage.py audit_seal` and the audit pages, and for one kind and source by its next refusal).

So a client that floods the console with refusals adds, per minute, one full entry per action
(the first refusal of a sign-in, say, whether a wrong password or a lockout) and one counted record
per kind, whatever it sends: an unauthenticated client reaches CSRF refusals and two kinds of
refused sign-in, so at most five chained entries a minute. It never waits on the chain's head but
for the minute's first request of an action."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from datetime import UTC, datetime

from django.db import DatabaseError, connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import chain
from .models import Action, AuditEntry, RepeatCount
from .services import Origin, fit, record, storable, who

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    """A refusal that repeats, where its action and outcome alone do not say which it is."""

    name: str
    action: Action
    # The counted record's detail when the minute's repeats do not share one.
    words: str


CSRF = Kind("csrf", Action.PERMISSION_DENIED, "CSRF check failed")
FORBIDDEN = Kind("forbidden", Action.PERMISSION_DENIED, "Permission denied")
WRONG_PASSWORD = Kind("wrong_password", Action.SIGN_IN_FAILED, "Wrong username or password.")
LOCKED_OUT = Kind("locked_out", Action.SIGN_IN_FAILED, "locked out")
KINDS = {kind.name: kind for kind in (CSRF, FORBIDDEN, WRONG_PASSWORD, LOCKED_OUT)}

# The distinct values tried that a counted record shows (usernames, pages, meetings), each cut to
# SAMPLE_LENGTH characters; and how many distinct ones it counts exactly ("distinct" stops there:
# a record that says DISTINCT_CAP means at least that many).
SAMPLE_SIZE = 5
SAMPLE_LENGTH = 150
DISTINCT_CAP = 100

# Columns describing the repeats: kept while every repeat of the minute agrees, cleared at the
# first that does not (RepeatCount's docstring). Text columns are cleared to "", these to NULL.
_AGREEING_TEXT = ("actor_username", "user_agent", "via", "deployment", "meeting_id", "detail")
_AGREEING_NULL = ("actor", "client_ip", "http_status")


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _fit(value: str | None, field_name: str) -> str:
    return fit(value, field_name, RepeatCount)


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8"), digest_size=8).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class _Refusal:
    origin: Origin
    action: str
    outcome: str
    kind: str
    via: str
    deployment: str
    meeting_id: str
    detail: str
    source: str
    tried: str
    http_status: int | None


def refused(
    *,
    origin: Origin,
    action: Action,
    outcome: str = "",
    via: str = "",
    deployment: str = "",
    meeting_id: str = "",
    detail: str = "",
    source: str = "",
    kind: Kind | None = None,
    tried: str | None = None,
    http_status: int | None = None,
) -> None:
    """Record one refusal, failing open (a refusal stands whether or not it is recorded).
    `source` names who repeats it: the client address by default, the staff member for a
    signed-in agent's refusals (the lookup limit). `kind` tells refusals of one action and
    outcome apart (`KINDS`); `tried` is what this one tried, for the counted record's sample
    (default: the meeting, else the username given)."""
    refusal = _Refusal(
        origin=origin,
        action=str(action),
        outcome=_fit(str(outcome), "outcome"),
        kind=kind.name if kind else "",
        via=_fit(str(via), "via"),
        deployment=_fit(deployment, "deployment"),
        meeting_id=_fit(meeting_id, "meeting_id"),
        detail=_fit(detail, "detail"),
        source=_fit(source or origin.client_ip or "unknown", "source"),
        tried=storable(tried if tried is not None else meeting_id or origin.username)[
            :SAMPLE_LENGTH
        ],
        http_status=http_status,
    )
    try:
        # A savepoint, so a failed write leaves the request's connection usable.
        with transaction.atomic():
            now = timezone.now()
            if _count(refusal, now=now) == 0:
                # The minute's first: its own full entry, in the transaction that made its row,
                # so the repeats that queue behind the row are counted only once it is on record.
                for row in _earlier_minutes(refusal, now=now):
                    _seal(row)
                if _another_kind_entered(refusal, now=now):
                    # The source's second kind of this action this minute (a lockout after
                    # wrong passwords): counted from its first request, not entered, so that a
                    # source adds at most one full entry per action a minute.
                    _counted_from_first(refusal, now=now)
                    return
                record(
                    origin=origin,
                    action=action,
                    outcome=refusal.outcome,
                    via=refusal.via,
                    deployment=refusal.deployment,
                    meeting_id=refusal.meeting_id,
                    http_status=http_status,
                    detail=refusal.detail,
                    # A refusal never reaches Connvo (a lookup refused by the limit included).
                    calls=0,
                )
    except DatabaseError:
        logger.exception(
            "refusal %s %s from %r could not be recorded",
            refusal.action,
            refusal.kind or refusal.outcome,
            refusal.source,
        )


def _another_kind_entered(refusal: _Refusal, *, now: datetime) -> bool:
    """Whether this source's refusals of this action already had their full entry this minute,
    under another kind or outcome."""
    return (
        RepeatCount.objects.filter(
            source=refusal.source, action=refusal.action, minute=_minute(now)
        )
        .exclude(kind=refusal.kind, outcome=refusal.outcome)
        .exists()
    )


def _counted_from_first(refusal: _Refusal, *, now: datetime) -> None:
    """Count the row's first refusal too (its row was made with a count of 0, which means "the
    first has its own entry")."""
    RepeatCount.objects.filter(
        source=refusal.source,
        action=refusal.action,
        outcome=refusal.outcome,
        kind=refusal.kind,
        minute=_minute(now),
    ).update(count=F("count") + 1, first_at=now)


def _count(refusal: _Refusal, *, now: datetime) -> int:
    """Count one refusal in its minute's row, in one statement: 0 when the row was created (this
    is the minute's first), else the repeats so far, this one included. Concurrent refusals of
    one row are serialised by the row itself (INSERT … ON CONFLICT … RETURNING), never by the
    chain head."""
    origin = refusal.origin
    values = {
        "source": refusal.source,
        "action": refusal.action,
        "outcome": refusal.outcome,
        "kind": refusal.kind,
        "minute": _minute(now),
        "count": 0,
        "first_at": None,
        "last_at": now,
        **who(origin),
        "actor": origin.user.pk if origin.user else None,
        "via": refusal.via,
        "deployment": refusal.deployment,
        "meeting_id": refusal.meeting_id,
        "http_status": refusal.http_status,
        "detail": refusal.detail,
        "sample": [refusal.tried] if refusal.tried else [],
        "seen": [_digest(refusal.tried)] if refusal.tried else [],
    }
    meta = RepeatCount._meta
    params = [meta.get_field(name).get_db_prep_save(values[name], connection) for name in _COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(connection.vendor), params)
        (count,) = cursor.fetchone()
    return count


# The row's key, and every column the upsert writes (in its parameters' order).
_KEY = ("source", "action", "outcome", "kind", "minute")
_COLUMNS = (
    *_KEY,
    "count",
    "first_at",
    "last_at",
    *_AGREEING_TEXT,
    *_AGREEING_NULL,
    "sample",
    "seen",
)


@functools.cache
def _upsert_sql(vendor: str) -> str:
    """INSERT … ON CONFLICT DO UPDATE … RETURNING count, from the model's own names (SQLite
    3.35+ and PostgreSQL)."""
    meta, quote = RepeatCount._meta, connection.ops.quote_name
    postgres = vendor == "postgresql"
    table = quote(meta.db_table)

    def name_of(name: str) -> str:
        return quote(meta.get_field(name).column)

    def col(name: str) -> str:
        return f"{table}.{name_of(name)}"

    def new(name: str) -> str:
        return f"excluded.{name_of(name)}"

    same_or_null = "IS NOT DISTINCT FROM" if postgres else "IS"
    updates = {
        "count": f"{col('count')} + 1",
        # The first repeat's time: the counted record stands for the repeats, not the first.
        "first_at": (
            f"CASE WHEN {col('count')} = 0 THEN {new('last_at')} ELSE {col('first_at')} END"
        ),
        "last_at": new("last_at"),
    }
    for name in _AGREEING_TEXT:
        updates[name] = f"CASE WHEN {col(name)} = {new(name)} THEN {col(name)} ELSE '' END"
    for name in _AGREEING_NULL:
        updates[name] = f"CASE WHEN {col(name)} {same_or_null} {new(name)} THEN {col(name)} END"
    # A value joins the sample (and its digest `seen`) when it is new and there is room.
    for name, cap in (("sample", SAMPLE_SIZE), ("seen", DISTINCT_CAP)):
        if postgres:
            known = f"{col(name)} @> {new(name)}"
            grown = f"{col(name)} || {new(name)}"
            length = "jsonb_array_length"
        else:
            value = f"json_extract({new(name)}, '$[0]')"
            known = f"EXISTS (SELECT 1 FROM json_each({col(name)}) AS v WHERE v.value = {value})"  # noqa: S608 (names from the model)
            grown = f"json_insert({col(name)}, '$[#]', {value})"
            length = "json_array_length"
        updates[name] = (
            f"CASE WHEN {length}({new(name)}) = 0 OR {length}({col(name)}) >= {cap} "
            f"OR {known} THEN {col(name)} ELSE {grown} END"
        )
    columns = ", ".join(name_of(name) for name in _COLUMNS)
    placeholders = ", ".join(["%s"] * len(_COLUMNS))
    key = ", ".join(name_of(name) for name in _KEY)
    assignments = ", ".join(f"{name_of(name)} = {expr}" for name, expr in updates.items())
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608 (names from the model)
        f"ON CONFLICT ({key}) DO UPDATE SET {assignments} RETURNING {name_of('count')}"
    )


def _earlier_minutes(refusal: _Refusal, *, now: datetime):
    """This kind's rows from this source for minutes already over, locked (rows another
    transaction is sealing are left to it)."""
    return RepeatCount.objects.select_for_update(skip_locked=True).filter(
        source=refusal.source,
        action=refusal.action,
        outcome=refusal.outcome,
        kind=refusal.kind,
        minute__lt=_minute(now),
    )


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def record_fields(row: RepeatCount) -> dict:
    """The counted record a row's repeats are sealed as: what `_seal` chains, and what the audit
    pages and exports show of a minute still being counted (marked as not sealed yet)."""
    kind = KINDS.get(row.kind)
    return {
        "actor_id": row.actor_id,
        "actor_username": row.actor_username,
        "action": row.action,
        "via": row.via,
        "deployment": row.deployment,
        "meeting_id": row.meeting_id,
        "outcome": row.outcome,
        "http_status": row.http_status,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "detail": row.detail or (kind.words if kind else ""),
        # Sealed by whatever request or command came by: its request id is not the repeats'.
        "request_id": "",
        "calls": 0,
        "repeats": row.count,
        "tally": {
            "kind": "repeats",
            "source": row.source,
            "from": _iso(row.first_at),
            "to": _iso(row.last_at),
            "sample": row.sample,
            "distinct": len(row.seen),
        },
    }


def _seal(row: RepeatCount) -> None:
    """Turn one finished minute's (locked) row into its counted record and delete it, in the
    caller's transaction: both happen or neither."""
    if row.count > 0:
        chain.append(**record_fields(row))
    _forget(row)


def _forget(row: RepeatCount) -> None:
    RepeatCount.objects.filter(pk=row.pk).delete()


def seal_past(*, now: datetime | None = None) -> int:
    """Seal every finished minute's counts into chained counted records; return how many records
    were written. Each row in its own transaction (its record and its deletion together), so a
    crash loses or repeats nothing, and two sealers at once seal each row once."""
    before = _minute(now or timezone.now())
    written = 0
    pending = RepeatCount.objects.filter(minute__lt=before).order_by("minute", "pk")
    for pk in list(pending.values_list("pk", flat=True)):
        with transaction.atomic():
            row = RepeatCount.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if row is None:
                continue  # sealed meanwhile, or being sealed by another process
            _seal(row)
            written += row.count > 0
    return written


def requests_on_record(**entry_filter: str) -> int:
    """Requests the log stands for, of entries matching `entry_filter` (field=value of
    `AuditEntry` and `RepeatCount` alike, e.g. action=…): each entry's `request_count` plus the
    repeats counted but not yet sealed. Every refusal made is here exactly once."""
    sealed = AuditEntry.objects.filter(**entry_filter).aggregate(total=Sum(Coalesce("repeats", 1)))[
        "total"
    ]
    unsealed = RepeatCount.objects.filter(**entry_filter).aggregate(total=Sum("count"))["total"]
    return (sealed or 0) + (unsealed or 0)
