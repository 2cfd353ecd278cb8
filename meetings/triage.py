"""Many meetings at once, for the triage table, the watch list and `connvo_lookup` with several
IDs: one agent's lookups of a list of meetings, asked of Connvo concurrently.

Like a single lookup (meetings/lookups.py), every meeting asked for is one audit entry and counts
against the agent's lookup limit. Only the Connvo calls run in the pool's threads: tokens, the
limit and the audit entries are handled in the caller's thread, so no thread opens a database
connection of its own.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError

from audit.models import Action, Via
from audit.services import Origin, record_many
from connvo_admin.capacity import waiting_on_upstream
from connvo_admin.outcomes import LiveStatus, LookupFailed, Outcome

from . import connvo, credentials, ratelimit
from .deployments import Deployment, get_deployment
from .live import PollPlan, fingerprint, plan_after_failure
from .lookups import AuditUnavailable

logger = logging.getLogger(__name__)

LIMIT_SHARE = 0.5  # of the agent's lookups per minute that one live table may use


@dataclass(frozen=True, slots=True)
class Wanted:
    deployment: str
    meeting_id: str


@dataclass(frozen=True, slots=True)
class Group:
    """What a row amounts to, for the summary line, the filter and the live refresh."""

    code: str  # one letter: rows settled on the page are sent back as "<index><code>"
    name: str
    label: str  # "12 active · 6 not visible to you"
    settled: bool = False  # not asked again by the live refresh


GROUPS = (
    Group("a", "active", "active"),
    Group("s", "scheduled", "scheduled"),
    Group("c", "concluded", "concluded", settled=True),
    Group("x", "cancelled", "cancelled", settled=True),
    Group("v", "not_visible", "not visible to you", settled=True),
    Group("n", "not_found", "not found", settled=True),
    Group("i", "invalid_id", "not a meeting ID", settled=True),
    Group("t", "token", "need your token", settled=True),
    Group("l", "lookup_limit", "not asked (your lookup limit)"),
    Group("f", "failed", "Connvo failed"),
)
GROUP_BY_NAME = {g.name: g for g in GROUPS}
GROUP_BY_CODE = {g.code: g for g in GROUPS}
_TOKEN_OUTCOMES = {
    Outcome.NO_TOKEN,
    Outcome.SESSION_ENDED,
    Outcome.TOKEN_REJECTED,
    Outcome.NOT_PROVISIONED,
    Outcome.AUTH_UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Row:
    """One meeting of the table: what Connvo said, or why there is nothing to show."""

    index: int  # position in the list asked for
    deployment: str
    meeting_id: str
    lookup: connvo.Lookup | None = None
    error: LookupFailed | None = None

    @property
    def meeting(self) -> connvo.Meeting | None:
        return self.lookup.meeting if self.lookup else None

    @property
    def group(self) -> Group:
        if self.meeting is not None:
            return GROUP_BY_NAME[self.meeting.state.value]
        outcome = self.error.outcome if self.error else None
        if outcome in _TOKEN_OUTCOMES:
            return GROUP_BY_NAME["token"]
        if outcome == Outcome.UNKNOWN_DEPLOYMENT:
            return GROUP_BY_NAME["not_found"]
        name = outcome.value if outcome else "failed"
        return GROUP_BY_NAME.get(name, GROUP_BY_NAME["failed"])

    @property
    def failure(self) -> str:
        """The failed outcome in plain words ("You are not a participant", "Connvo failed")."""
        if self.error is None:
            return ""
        return self.error.label

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.meeting) if self.meeting else f"!{self.group.code}"


def _ask(deployment: Deployment, token: str, meeting_id: str) -> connvo.Lookup | LookupFailed:
    try:
        return connvo.get_meeting(deployment=deployment, token=token, meeting_id=meeting_id)
    except LookupFailed as failure:
        return failure


def look_up_meetings(
    *, user: AbstractBaseUser, origin: Origin, wanted: Sequence[Wanted], via: Via
) -> list[Row]:
    """Look up every wanted meeting as `user`, at most CONNVO_TABLE_CONCURRENCY at a time.

    Returns one Row per wanted meeting, in order. Raises AuditUnavailable if the audit entries
    cannot be written (then nothing may be shown)."""
    outcomes: dict[int, connvo.Lookup | LookupFailed] = {}
    tokens: dict[str, tuple[Deployment, str] | LookupFailed] = {}
    for name in dict.fromkeys(w.deployment for w in wanted):
        try:
            deployment = get_deployment(name)
            tokens[name] = (
                deployment,
                credentials.access_token_for(user=user, deployment_name=name, origin=origin),
            )
        except LookupFailed as failure:
            tokens[name] = failure
        except DatabaseError:
            logger.exception("credential for a table lookup by %s not prepared", origin.username)
            raise AuditUnavailable from None

    to_ask: list[tuple[int, Deployment, str, str]] = []
    refused: ratelimit.LookupLimitReached | None = None
    for index, item in enumerate(wanted):
        credential = tokens[item.deployment]
        if isinstance(credential, LookupFailed):
            outcomes[index] = credential
            continue
        if refused is None:
            try:
                ratelimit.count_lookup(user=user)
            except ratelimit.LookupLimitReached as error:
                refused = error
        if refused is not None:
            # Not asked: the limit was reached by an earlier row of this same table.
            outcomes[index] = ratelimit.LookupLimitReached(refused.message)
            continue
        to_ask.append((index, *credential, item.meeting_id))

    if to_ask:
        workers = min(settings.CONNVO_TABLE_CONCURRENCY, len(to_ask))
        with (
            waiting_on_upstream(),
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="connvo-table") as pool,
        ):
            answers = pool.map(lambda job: _ask(*job[1:]), to_ask)
            for (index, *_), answer in zip(to_ask, answers, strict=True):
                outcomes[index] = answer

    rows = [
        Row(
            index=index,
            deployment=item.deployment,
            meeting_id=item.meeting_id,
            lookup=outcomes[index] if isinstance(outcomes[index], connvo.Lookup) else None,
            error=outcomes[index] if isinstance(outcomes[index], LookupFailed) else None,
        )
        for index, item in enumerate(wanted)
    ]
    _audit(rows, origin=origin, via=via)
    return rows


def _audit(rows: list[Row], *, origin: Origin, via: Via) -> None:
    entries = []
    for row in rows:
        answer = row.error or row.lookup
        entries.append(
            {
                "action": Action.LOOKUP,
                "via": via,
                "deployment": row.deployment[:64],
                "meeting_id": row.meeting_id,
                "outcome": row.error.kind if row.error else Outcome.FOUND,
                "http_status": answer.http_status,
                "latency_ms": answer.latency_ms,
                "connvo_request_id": row.error.request_id if row.error else None,
                "detail": row.error.detail if row.error else "",
            }
        )
    try:
        # All of the table's entries are recorded, in one go, or none is and nothing is shown.
        record_many(origin=origin, entries=entries)
    except DatabaseError:
        logger.exception("audit entries for a table lookup by %s not written", origin.username)
        raise AuditUnavailable from None
    counts = Counter(row.error.kind if row.error else "found" for row in rows)
    logger.info(
        "table lookup user=%s via=%s meetings=%s outcomes=%s",
        origin.username,
        via,
        len(rows),
        dict(counts),
    )


def summary(
    rows: Iterable[Row], settled: dict[int, Group] | None = None
) -> list[tuple[int, Group]]:
    """How many rows are in each group, in the groups' order, leaving out empty ones."""
    counts = Counter(row.group.code for row in rows)
    counts.update(group.code for group in (settled or {}).values())
    return [(counts[g.code], g) for g in GROUPS if counts[g.code]]


