"""The one lookup pipeline: a staff member's lookups of one meeting or many, end to end. Each
meeting goes through the same steps (reference -> deployment -> token -> lookup limit -> the call
counted in its span -> Connvo -> its outcome recorded), and each answer becomes what the audit
log keeps through one mapping (`audit_fields`).

The meeting page, its live refresh, the triage table, the watch list and `manage.py
connvo_lookup` all come through `look_up()`, so they behave and are audited alike; an answer
Connvo pushes to an open page (meetings/views/push.py) through `record_pushed()`, into the same
span and the same records. Every Connvo
call is counted durably before it is made (audit/spans.py), so a worker killed mid-call leaves it
on record. A first look is then a full chained entry; a live refresh only completes its span's
count (sealed into the chain later, in parts). Only the Connvo calls of a table run in a pool's
threads: tokens, the limit and the audit writes are handled in the caller's thread, so no thread
opens a database connection of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit import repeats, spans
from audit.models import Action, Via
from audit.services import Origin, record, record_many, remember_seen
from connvo_admin.capacity import waiting_on_upstream
from connvo_admin.meeting_ids import parse_meeting_id
from connvo_admin.outcomes import LookupFailed, Outcome

from . import connvo, credentials, ratelimit
from .deployments import Deployment, get_deployment

logger = logging.getLogger(__name__)


class AuditUnavailable(LookupFailed):
    """The audit entry could not be written, so the lookup's result must not be shown."""

    outcome = Outcome.AUDIT_UNAVAILABLE

    def __init__(self) -> None:
        super().__init__(
            "The console could not record this lookup in the audit log, so it will not show the "
            "meeting. Try again in a moment; if it persists, tell the console's administrators."
        )


@dataclass(frozen=True, slots=True)
class Wanted:
    """A meeting to look up: a reference as given (an ID, or a link holding one)."""

    deployment: str
    meeting_ref: str


@dataclass(frozen=True, slots=True)
class Answer:
    """How one wanted meeting's lookup ended: Connvo's answer, or why there is none."""

    deployment: str
    meeting_id: str  # the ID read from the reference; the reference itself if it holds none
    lookup: connvo.Lookup | None = None
    error: LookupFailed | None = None
    span: str = ""  # the key of the span that counted its Connvo call ("" if none was made)

    @property
    def meeting(self) -> connvo.Meeting | None:
        return self.lookup.meeting if self.lookup else None

    @property
    def outcome(self) -> Outcome:
        return self.error.outcome if self.error else Outcome.FOUND


def look_up(
    *,
    user: AbstractBaseUser,
    origin: Origin,
    wanted: Sequence[Wanted],
    via: Via,
    span: str | None = None,
    polls_every: int | None = None,
) -> list[Answer]:
    """Look up every wanted meeting as `user`, at most CONNVO_TABLE_CONCURRENCY at a time.

    A first look (`span` None; `via` page, table or cli) opens a span for the page and records
    each answer as a full chained entry. A live refresh passes the page's span key (`span`,
    "" when the page has none; `via` refresh for a meeting page, table for a table or the watch
    list): its calls are counted in the page's spans, or in new ones when the key is not this
    staff member's. `polls_every`: the page's interval, which says when it counts as closed.

    Returns one Answer per wanted meeting, in order, each on record before it is returned.
    Raises AuditUnavailable if a call cannot be counted or its answer recorded (then nothing
    may be shown)."""
    refreshing = span is not None or via == Via.REFRESH
    answers: list[Answer | None] = [None] * len(wanted)
    to_ask: list[tuple[int, Deployment, str, str]] = []
    tokens: dict[str, tuple[Deployment, str] | LookupFailed] = {}
    refused: ratelimit.LookupLimitReached | None = None
    for index, item in enumerate(wanted):
        meeting_id = item.meeting_ref.strip()[:64]
        try:
            meeting_id = parse_meeting_id(item.meeting_ref)
            deployment, token = _credential(tokens, user, origin, item.deployment)
            if refused is None:
                ratelimit.count_lookup(user=user)
        except ratelimit.LookupLimitReached as error:
            refused = error
        except AuditUnavailable:
            raise
        except LookupFailed as failure:
            answers[index] = Answer(item.deployment, meeting_id, error=failure)
            continue
        if refused is not None:
            # Not asked: the limit was reached by this lookup or an earlier one of the same list.
            limit = ratelimit.LookupLimitReached(refused.message, retry_after=refused.retry_after)
            answers[index] = Answer(item.deployment, meeting_id, error=limit)
            continue
        to_ask.append((index, deployment, token, meeting_id))

    counted = _count(to_ask, origin=origin, via=via, span=span, polls_every=polls_every)
    for (index, _, _, meeting_id), answer in zip(to_ask, _ask(to_ask), strict=True):
        key = counted.key if counted else ""
        if isinstance(answer, LookupFailed):
            answers[index] = Answer(wanted[index].deployment, meeting_id, error=answer, span=key)
        else:
            answers[index] = Answer(wanted[index].deployment, meeting_id, lookup=answer, span=key)
    _record(answers, origin=origin, via=via, counted=counted, refreshing=refreshing)
    if not refreshing:
        # A first look names the meeting for later pages; a refresh would only rewrite it.
        remember_seen(
            [
                (a.deployment, a.meeting_id, a.meeting.title or "", str(a.meeting.state or ""))
                for a in answers
                if a.meeting is not None
            ],
            username=origin.username,
        )
    return answers


