"""Spans: an open page's Connvo calls for one meeting, counted as they happen and sealed into the
audit chain in parts, instead of one chained entry per live refresh (issue #22). The one home of
span storage.

The lookup pipeline (meetings/lookups.py) counts every call here *before* making it
(`count_calls`: one upsert of the spans, no chain lock), and its outcome once it is answered
(`record_answers`). `seal()` appends what was answered and not yet sealed as one chained entry
per span: while the page stays open at least every AUDIT_SPAN_SEAL_EVERY seconds, and finally
when it goes quiet, when calls counted but never answered (a worker killed mid-call) are sealed
as unanswered. So every call Connvo received is in the chain's `calls` + every open span's
unsealed calls (`calls_on_record()`), whenever a process dies; the only calls on record that
Connvo may not have received are those a process counted and died before sending, and they are
sealed as unanswered."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from . import records
from .models import Action, AuditEntry, Span, SpanCount
from .services import Origin, record_many, who

logger = logging.getLogger(__name__)

# A page's span key as it travels in its poller's values: `new_key()`'s 22 characters, up to
# the column's 32. Anything else from a page is ignored (a new span is opened).
KEY = re.compile(r"[A-Za-z0-9_-]{22,32}")
# Spans sealed in one transaction (one lock of the chain head) by `audit_seal`.
SEAL_BATCH = 100


def new_key() -> str:
    return secrets.token_urlsafe(16)


def usable_key(text: str) -> str:
    """`text` if it has the shape of a span key, else "" (read as: no key)."""
    return text if KEY.fullmatch(text) else ""


# --- Counting calls before they are made ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counted:
    """Calls counted in spans before they were made: the key they were counted under (the page's,
    or a new one) and each meeting's span."""

    key: str
    spans: dict[tuple[str, str], int]  # (deployment, meeting id) -> span id
    # Who counted them, and how: what a late answer's entry says (`record_answers`).
    origin: Origin
    via: str
    due: frozenset[int] = frozenset()  # spans whose last seal is older than AUDIT_SPAN_SEAL_EVERY


class _NotTheirs(Exception):
    """The key names a span of one of these meetings that is someone else's."""


def count_calls(
    *,
    key: str,
    origin: Origin,
    via: str,
    meetings: Sequence[tuple[str, str]],
    quiet_after: int,
) -> Counted:
    """Count one Connvo call per (deployment, meeting id), durably, before any is made: one
    statement (spans that exist are updated, `calls = calls + 1`, the others created, each open
    until `quiet_after` seconds from now), committed before this returns, never under the chain
    head's lock. A key that is malformed,
    or that names another staff member's span of one of these meetings, is replaced by a new
    one: a span is only ever found for the same actor, deployment and meeting. Raises
    `DatabaseError` when the count cannot be written (then no call may be made)."""
    wanted = Counter((deployment[:64], meeting_id[:64]) for deployment, meeting_id in meetings)
    key = usable_key(key) or new_key()
    # One meeting (every refresh of a meeting page): its one row is written by one statement or
    # not at all (someone else's span is neither updated nor created), and one statement is
    # atomic on its own, so it needs no transaction of its own: two round trips fewer. Several:
    # a transaction undoes the rows written when one of them turns out to be someone else's.
    alone = len(wanted) == 1
    while True:
        try:
            with contextlib.nullcontext() if alone else transaction.atomic():
                returned = _upsert_spans(key, origin, via, wanted, quiet_after)
                if len(returned) != len(wanted):
                    raise _NotTheirs
        except _NotTheirs:
            key = new_key()  # rolled back: nothing was counted under the other key
            continue
        return Counted(
            key=key,
            spans={(row[1], row[2]): row[0] for row in returned},
            origin=origin,
            via=via,
            due=frozenset(row[0] for row in returned if row[3]),
        )


