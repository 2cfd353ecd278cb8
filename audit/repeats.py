"""Repeated refusals, counted instead of appended one by one (issue #22).

The interface the write paths call. `refused()` records one refusal; the first of its kind from
its source in a minute is a full chained entry, the rest of that minute are counted in
`RepeatCount` and sealed into one chained counted record once the minute is over."""

from __future__ import annotations

from .models import Action
from .services import Origin, record_or_log


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
) -> None:
    """Record one refusal, failing open (a refusal stands whether or not it is recorded).
    `source` names who repeats it: the client address by default, the staff member for a
    signed-in agent's refusals (the lookup limit)."""
    # First version: every refusal is its own entry, as before. Counting replaces this.
    record_or_log(
        origin=origin,
        action=action,
        outcome=outcome,
        via=via,
        deployment=deployment,
        meeting_id=meeting_id,
        detail=detail,
    )


def seal_past() -> int:
    """Seal every finished minute's counts into chained counted records; return how many records
    were written. (First version: nothing is counted yet, so nothing to seal.)"""
    return 0
