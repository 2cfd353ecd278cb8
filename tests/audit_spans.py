"""Writing the records of issue #22 as the write side leaves them, for the auditor's-view tests:
sealed span parts and counted records appended to the chain (`audit.chain.append`, at a given
moment), open spans as `Span` and `SpanCount` rows. The shapes are the fixed ones of the brief."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from audit import chain
from audit.models import Action, AuditEntry, Span, SpanCount, Via


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def append_at(moment: datetime, **fields) -> AuditEntry:
    fields.setdefault("client_ip", "10.0.0.7")
    fields.setdefault("user_agent", "pytest")
    with time_machine.travel(moment, tick=False):
        return chain.append(**fields)


def lookup(moment: datetime, *, username="alice", outcome="found", via=Via.PAGE, calls=1, **more):
    """A first look (calls=1), or with calls=None an entry written before calls were counted."""
    return append_at(
        moment,
        actor_username=username,
        action=Action.LOOKUP,
        via=via,
        outcome=outcome,
        calls=calls,
        **more,
    )


def sealed_span(
    *,
    first: datetime,
    last: datetime,
    outcomes: dict[str, int],
    unanswered: int = 0,
    username: str = "alice",
    meeting_id: str = "m-standup",
    deployment: str = "prod",
    via: str = Via.REFRESH,
    key: str = "pageKey_0123456789abcdef",
    final: bool = True,
    sealed_at: datetime | None = None,
) -> AuditEntry:
    """A sealed part as one record whatever its outcomes: how the console sealed a part until
    8 December 2026 (a log keeps such records; today's seal writes one per outcome, `part` in
    each tally), so the pages are tested reading both."""
    calls = sum(outcomes.values()) + unanswered
    most = max(outcomes.items(), key=lambda item: item[1])[0] if outcomes else "unanswered"
    return append_at(
        sealed_at or last + timedelta(seconds=30),
        actor_username=username,
        action=Action.LOOKUP,
        via=via,
        deployment=deployment,
        meeting_id=meeting_id,
        outcome=most,
        calls=calls,
        tally={
            "kind": "span",
            "span": key,
            "opened": iso(first),
            "from": iso(first),
            "to": iso(last),
            "outcomes": outcomes,
            "unanswered": unanswered,
            "first_request": "req_first_0001",
            "last_request": "req_last_0270",
            "final": final,
        },
    )


def counted(
    *,
    first: datetime,
    last: datetime,
    repeats: int,
    action: str = Action.PERMISSION_DENIED,
    outcome: str = "",
    source: str = "192.0.2.7",
    username: str = "",
    detail: str = "POST /sign-in/: CSRF check failed (CSRF cookie not set.)",
    sample: list[str] | None = None,
    distinct: int | None = None,
    **more,
) -> AuditEntry:
    tally = {"kind": "repeats", "source": source, "from": iso(first), "to": iso(last)}
    tally["sample"] = sample if sample is not None else []
    if distinct is not None:
        tally["distinct"] = distinct
    return append_at(
        last + timedelta(seconds=5),
        actor_username=username,
        action=action,
        outcome=outcome,
        detail=detail,
        calls=0,
        repeats=repeats,
        tally=tally,
        client_ip=source if ":" in source or source.count(".") == 3 else None,
        **more,
    )


def open_span(
    *,
    opened: datetime,
    last: datetime,
    answered: dict[str, int],
    in_flight: int = 0,
    sealed: dict[str, int] | None = None,
    username: str = "alice",
    meeting_id: str = "m-standup",
    deployment: str = "prod",
    via: str = Via.REFRESH,
    key: str = "openKey_0123456789abcdef",
    quiet_after: int = 60,
    sealed_at: datetime | None = None,
) -> Span:
    """An open span as the write side leaves it; one with sealed calls was last sealed a minute
    before its last call unless `sealed_at` says otherwise (so it is not due a periodic seal)."""
    if sealed and sealed_at is None:
        sealed_at = last - timedelta(seconds=60)
    sealed = sealed or {}
    span = Span.objects.create(
        key=key,
        deployment=deployment,
        meeting_id=meeting_id,
        actor_username=username,
        via=via,
        client_ip="10.0.0.8",
        user_agent="pytest",
        opened_at=opened,
        last_at=last,
        calls=sum(answered.values()) + in_flight,
        sealed_calls=sum(sealed.values()),
        first_request_id="req_open_first",
        last_request_id="req_open_last",
        open_until=last + timedelta(seconds=quiet_after),
        sealed_at=sealed_at,
    )
    for outcome, n in answered.items():
        SpanCount.objects.create(span=span, outcome=outcome, calls=n, sealed=sealed.get(outcome, 0))
    return span
