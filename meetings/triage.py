"""Many meetings at once, for the triage table and the watch list: what is the table's own —
its rows' groups, the summary line and the plan of its live refresh. The lookups themselves are
meetings/lookups.py's, the same pipeline as a single meeting's."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from connvo_admin.outcomes import LiveStatus, Outcome, TableGroup

from . import connvo
from .connvo import FINAL_STATES, MeetingState
from .live import PollPlan, fingerprint, plan_after_failure
from .lookups import Answer

LIMIT_SHARE = 0.5  # of the agent's lookups per minute that one live table may use


@dataclass(frozen=True, slots=True)
class Group:
    """What a row amounts to, for the summary line, the filter and the live refresh."""

    code: str  # one letter: the page sends its rows' groups back as "<index><code>"
    name: str
    label: str  # "12 active · 6 not a participant"
    settled: bool = False  # not asked again by the live refresh
    found: bool = False  # the row shows a meeting (its title, badges and figures)


def _words(outcome: Outcome) -> str:
    label = outcome.label
    return label[:1].lower() + label[1:]


def _outcome_group(code: str, group: TableGroup, label: str) -> Group:
    """The group of rows whose lookup ended so: settled exactly when the meeting page of such a
    lookup stops polling (connvo_admin/outcomes.py decides, for both)."""
    return Group(code, group, label, settled=group.settled)


def _state_group(code: str, state: MeetingState, label: str) -> Group:
    """The group of found meetings in a state: settled exactly when the meeting is no longer live
    (connvo.FINAL_STATES decides, for both)."""
    return Group(code, state.value, label, settled=state in FINAL_STATES, found=True)


GROUPS = (
    _state_group("a", MeetingState.ACTIVE, "active"),
    _state_group("s", MeetingState.SCHEDULED, "scheduled"),
    # A state the console does not know (Connvo added one): shown as sent, and still followed
    # (no unknown state is final).
    Group("o", "other_state", "in another state", found=True),
    _state_group("c", MeetingState.CONCLUDED, "concluded"),
    _state_group("x", MeetingState.CANCELLED, "cancelled"),
    _outcome_group("v", TableGroup.NOT_VISIBLE, _words(Outcome.NOT_VISIBLE)),
    _outcome_group("n", TableGroup.NOT_FOUND, _words(Outcome.NOT_FOUND)),
    _outcome_group("i", TableGroup.INVALID_ID, _words(Outcome.INVALID_ID)),
    # Counted as "no such meeting" before, beside the row's "Unknown deployment".
    _outcome_group("d", TableGroup.UNKNOWN_DEPLOYMENT, _words(Outcome.UNKNOWN_DEPLOYMENT)),
    # A pasted token's, or a connected account's (WorkOS): the row says which.
    _outcome_group("t", TableGroup.TOKEN, "need your token or account"),
    _outcome_group("l", TableGroup.LOOKUP_LIMIT, "not asked (your lookup limit)"),
    # Connvo's failures, and the console's own (a bad request, an answer its contract does not
    # know, an audit log it could not write to): each row says which.
    _outcome_group("f", TableGroup.FAILED, "could not be looked up"),
)
GROUP_BY_NAME = {g.name: g for g in GROUPS}
GROUP_BY_CODE = {g.code: g for g in GROUPS}


@dataclass(frozen=True, slots=True)
class Row:
    """One meeting of the table: its place in the list asked for, and its answer."""

    index: int
    answer: Answer
    # On a live refresh, the group the page showed for this row until now.
    shown: Group | None = None

    @property
    def deployment(self) -> str:
        return self.answer.deployment

    @property
    def meeting_id(self) -> str:
        return self.answer.meeting_id

    @property
    def meeting(self) -> connvo.Meeting | None:
        return self.answer.meeting

    @property
    def error(self):
        return self.answer.error

    @property
    def stale(self) -> bool:
        """The page shows this meeting, and this refresh failed for a reason that may pass by
        itself (Connvo's error, a timeout, the agent's lookup limit): the row keeps its last
        values, marked as of when they were received, instead of losing them."""
        return (
            self.shown is not None
            and self.shown.found
            and self.error is not None
            and self.error.handling.live == LiveStatus.FAILING
        )

    @property
    def group(self) -> Group:
        """What the row amounts to; a stale row still counts as what it last showed."""
        if self.stale:
            return self.shown
        meeting = self.meeting
        if meeting is None:
            return GROUP_BY_NAME[self.answer.outcome.handling.table_group]
        if isinstance(meeting.state, MeetingState):
            return GROUP_BY_NAME[meeting.state.value]
        return GROUP_BY_NAME["other_state"]

    @property
    def failure(self) -> str:
        """The failed outcome's label ("Not a participant"); empty for a found meeting."""
        return self.error.label if self.error else ""

    @property
    def fingerprint(self) -> str:
        if self.meeting:
            return fingerprint(self.meeting)
        return f"~{self.group.code}" if self.stale else f"!{self.group.code}"


def in_turn(indexes: Sequence[int], *, start: int) -> list[int]:
    """The order a live table's refresh asks its rows in: from row `start` on (the first row
    the last refresh did not get to ask, `next_turn`), wrapping round. Asked in the table's
    order every time, a table holding more rows than the lookup limit lets through used up each
    window of the limit on its first rows and refused its last rows at every refresh, for as
    long as the page was open; in turn, every row is asked within a few windows."""
    return [i for i in indexes if i >= start] + [i for i in indexes if i < start]


