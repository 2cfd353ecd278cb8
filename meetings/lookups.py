"""The one lookup pipeline: a staff member's lookups of one meeting or many, end to end. Each
meeting goes through the same steps (reference -> deployment -> token -> lookup limit -> Connvo
-> audit entry), and each answer becomes its audit entry through one mapping.

The meeting page, its live refresh, the triage table, the watch list and `manage.py
connvo_lookup` all come through `look_up()`, so they behave and are audited alike. Only the Connvo
calls of a table run in a pool's threads: tokens, the limit and the audit entries are handled in
the caller's thread, so no thread opens a database connection of its own.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError

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

    @property
    def meeting(self) -> connvo.Meeting | None:
        return self.lookup.meeting if self.lookup else None

    @property
    def outcome(self) -> Outcome:
        return self.error.outcome if self.error else Outcome.FOUND


def audited_lookup(
    *,
    user: AbstractBaseUser,
    origin: Origin,
    deployment_name: str,
    meeting_ref: str,
    via: Via,
) -> connvo.Lookup:
    """One meeting: its lookup, or raise `LookupFailed` (audited), or `AuditUnavailable`."""
    (answer,) = look_up(
        user=user, origin=origin, wanted=[Wanted(deployment_name, meeting_ref)], via=via
    )
    if answer.error is not None:
        raise answer.error
    return answer.lookup


def look_up(
    *, user: AbstractBaseUser, origin: Origin, wanted: Sequence[Wanted], via: Via
) -> list[Answer]:
    """Look up every wanted meeting as `user`, at most CONNVO_TABLE_CONCURRENCY at a time.

    Returns one Answer per wanted meeting, in order, each recorded in the audit log. Raises
    AuditUnavailable if the entries cannot be written (then nothing may be shown)."""
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

    for (index, _, _, meeting_id), answer in zip(to_ask, _ask(to_ask), strict=True):
        if isinstance(answer, LookupFailed):
            answers[index] = Answer(wanted[index].deployment, meeting_id, error=answer)
        else:
            answers[index] = Answer(wanted[index].deployment, meeting_id, lookup=answer)
    _record(answers, origin=origin, via=via)
    if via != Via.REFRESH:
        # A first look names the meeting for later pages; a refresh would only rewrite it.
        remember_seen(
            [
                (a.deployment, a.meeting_id, a.meeting.title or "", str(a.meeting.state or ""))
                for a in answers
                if a.meeting is not None
            ]
        )
    return answers


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


def _record(answers: list[Answer], *, origin: Origin, via: Via) -> None:
    entries = [audit_fields(answer) | {"via": via} for answer in answers]
    try:
        # Not inside a transaction of ours: the entries are committed before this returns (one
        # entry together with other lookups' entries written at the same moment, several all or
        # none: audit/chain.py), and a failed write leaves the request's connection usable.
        if len(entries) == 1:
            record(origin=origin, **entries[0])
        else:
            record_many(origin=origin, entries=entries)
    except DatabaseError:
        # Fail closed: an unrecorded lookup must not show anything.
        logger.exception("audit entries for a lookup by %s could not be written", origin.username)
        raise AuditUnavailable from None
    if len(answers) == 1:
        (answer,) = answers
        logger.info(
            "lookup user=%s deployment=%s meeting=%s outcome=%s status=%s latency_ms=%s",
            origin.username,
            answer.deployment,
            answer.meeting_id,
            answer.outcome,
            entries[0]["http_status"],
            entries[0]["latency_ms"],
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