def record_pushed(
    *,
    origin: Origin,
    deployment: Deployment,
    meeting_id: str,
    result: connvo.Lookup | LookupFailed,
    span: str,
    polls_every: int | None = None,
    via: Via = Via.REFRESH,
) -> Answer:
    """Put an answer Connvo pushed on a page's subscription (meetings/sync.py) on record before it
    is shown: one call counted in the page's span (`span`: its key, or "" for a new span), then
    its outcome, as a live refresh's call is (`via`: refresh for a meeting page, table for a
    table or the watch list, as their refreshes). Returns the Answer, its `span` the key it was
    counted under. Raises AuditUnavailable when it cannot be recorded (then it must not be
    shown). No limit is counted: the agent asked for nothing, Connvo sent it (opening the
    stream counted the subscription)."""
    to_ask = [(0, deployment, "", meeting_id)]
    counted = _count(to_ask, origin=origin, via=via, span=span, polls_every=polls_every)
    # One pushed message is one answer from Connvo, whatever its "attempts" says (no request was
    # retried): so recorded answers == answers Connvo sent.
    if isinstance(result, LookupFailed):
        result.attempts = 1
        answer = Answer(deployment.name, meeting_id, error=result, span=counted.key)
    else:
        result = dataclasses.replace(result, attempts=1)
        answer = Answer(deployment.name, meeting_id, lookup=result, span=counted.key)
    _record([answer], origin=origin, via=via, counted=counted, refreshing=True)
    return answer


def pushed_quiet_after(held_every: float) -> int:
    """Seconds a span of a page on push stays open without a call: as a polling page's, its
    "interval" being how often its stream holds its spans open (meetings/views/push.py), so
    that a stream that goes on quietly is never taken for a closed page, and one whose worker
    died is sealed within a few of those intervals."""
    return _quiet_after(math.ceil(held_every), calls=1)


def open_subscriptions(
    *, user: AbstractBaseUser, meetings: Sequence[tuple[str, str]], span: str = ""
) -> None:
    """A page opening its push stream (meetings/views/push.py) to follow `meetings`
    (deployment, meeting id): one lookup per meeting counted against the agent's limit, as a look
    of them is; raises LookupLimitReached before any subscription is made. Pushed answers count
    nothing.

    The page's first stream, opened within the minute after the page looked its meetings up,
    counts none of the meetings that look counted: opening a page is one look at each of its
    meetings, whether it then polls or listens (a table of 40 rows is 40 lookups, not 80, and
    opens its stream at once under the default limit of 60). Any later stream of the page (after
    a drop, a restart of the push server) counts every meeting again, as a polling refresh
    would."""
    already = _looked_up_by_the_page(user=user, meetings=meetings, span=span)
    for _ in range(len(meetings) - already):
        ratelimit.count_lookup(user=user)


def _looked_up_by_the_page(
    *, user: AbstractBaseUser, meetings: Sequence[tuple[str, str]], span: str
) -> int:
    """How many of `meetings` the page's first look counted within the limit's window, if this
    is the page's first stream (at most one per page key is: the shared cache says which)."""
    since = timezone.now() - timedelta(seconds=ratelimit.WINDOW_SECONDS)
    looked = spans.first_looks(key=span, actor_id=user.pk, meetings=meetings, since=since)
    if not looked or not ratelimit.first_stream_of(user=user, page=span):
        return 0
    return looked