def _upsert_spans(
    key: str, origin: Origin, via: str, wanted: Counter, quiet_after: int
) -> list[tuple]:
    now = timezone.now()
    fields = [
        "key",
        "deployment",
        "meeting_id",
        "actor",
        "actor_username",
        "via",
        "client_ip",
        "user_agent",
        "opened_at",
        "last_at",
        "calls",
        "sealed_calls",
        "first_request_id",
        "last_request_id",
        "open_until",
    ]
    columns = [Span._meta.get_field(name) for name in fields]
    values = []
    # Sorted, so that two statements on one page's spans lock them in the same order.
    for (deployment, meeting_id), calls in sorted(wanted.items()):
        row = Span(
            key=key,
            deployment=deployment,
            meeting_id=meeting_id,
            actor=origin.user,
            via=via,
            **who(origin),
            opened_at=now,
            last_at=now,
            calls=calls,
            open_until=now + timedelta(seconds=quiet_after),
        )
        values += [
            column.get_db_prep_save(getattr(row, column.attname), connection) for column in columns
        ]
    quote = connection.ops.quote_name
    table = quote(Span._meta.db_table)
    names = ", ".join(quote(column.column) for column in columns)
    rows = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(wanted))
    due_before = connection.ops.adapt_datetimefield_value(now - _seal_every())
    # The span found is updated only if it is this actor's (no row comes back otherwise).
    sql = (
        f"INSERT INTO {table} ({names}) VALUES {rows} "  # noqa: S608 (names from the model)
        f"ON CONFLICT ({quote('key')}, {quote('deployment')}, {quote('meeting_id')}) DO UPDATE SET "
        f"{quote('calls')} = {table}.{quote('calls')} + excluded.{quote('calls')}, "
        f"{quote('last_at')} = excluded.{quote('last_at')}, "
        f"{quote('open_until')} = excluded.{quote('open_until')} "
        f"WHERE {table}.{quote('actor_id')} = excluded.{quote('actor_id')} "
        f"RETURNING {quote('id')}, {quote('deployment')}, {quote('meeting_id')}, "
        f"CASE WHEN COALESCE({quote('sealed_at')}, {quote('opened_at')}) < %s THEN 1 ELSE 0 END"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, due_before])
        return cursor.fetchall()


# --- Recording answers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answered:
    """How one counted call ended."""

    deployment: str
    meeting_id: str
    outcome: str
    # The Connvo requests it took: 1, more when it was retried, 0 when none was sent after all.
    attempts: int = 1
    request_id: str = ""


def record_answers(
    counted: Counted, answered: Sequence[Answered], *, sealed: bool = False
) -> list[Answered]:
    """Complete the counted calls with their outcomes (`SpanCount` + 1 per outcome, the span's
    first and last Connvo request id). With `sealed`, the calls are already in the chain (a
    first look's full entry, appended in the caller's transaction, which this joins). An answer
    whose span was sealed finally meanwhile (a slow call that outlived its page) is a late
    answer: appended here (`_record_late`), or, with `sealed`, returned, for the caller to make
    its full entry a late answer's (`late_answer_fields`). Raises `DatabaseError` when it cannot
    be written: then the answer must not be shown."""
    per_outcome: Counter = Counter()
    per_span: dict[int, list[Answered]] = {}
    for answer in answered:
        span_id = counted.spans[(answer.deployment[:64], answer.meeting_id[:64])]
        per_span.setdefault(span_id, []).append(answer)
        if answer.attempts:
            per_outcome[(span_id, str(answer.outcome)[:32])] += answer.attempts
    now = timezone.now()
    updates = {}
    for span_id, answers in per_span.items():
        changes = {}
        # Retries were made after the count; a call not made after all was counted anyway.
        extra = sum(answer.attempts - 1 for answer in answers)
        if extra:
            changes["calls"] = F("calls") + extra
        if sealed:
            changes |= {"sealed_calls": F("sealed_calls") + sum(a.attempts for a in answers)}
            changes["sealed_at"] = now
        request_ids = [answer.request_id[:64] for answer in answers if answer.request_id]
        if request_ids and not sealed:
            # The part's first and last: sealing starts the next part with neither.
            changes["first_request_id"] = Case(
                When(first_request_id="", then=Value(request_ids[0])),
                default=F("first_request_id"),
            )
            changes["last_request_id"] = request_ids[-1]
        if changes:
            updates[span_id] = changes
    # Most answers (a refresh found its meeting, first try) change only the counts: one
    # statement, atomic on its own, with no transaction of its own (two round trips fewer).
    # Spans before their counts, the order in which `seal` locks them, so the two queue.
    with transaction.atomic(savepoint=False) if updates else contextlib.nullcontext():
        place = {span_id: meeting for meeting, span_id in counted.spans.items()}
        for span_id, changes in sorted(updates.items(), key=lambda item: place[item[0]]):
            Span.objects.filter(pk=span_id).update(**changes)
        written = _upsert_counts(per_outcome, sealed=sealed)
    gone = {span_id for span_id, _ in per_outcome} - written
    late = [answer for span_id in gone for answer in per_span[span_id]]
    if late and not sealed:
        _record_late(counted, late)
    return late if sealed else []


