"""How the meeting page keeps itself current: after each refresh the server decides whether the
page polls again, how soon, or stops. The page only follows what the fragment it receives says."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings

from connvo_admin.capacity import poll_interval

from .connvo import ConnvoError, Meeting, Outcome

# Outcomes that will not change until a person acts: polling them again only costs calls.
_NEEDS_THE_AGENT = {
    Outcome.NO_TOKEN,
    Outcome.SESSION_ENDED,
    Outcome.TOKEN_REJECTED,
    Outcome.NOT_PROVISIONED,
}
_GONE = {
    Outcome.NOT_VISIBLE,
    Outcome.NOT_FOUND,
    Outcome.INVALID_ID,
    Outcome.UNKNOWN_DEPLOYMENT,
}


class LiveStatus(StrEnum):
    LIVE = "live"  # polling at the normal pace
    FAILING = "failing"  # Connvo failed; polling again, slower
    ENDED = "ended"  # the meeting concluded or was cancelled: nothing more will change
    TOKEN = "token"  # the agent must update their token
    GONE = "gone"  # the meeting is no longer visible to the agent


@dataclass(frozen=True, slots=True)
class PollPlan:
    status: LiveStatus
    interval: int  # seconds until the next refresh (stretched while the console is busy)
    failures: int  # consecutive failed refreshes so far
    fingerprint: str = ""  # what the page now shows, so an unchanged refresh can be skipped

    @property
    def polling(self) -> bool:
        return self.status in (LiveStatus.LIVE, LiveStatus.FAILING)


def fingerprint(meeting: Meeting) -> str:
    encoded = json.dumps(meeting.raw, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()[:20]


def plan_after_success(meeting: Meeting) -> PollPlan:
    status = LiveStatus.LIVE if meeting.is_live else LiveStatus.ENDED
    return PollPlan(
        status=status,
        interval=poll_interval(),
        failures=0,
        fingerprint=fingerprint(meeting),
    )


def plan_after_failure(error: ConnvoError | None, *, failures: int, seen: str) -> PollPlan:
    """`error` is None when the refresh could not be audited (so it showed nothing)."""
    if error is not None and error.outcome in _NEEDS_THE_AGENT:
        return PollPlan(LiveStatus.TOKEN, settings.CONNVO_POLL_INTERVAL, failures, seen)
    if error is not None and error.outcome in _GONE:
        return PollPlan(LiveStatus.GONE, settings.CONNVO_POLL_INTERVAL, failures, seen)
    failures += 1
    # Double the wait after each consecutive failure, up to the cap: a struggling Connvo gets
    # fewer calls from every open page, and the page recovers by itself.
    interval = min(poll_interval() * 2**failures, settings.CONNVO_POLL_MAX_INTERVAL)
    return PollPlan(LiveStatus.FAILING, interval, failures, seen)