def next_turn(asked: Sequence[int], answers: Sequence[Answer], *, start: int, size: int) -> int:
    """Where the next refresh of a table of `size` rows starts (`in_turn`): after the last row
    this one asked in its order (wrapping round), or where this one started when the limit let
    it ask none."""
    looked_up = [
        index
        for index, answer in zip(asked, answers, strict=True)
        if answer.outcome != Outcome.LOOKUP_LIMIT
    ]
    return (looked_up[-1] + 1) % size if looked_up else start


def turn_in(text: str, size: int) -> int:
    """The refresh's `turn` as the page sends it back, read leniently (0 for anything else)."""
    return int(text) if text.isdigit() and len(text) <= 4 and int(text) < size else 0


def rows(
    answers: Sequence[Answer],
    indexes: Sequence[int] | None = None,
    shown: Mapping[int, Group] | None = None,
) -> list[Row]:
    """The answers as rows, at their positions in the whole table (`indexes`: a live refresh
    asks only the rows not settled yet; `shown`: the groups the page shows for them)."""
    positions = range(len(answers)) if indexes is None else indexes
    shown = shown or {}
    return [
        Row(index, answer, shown.get(index))
        for index, answer in zip(positions, answers, strict=True)
    ]


def summary(
    rows: Iterable[Row], settled: dict[int, Group] | None = None
) -> list[tuple[int, Group]]:
    """How many rows are in each group, in the groups' order, leaving out empty ones."""
    counts = Counter(row.group.code for row in rows)
    counts.update(group.code for group in (settled or {}).values())
    return [(counts[g.code], g) for g in GROUPS if counts[g.code]]


# What a live table's page keeps of its rows between refreshes, and sends back with each:
# "0c.3v" (row 0 concluded, row 3 not visible). Its polling refresh (meetings/views/tables.py) and
# its push stream (meetings/views/push.py) read and write it alike.


def groups_in(text: str, size: int) -> dict[int, Group]:
    """The groups a table's page says its rows show, read leniently: what is malformed or out of
    the table is left out, which costs a redraw."""
    groups = {}
    for item in text.split(".") if text else ():
        match = re.fullmatch(r"(\d{1,3})([a-z])", item)
        if match and int(match.group(1)) < size and match.group(2) in GROUP_BY_CODE:
            groups[int(match.group(1))] = GROUP_BY_CODE[match.group(2)]
    return groups


def settled_in(text: str, size: int) -> dict[int, Group]:
    """The rows a table's page says are settled ("0c.3v": row 0 concluded, row 3 not visible)."""
    return {i: group for i, group in groups_in(text, size).items() if group.settled}


def as_text(groups: Mapping[int, Group]) -> str:
    return ".".join(f"{i}{g.code}" for i, g in sorted(groups.items()))


def page_values(rows: Sequence[Row], others: Mapping[int, Group], *, show: str = "") -> dict:
    """What a live table's page shows and keeps once `rows` are drawn (this refresh's, or the
    answers pushed so far), its other rows still showing `others`: the settled rows (`done`,
    never asked again), the others' groups (`known`), the summary line, the rows left with
    their last values, and how many rows the page's filter (`show`, a group's name) lets
    through (`matching`; every row without one)."""
    drawn = {row.index: row.group for row in rows}
    rest = {i: group for i, group in others.items() if i not in drawn}
    shown = rest | drawn
    stale_count, stale_reasons = not_refreshed(rows)
    return {
        "done": as_text({i: group for i, group in shown.items() if group.settled}),
        "known": as_text({i: group for i, group in shown.items() if not group.settled}),
        "summary": summary(rows, rest),
        "matching": sum(1 for group in shown.values() if not show or group.name == show),
        "stale_count": stale_count,
        "stale_reasons": stale_reasons,
    }


def not_refreshed(rows: Iterable[Row]) -> tuple[int, str]:
    """How many rows a refresh left with their last values, and why, each reason once:
    (3, "Connvo server error"), or (3, "Connvo server error (2), No answer in time (1)")."""
    reasons = Counter(row.failure for row in rows if row.stale)
    if len(reasons) == 1:
        return reasons.total(), next(iter(reasons))
    return reasons.total(), ", ".join(f"{label} ({count})" for label, count in reasons.items())


def table_fingerprint(rows: Iterable[Row], *, salt: str = "") -> str:
    joined = "|".join([salt, *(f"{row.index}:{row.fingerprint}" for row in rows)])
    return hashlib.sha256(joined.encode()).hexdigest()[:20]


def table_plan(rows: Sequence[Row], *, failures: int, checked_at: datetime) -> PollPlan:
    """The next refresh of a whole table: none when every row is settled; backing off like the
    meeting page when no row could be refreshed because Connvo (or the audit log) failed."""
    polling = [row for row in rows if not row.group.settled]
    # While rows are stale the page says when they were last tried ("not refreshed at 10:02"):
    # each refresh then differs, so none is answered 204 and left saying an earlier time.
    stale = any(row.stale for row in polling)
    seen = table_fingerprint(polling, salt=checked_at.isoformat() if stale else "")
    if not polling:
        return PollPlan(LiveStatus.ENDED, settings.CONNVO_POLL_INTERVAL, 0, seen)
    if any(row.meeting is not None for row in polling):
        return PollPlan(LiveStatus.LIVE, live_interval(len(polling)), 0, seen)
    # The refusal that asked for the longest wait (Connvo's Retry-After), if any did: the next
    # refresh asks every row again.
    failed = max(
        (row.error for row in polling if row.error is not None),
        key=lambda error: error.retry_after or 0,
    )
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