def subscription_token(*, user: AbstractBaseUser, origin: Origin, deployment_name: str) -> str:
    """The agent's access token for a push subscription, renewed through WorkOS when due, by the
    same credentials a lookup uses."""
    return credentials.access_token_for(user=user, deployment_name=deployment_name, origin=origin)


def span_key(answers: Sequence[Answer], default: str = "") -> str:
    """The key of the span the answers' calls were counted in (`default` when none was made)."""
    return next((answer.span for answer in answers if answer.span), default)


def _count(
    to_ask: list[tuple[int, Deployment, str, str]],
    *,
    origin: Origin,
    via: Via,
    span: str | None,
    polls_every: int | None,
) -> spans.Counted | None:
    """Count the calls about to be made in the page's spans, before any is made."""
    if not to_ask:
        return None
    try:
        return spans.count_calls(
            key=span or "",
            origin=origin,
            # A meeting page's span holds its refreshes; a table's, its rows' refreshes.
            via=Via.REFRESH if via in (Via.PAGE, Via.REFRESH) else via,
            meetings=[(deployment.name, meeting_id) for _, deployment, _, meeting_id in to_ask],
            quiet_after=_quiet_after(polls_every, calls=len(to_ask)),
        )
    except DatabaseError:
        logger.exception("Connvo calls for a lookup by %s could not be counted", origin.username)
        raise AuditUnavailable from None


def _quiet_after(polls_every: int | None, *, calls: int) -> int:
    """Seconds without a call after which a page counts as closed and its span is sealed: three
    of its intervals, and never less than twice the longest its calls can take (all retries, a
    table's calls queued in its pool), so that no call still in flight is sealed unanswered."""
    attempt = settings.CONNVO_CONNECT_TIMEOUT + settings.CONNVO_READ_TIMEOUT + 1
    longest = attempt * (settings.CONNVO_RETRIES + 1)
    rounds = math.ceil(calls / settings.CONNVO_TABLE_CONCURRENCY)
    interval = polls_every or settings.CONNVO_POLL_INTERVAL
    return math.ceil(max(3 * interval, 2 * longest * rounds))


def _credential(
    tokens: dict[str, tuple[Deployment, str] | LookupFailed],
    user: AbstractBaseUser,
    origin: Origin,
    name: str,
) -> tuple[Deployment, str]:
    """The deployment and the agent's access token for it, found once per deployment a list
    names; raises the `LookupFailed` that ends every lookup on that deployment."""
    if name not in tokens:
        try:
            deployment = get_deployment(name)
            tokens[name] = (
                deployment,
                credentials.access_token_for(
                    user=user, deployment_name=deployment.name, origin=origin
                ),
            )
        except LookupFailed as failure:
            tokens[name] = failure
        except DatabaseError:
            # Renewing the session could not be recorded (or stored): show nothing.
            logger.exception("credential for a lookup by %s could not be prepared", origin.username)
            raise AuditUnavailable from None
    found = tokens[name]
    if isinstance(found, LookupFailed):
        raise found
    return found


def _ask(
    to_ask: list[tuple[int, Deployment, str, str]],
) -> list[connvo.Lookup | LookupFailed]:
    """Connvo's answers, in order: one call in this thread, several in a pool."""
    if not to_ask:
        return []
    with waiting_on_upstream():
        if len(to_ask) == 1:
            return [_ask_one(*to_ask[0][1:])]
        workers = min(settings.CONNVO_TABLE_CONCURRENCY, len(to_ask))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="connvo-table") as pool:
            return list(pool.map(lambda job: _ask_one(*job[1:]), to_ask))


def _ask_one(deployment: Deployment, token: str, meeting_id: str) -> connvo.Lookup | LookupFailed:
    try:
        return connvo.get_meeting(deployment=deployment, token=token, meeting_id=meeting_id)
    except LookupFailed as failure:
        return failure


def audit_fields(answer: Answer) -> dict:
    """What the audit log keeps of one answer, whichever page or command asked."""
    error = answer.error
    reply = error or answer.lookup
    return {
        "action": Action.LOOKUP,
        "deployment": answer.deployment[:64],
        "meeting_id": answer.meeting_id,
        "outcome": answer.outcome,
        "http_status": reply.http_status,
        "latency_ms": reply.latency_ms,
        "connvo_request_id": error.request_id if error else None,
        "detail": error.detail if error else _drift_note(answer.meeting),
    }


