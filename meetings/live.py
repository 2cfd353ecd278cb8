"""How a live page (a meeting page, a triage table, the watch list) keeps itself current: whether
Connvo pushes its changes (`push_enabled`), and, when it polls, after each refresh whether the page
polls again, how soon, or stops, and whether the page needs a new fragment at all. The page only
follows what it receives; the views parse, call and render what is decided here."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

from django.conf import settings

from audit.spans import usable_key
from connvo_admin.capacity import poll_interval
from connvo_admin.outcomes import LiveStatus, LookupFailed

from .connvo import Meeting

# htmx swaps a 286 (django-htmx's HttpResponseStopPolling) and then stops polling.
STOP_POLLING = 286
_LONGEST_WAIT = 3600  # seconds: the most a refusal's Retry-After holds a page back
_FINGERPRINT = re.compile(r"[0-9a-f]{0,64}")


@dataclass(frozen=True, slots=True)
class PollPlan:
    status: LiveStatus
    interval: int  # seconds until the next refresh (stretched while the console is busy)
    failures: int  # consecutive failed refreshes so far
    fingerprint: str = ""  # what the page now shows, so an unchanged refresh can be skipped

    @property
    def polling(self) -> bool:
        return self.status.keeps_going


@dataclass(frozen=True, slots=True)
class Shown:
    """What a polling page says it shows (the values of its poller's `hx-vals`)."""

    failures: int = 0  # consecutive failed refreshes so far
    seen: str = ""  # the fingerprint of what it shows
    interval: int | None = None  # the interval it polls at (None from an older page)
    span: str = ""  # the key of the span its refreshes are counted in (audit/spans.py)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Shown:
        """Read leniently: anything malformed counts as "unknown", which only costs a redraw (and,
        for the span key, a new span)."""
        failures = query.get("failures", "")
        seen = query.get("seen", "")
        interval = query.get("interval", "")
        return cls(
            failures=min(int(failures), 30) if _digits(failures) else 0,
            seen=seen if _FINGERPRINT.fullmatch(seen) else "",
            interval=int(interval) if _digits(interval) else None,
            span=usable_key(query.get("span", "")),
        )


def push_enabled(deployment_name: str) -> bool:
    """Whether a page of this deployment's meetings is live by push (meetings/views/push.py),
    polling only when push fails, or polls throughout (CONNVO_PUSH off, or the deployment listed
    in CONNVO_POLLING_ONLY_DEPLOYMENTS)."""
    return settings.CONNVO_PUSH and deployment_name not in settings.CONNVO_POLLING_ONLY_DEPLOYMENTS


def _digits(text: str) -> bool:
    """ASCII digits only, and few of them: `"²".isdigit()` is true, but `int("²")` raises."""
    return text.isascii() and text.isdigit() and len(text) < 6


def reply_status(plan: PollPlan, shown: Shown, *, span: str = "") -> int:
    """How to answer a refresh: 204 when the page already shows what it would get (not even the
    interval the console wants changed, nor the span its refreshes are counted in: htmx ignores
    a 204, so the page stays as it is at no cost), 286 with the fragment when polling ends, else
    200 with the fragment."""
    if not plan.polling:
        return STOP_POLLING
    unchanged = (
        shown.seen == plan.fingerprint and shown.interval == plan.interval and shown.span == span
    )
    if plan.status == LiveStatus.LIVE and shown.failures == 0 and unchanged:
        return HTTPStatus.NO_CONTENT
    return HTTPStatus.OK


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


def plan_after_failure(failure: LookupFailed, *, failures: int, seen: str) -> PollPlan:
    """Polling stops for an outcome that only a person can change (see connvo_admin/outcomes.py),
    and goes on, slower, for one that may pass by itself."""
    status = failure.handling.live
    if status != LiveStatus.FAILING:
        return PollPlan(status, settings.CONNVO_POLL_INTERVAL, failures, seen)
    failures += 1
    # Double the wait after each consecutive failure, up to the cap: a struggling Connvo gets
    # fewer calls from every open page, and the page recovers by itself.
    interval = min(poll_interval() * 2**failures, settings.CONNVO_POLL_MAX_INTERVAL)
    if failure.retry_after:
        # Never sooner than the refusal asked: asking earlier only earns the same refusal (and
        # the page would say a wait its own message contradicts). Past an hour, a page left
        # open is better asking again than silent for the rest of the day.
        interval = max(interval, min(math.ceil(failure.retry_after), _LONGEST_WAIT))
    return PollPlan(LiveStatus.FAILING, interval, failures, seen)