def _upsert_counts(per_outcome: Counter, *, sealed: bool) -> set[int]:
    """Add the answers to their spans' counts, and return the spans written: a span sealed
    finally (deleted) since its call was counted is left out, in the same one statement (no
    query more per refresh), instead of failing the foreign key when the transaction commits.

    A final seal under way holds its spans locked FOR UPDATE from before it reads their counts
    until it has deleted them; so on PostgreSQL the statement locks the spans it joins FOR KEY
    SHARE (which only a deletion, or a change of the key, waits for): it waits for such a seal
    and then finds its span gone (a late answer), instead of adding to counts the seal has
    already summed, or referring to a span deleted before it commits. (SQLite runs one writer
    at a time.)"""
    if not per_outcome:
        return set()
    quote = connection.ops.quote_name
    table = quote(SpanCount._meta.db_table)
    spans = quote(Span._meta.db_table)
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(per_outcome))
    values = []
    for (span_id, outcome), calls in sorted(per_outcome.items()):
        values += [span_id, outcome, calls, calls if sealed else 0]
    # In the order in which sealing locks them (a page's spans share their key).
    lock = (
        f"ORDER BY {spans}.{quote('key')}, {spans}.{quote('deployment')}, "
        f"{spans}.{quote('meeting_id')} FOR KEY SHARE OF {spans} "
        if connection.vendor == "postgresql"
        else ""
    )
    # VALUES' columns are column1... on both databases; SQLite needs the WHERE to read the
    # ON CONFLICT that follows as the upsert's (not a join's).
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({quote('span_id')}, {quote('outcome')}, {quote('calls')}, "  # noqa: S608 (names from the model)
            f"{quote('sealed')}) SELECT answer.column1, answer.column2, answer.column3, "
            f"answer.column4 FROM (VALUES {rows}) AS answer, {spans} "
            f"WHERE {spans}.{quote('id')} = answer.column1 {lock}"
            f"ON CONFLICT ({quote('span_id')}, {quote('outcome')}) DO UPDATE SET "
            f"{quote('calls')} = {table}.{quote('calls')} + excluded.{quote('calls')}, "
            f"{quote('sealed')} = {table}.{quote('sealed')} + excluded.{quote('sealed')} "
            f"RETURNING {quote('span_id')}",
            values,
        )
        return {row[0] for row in cursor.fetchall()}


def _late_detail(attempts: int) -> str:
    # Retries are made after the count: the sealed part does not have them.
    adds = f"no call but its {attempts - 1} retries" if attempts > 1 else "no call"
    return (
        "Answered after its page's span was sealed: the call was already counted as unanswered "
        f"there, so this entry adds {adds}."
    )


def late_answer_fields(counted: Counted, answer: Answered, *, detail: str = "") -> dict:
    """What makes an entry the outcome of a call whose span was sealed finally before it was
    answered (and deleted): the call is in the sealed part as unanswered, so the entry stands
    for no call, only for its retries (made after the count), and its tally says so, for the
    figures (audit/records.py). The sum of `calls` on record stays the calls Connvo received.
    `detail`, the entry's own, follows the note."""
    return {
        "detail": " ".join(filter(None, [_late_detail(answer.attempts), detail])),
        "calls": answer.attempts - 1,
        "tally": {"kind": records.LATE_ANSWER, "span": counted.key},
    }


def _record_late(counted: Counted, answers: list[Answered]) -> None:
    """Append the outcome of each refresh's call whose span was sealed finally meanwhile."""
    entries = [
        {
            "action": Action.LOOKUP,
            "via": counted.via,
            "deployment": answer.deployment,
            "meeting_id": answer.meeting_id,
            "outcome": answer.outcome,
            "connvo_request_id": answer.request_id,
        }
        | late_answer_fields(counted, answer)
        for answer in answers
    ]
    record_many(origin=counted.origin, entries=entries)


# --- Sealing ------------------------------------------------------------------------------------


