"""How the meeting page keeps itself current: after each refresh the server decides whether the
page polls again, how soon, or stops. The page only follows what the fragment it receives says."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.conf import settings

from connvo_admin.outcomes import LiveStatus, LookupFailed

from .connvo import Meeting


@dataclass(frozen=True, slots=True)
class PollPlan:
    status: LiveStatus
    interval: int  # seconds until the next refresh
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
        interval=settings.CONNVO_POLL_INTERVAL,
        failures=0,
        fingerprint=fingerprint(meeting),
    )


def plan_after_failure(failure: LookupFailed, *, failures: int, seen: str) -> PollPlan:
    """Polling stops for an outcome that only a person can change (see connvo_admin/outcomes.py),
    and goes on, slower, for one that may pass by itself."""
    status = failure.handling.live
    if status != LiveStatus.FAILING:
        return PollPlan(status, settings.CONNVO_POLL_INTERVAL, failures, seen)
    failures += 1
    # Double the wait after each consecutive failure, up to the cap: a struggling Connvo gets
    # fewer calls from every open page, and the page recovers by itself.
    interval = min(settings.CONNVO_POLL_INTERVAL * 2**failures, settings.CONNVO_POLL_MAX_INTERVAL)
    return PollPlan(LiveStatus.FAILING, interval, failures, seen)