def _record(
    answers: list[Answer],
    *,
    origin: Origin,
    via: Via,
    counted: spans.Counted | None,
    refreshing: bool,
) -> None:
    """Put every answer on record before any is shown: a first look's call as a full chained
    entry (`calls` = its requests), sealed in its span in the same transaction; a refresh's as
    its span's outcome count; a lookup refused before any call as a full entry with `calls=0`;
    one refused by the lookup limit as a (counted) refusal."""
    called = [answer for answer in answers if answer.span]
    entries = []
    for answer in answers:
        if isinstance(answer.error, ratelimit.LookupLimitReached):
            _refused(answer, origin=origin, via=via)
        elif not (refreshing and answer.span):
            entries.append(
                audit_fields(answer)
                | {"via": via, "calls": _attempts(answer) if answer.span else 0}
            )
    try:
        if refreshing:
            if called:
                spans.record_answers(counted, [_answered(answer) for answer in called])
            _append(entries, origin=origin)
        else:
            # The full entries and their calls' seal in the span, all or none: a crash can
            # neither lose the calls nor record them twice.
            with transaction.atomic():
                if called:
                    late = spans.record_answers(
                        counted, [_answered(answer) for answer in called], sealed=True
                    )
                    entries = _late_first_looks(entries, late, counted)
                _append(entries, origin=origin)
    except DatabaseError:
        # Fail closed: an unrecorded lookup must not show anything.
        logger.exception("audit records for a lookup by %s could not be written", origin.username)
        raise AuditUnavailable from None
    if refreshing and counted is not None:
        spans.seal_if_due(counted)
    _log(answers, origin=origin, via=via)


def _late_first_looks(
    entries: list[dict], late: list[spans.Answered], counted: spans.Counted
) -> list[dict]:
    """The full entries, those of first looks whose span was sealed while Connvo answered made
    late answers': the sealed part holds their first call already."""
    if not late:
        return entries
    by_meeting = {(answer.deployment, answer.meeting_id): answer for answer in late}
    return [
        entry | spans.late_answer_fields(counted, answer, detail=entry["detail"])
        if (answer := by_meeting.get((entry["deployment"], entry["meeting_id"]))) and entry["calls"]
        else entry
        for entry in entries
    ]


def _append(entries: list[dict], *, origin: Origin) -> None:
    if len(entries) == 1:
        record(origin=origin, **entries[0])
    elif entries:
        record_many(origin=origin, entries=entries)


def _refused(answer: Answer, *, origin: Origin, via: Via) -> None:
    """A lookup the console's limit refused (no call made): counted per staff member, so an
    agent over the limit adds a handful of chained entries, not one per meeting and refresh."""
    fields = audit_fields(answer)
    repeats.refused(
        origin=origin,
        action=Action.LOOKUP,
        outcome=fields["outcome"],
        via=via,
        deployment=fields["deployment"],
        meeting_id=fields["meeting_id"],
        detail=fields["detail"],
        source=origin.username,
    )


def _attempts(answer: Answer) -> int:
    """The Connvo requests an answered lookup took (retries included)."""
    return (answer.error or answer.lookup).attempts


def _answered(answer: Answer) -> spans.Answered:
    fields = audit_fields(answer)
    return spans.Answered(
        deployment=fields["deployment"],
        meeting_id=fields["meeting_id"],
        outcome=fields["outcome"],
        attempts=_attempts(answer),
        request_id=fields["connvo_request_id"] or "",
    )


def _log(answers: list[Answer], *, origin: Origin, via: Via) -> None:
    if len(answers) == 1:
        (answer,) = answers
        reply = answer.error or answer.lookup
        logger.info(
            "lookup user=%s deployment=%s meeting=%s outcome=%s status=%s latency_ms=%s",
            origin.username,
            answer.deployment,
            answer.meeting_id,
            answer.outcome,
            reply.http_status,
            reply.latency_ms,
        )
    else:
        counts = Counter(str(answer.outcome) for answer in answers)
        logger.info(
            "table lookup user=%s via=%s meetings=%s outcomes=%s",
            origin.username,
            via,
            len(answers),
            dict(counts),
        )


def _drift_note(meeting: connvo.Meeting) -> str:
    """Found, but not quite as the contract says (a new state, a missing field): noted for the
    auditors and the console team."""
    return f"contract drift: {meeting.describe_drift()}" if meeting.drift else ""