def _seal_every() -> timedelta:
    return timedelta(seconds=settings.AUDIT_SPAN_SEAL_EVERY)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def seal(span_ids: Iterable[int], *, final: bool) -> list[AuditEntry]:
    """Append each span's answered-but-unsealed calls to the chain (a sealed part: one entry per
    outcome, most frequent first, each with its `calls` and the part's `tally`), and count them
    sealed, in one transaction with the appends. `final` (the page went quiet): calls counted but
    never answered are sealed as `unanswered`, and the span is deleted; a span that is no longer
    quiet is left alone. Returns the entries written. Only sealing takes the chain head's lock."""
    entries = []
    now = timezone.now()
    with transaction.atomic():
        # Locked in one order (as counting locks a page's spans), so sealers and counters queue
        # instead of deadlocking. A seal that only seals a part takes NO KEY UPDATE, which lets
        # answers keep adding to the counts meanwhile (they are sealed with the next part); a
        # final seal takes FOR UPDATE, which answers wait for (`_upsert_counts`), so none is
        # added to a count it has already read and is about to delete.
        spans = list(
            Span.objects.select_for_update(no_key=not final, of=("self",))
            .select_related("actor")
            .filter(pk__in=list(span_ids))
            .order_by("key", "deployment", "meeting_id")
        )
        if final:
            spans = [span for span in spans if span.is_quiet(now)]
        counts: dict[int, list[SpanCount]] = {span.pk: [] for span in spans}
        for count in SpanCount.objects.filter(span__in=spans).order_by("outcome"):
            counts[count.span_id].append(count)
        for span in spans:
            entries += _seal_part(span, counts[span.pk], final=final, now=now)
        if final:
            Span.objects.filter(pk__in=[span.pk for span in spans]).delete()
    return entries


def _seal_part(
    span: Span, counts: list[SpanCount], *, final: bool, now: datetime
) -> list[AuditEntry]:
    outcomes = {count.outcome: count.calls - count.sealed for count in counts}
    outcomes = {outcome: calls for outcome, calls in outcomes.items() if calls > 0}
    answered = sum(outcomes.values())
    unanswered = max(span.calls - span.sealed_calls - answered, 0) if final else 0
    part = answered + unanswered
    if not final:
        Span.objects.filter(pk=span.pk).update(
            sealed_calls=F("sealed_calls") + part,
            sealed_at=now,
            first_request_id="",
            last_request_id="",
        )
    if not part:
        return []
    for count in counts:
        if count.calls > count.sealed:
            SpanCount.objects.filter(pk=count.pk).update(
                sealed=F("sealed") + (count.calls - count.sealed)
            )
    origin = Origin(
        user=span.actor,
        username=span.actor_username,
        client_ip=span.client_ip,
        user_agent=span.user_agent,
    )
    part_words = {
        "kind": records.SPAN,
        "span": span.key,
        "opened": _iso(span.opened_at),
        # The part began at the span's previous seal (its first look), or when it opened.
        "from": _iso(span.sealed_at or span.opened_at),
        "to": _iso(span.last_at),
        "first_request": span.first_request_id,
        "last_request": span.last_request_id,
        "final": final,
        "part": part,
    }
    # One record per outcome, the most frequent first, and one for the calls never answered: a
    # record's `outcome` is then what all its calls ended in, so filtering the log by an outcome
    # finds every call that ended in it (a partial index of that outcome: selectors), and the
    # figures need no correction for it.
    ended = sorted(outcomes.items(), key=lambda item: (-item[1], item[0]))
    if unanswered:
        ended.append((records.UNANSWERED, unanswered))
    return record_many(
        origin=origin,
        entries=[
            dict(
                action=Action.LOOKUP,
                via=span.via,
                deployment=span.deployment,
                meeting_id=span.meeting_id,
                outcome=outcome,
                calls=calls,
                # Sealed by whatever request or command came by (an auditor's page,
                # `audit_seal`, one of the page's own refreshes): its request id is not the
                # span's calls'. The span's first look is an entry of its own, with its
                # request's id.
                request_id="",
                tally={
                    **part_words,
                    "outcomes": {} if outcome == records.UNANSWERED else {outcome: calls},
                    "unanswered": calls if outcome == records.UNANSWERED else 0,
                },
            )
            for outcome, calls in ended
        ],
    )


def seal_quiet() -> list[AuditEntry]:
    """Seal, finally, every span whose page has gone quiet (closed: nothing counted nor held
    open until its `open_until`), and delete it."""
    quiet = Span.objects.filter(Span.quiet(timezone.now())).values_list("id", flat=True)
    return _in_batches(list(quiet), final=True)