def table_fingerprint(rows: Iterable[Row]) -> str:
    joined = "|".join(f"{row.index}:{row.fingerprint}" for row in rows)
    return hashlib.sha256(joined.encode()).hexdigest()[:20]


def table_plan(rows: Sequence[Row], *, failures: int) -> PollPlan:
    """The next refresh of a whole table: none when every row is settled; backing off like the
    meeting page when no row could be refreshed because Connvo (or the audit log) failed."""
    polling = [row for row in rows if not row.group.settled]
    seen = table_fingerprint(polling)
    if not polling:
        return PollPlan(LiveStatus.ENDED, settings.CONNVO_POLL_INTERVAL, 0, seen)
    if any(row.meeting is not None for row in polling):
        return PollPlan(LiveStatus.LIVE, live_interval(len(polling)), 0, seen)
    failed = next(row.error for row in polling if row.error is not None)
    plan = plan_after_failure(failed, failures=failures, seen=seen)
    interval = max(plan.interval, live_interval(len(polling)))
    return PollPlan(LiveStatus.FAILING, interval, plan.failures, seen)


def live_interval(polled_rows: int) -> int:
    """Seconds between refreshes of a table that asks for `polled_rows` meetings each time.

    Every row asked is a lookup against the agent's limit, so a big table refreshes more slowly
    than the meeting page: it may use half of CONNVO_LOOKUPS_PER_MINUTE, leaving the rest for
    the agent's other pages."""
    budget = settings.CONNVO_LOOKUPS_PER_MINUTE * LIMIT_SHARE
    needed = math.ceil(60 * polled_rows / budget)
    return min(max(settings.CONNVO_POLL_INTERVAL, needed), settings.CONNVO_POLL_MAX_INTERVAL)