def seal_due() -> list[AuditEntry]:
    """Seal the answered calls of every open span last sealed more than AUDIT_SPAN_SEAL_EVERY
    ago, so that no more than that much of a page's calls is ever outside the chain."""
    before = timezone.now() - _seal_every()
    due = Span.objects.filter(
        Q(sealed_at__lt=before) | Q(sealed_at=None, opened_at__lt=before),
        calls__gt=F("sealed_calls"),
    ).values_list("id", flat=True)
    return _in_batches(list(due), final=False)


def seal_what_is_due() -> tuple[list[AuditEntry], list[AuditEntry]]:
    """`seal_quiet()` then `seal_due()`: what `audit_seal` and the audit pages run."""
    return seal_quiet(), seal_due()


def seal_if_due(counted: Counted) -> None:
    """A refresh that finds its spans due seals them itself, failing open: the calls are counted
    and answered, and `audit_seal` seals what is left."""
    if not counted.due:
        return
    try:
        seal(counted.due, final=False)
    except DatabaseError:
        logger.exception("%d spans due a seal could not be sealed", len(counted.due))


def hold_open(*, key: str, actor_id: int, quiet_for: int) -> None:
    """A page that is open but asks nothing (its answers are pushed: meetings/views/push.py) keeps
    its spans from counting as quiet: each goes quiet `quiet_for` seconds from now at the
    earliest, however long ago its last call was (its `last_at` stays the last call counted: a
    sealed part says when its calls were). One statement, however many spans the page has.
    Raises `DatabaseError`."""
    held_until = timezone.now() + timedelta(seconds=quiet_for)
    # Never brought forward: a later deadline (a call counted meanwhile) stands.
    Span.objects.filter(key=key, actor_id=actor_id).update(
        open_until=Greatest(F("open_until"), Value(held_until))
    )


def seal_closed(*, key: str, actor_id: int) -> list[AuditEntry]:
    """The page's stream ended (closed, fallen back to polling, or its meetings ended): seal
    its spans with unsealed calls finally now, as `audit_seal` does once a page is quiet,
    instead of waiting until their `open_until`. Returns the entries written; raises
    `DatabaseError` (then `audit_seal` seals them once they are quiet)."""
    closing = Span.objects.filter(key=key, actor_id=actor_id, calls__gt=F("sealed_calls"))
    ids = list(closing.values_list("id", flat=True))
    if not ids:
        return []
    # Quiet since its last call: a call counted under this key after this (the page's own
    # refresh) sets its deadline again, and `seal` leaves that span alone.
    Span.objects.filter(pk__in=ids).update(open_until=F("last_at"))
    return _in_batches(ids, final=True)


def _in_batches(span_ids: list[int], *, final: bool) -> list[AuditEntry]:
    entries = []
    for start in range(0, len(span_ids), SEAL_BATCH):
        entries += seal(span_ids[start : start + SEAL_BATCH], final=final)
    return entries


# --- Reading ------------------------------------------------------------------------------------


def first_looks(
    *, key: str, actor_id: int, meetings: Sequence[tuple[str, str]], since: datetime
) -> int:
    """How many of `meetings` (deployment, meeting id) the page `key` of this staff member has
    looked up once, since `since`, and asked nothing more about: its first look, and no refresh
    or pushed answer after it."""
    wanted = {(deployment[:64], meeting_id[:64]) for deployment, meeting_id in meetings}
    if not key or not wanted:
        return 0
    looked = Span.objects.filter(
        key=key, actor_id=actor_id, calls=1, opened_at__gte=since
    ).values_list("deployment", "meeting_id")
    return len(wanted & set(looked))


def calls_on_record() -> int:
    """The Connvo calls on record: every chained entry's `calls` (entries from before spans: one
    per lookup), plus the calls every open span counted and has not sealed yet. Never fewer
    than the calls Connvo received; more only by calls counted by a process that died before
    sending them (sealed as unanswered)."""
    in_chain = AuditEntry.objects.aggregate(
        calls=Sum(
            Coalesce(
                "calls",
                Case(When(action=Action.LOOKUP, then=Value(1)), default=Value(0)),
                output_field=IntegerField(),
            )
        )
    )["calls"]
    unsealed = Span.objects.aggregate(calls=Sum(F("calls") - F("sealed_calls")))["calls"]
    return (in_chain or 0) + (unsealed or 0)
