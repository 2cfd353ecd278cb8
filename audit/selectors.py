"""Reads of the audit log: behind the audit pages and exports (the filtered entries, one page of
them by keyset, never COUNT(*) nor OFFSET; who looked at a meeting), and behind the lookup page (an
agent's recent meetings and last deployment)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Max, Min, Q, QuerySet

from connvo_admin.outcomes import Outcome

from .models import Action, AuditEntry, ChainCheckpoint, ChainVerification, SeenMeeting, Via


@dataclass(frozen=True, slots=True)
class EntryFilter:
    staff: str = ""
    meeting_id: str = ""
    deployment: str = ""
    outcome: str = ""
    via: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    include_refreshes: bool = False
    include_audit_views: bool = False

    def describe(self) -> str:
        """The filter in words, for an export's own audit entry."""
        parts = [
            f"{name}={value}"
            for name in ("staff", "meeting_id", "deployment", "outcome", "via", "action")
            if (value := getattr(self, name))
        ]
        if self.since:
            parts.append(f"since={self.since.isoformat()}")
        if self.until:
            parts.append(f"until={self.until.isoformat()}")
        if self.include_refreshes:
            parts.append("with refreshes")
        if self.include_audit_views:
            parts.append("with audit page views")
        return ", ".join(parts) or "everything"


def filtered_entries(entry_filter: EntryFilter) -> QuerySet[AuditEntry]:
    """Newest first. Each exact-match filter has an index ending in (at, id) (see the model)."""
    entries = AuditEntry.objects.all()
    for field, value in (
        ("actor_username", entry_filter.staff),
        ("meeting_id", entry_filter.meeting_id),
        ("deployment", entry_filter.deployment),
        ("outcome", entry_filter.outcome),
        ("via", entry_filter.via),
        ("action", entry_filter.action),
    ):
        if value:
            entries = entries.filter(**{field: value})
    if entry_filter.since:
        entries = entries.filter(at__gte=entry_filter.since)
    if entry_filter.until:
        entries = entries.filter(at__lt=entry_filter.until)
    # A meeting page left open polls every few seconds; those rows would bury everything else.
    if not entry_filter.include_refreshes and entry_filter.via != Via.REFRESH:
        entries = entries.exclude(via=Via.REFRESH)
    # Every audit page view is itself an entry; shown on asking, so browsing the log does not
    # bury what it is about.
    if not entry_filter.include_audit_views and entry_filter.action != Action.AUDIT_VIEWED:
        entries = entries.exclude(action=Action.AUDIT_VIEWED)
    return entries.order_by("-at", "-id")


class BadCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order: an entry's (at, id)."""

    at: datetime
    id: int

    @classmethod
    def of(cls, entry: AuditEntry) -> Cursor:
        return cls(at=entry.at, id=entry.pk)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """`<microseconds since the epoch>.<id>`, as `str()` writes it."""
        micros, _, entry_id = text.partition(".")
        try:
            at = datetime.fromtimestamp(int(micros) // 1_000_000, tz=UTC).replace(
                microsecond=int(micros) % 1_000_000
            )
            return cls(at=at, id=int(entry_id))
        except (ValueError, OverflowError, OSError):
            raise BadCursor(text) from None

    def __str__(self) -> str:
        delta = self.at - datetime(1970, 1, 1, tzinfo=UTC)
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}.{self.id}"


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[AuditEntry]
    newer: Cursor | None  # show the page of entries newer than this one
    older: Cursor | None  # show the page of entries older than this one


def page_of(
    entries: QuerySet[AuditEntry],
    *,
    size: int,
    before: Cursor | None = None,
    after: Cursor | None = None,
) -> Page:
    """One page in newest-first order, by keyset on (at, id): the same cost on page 1 and on
    page 10,000, and stable while new entries arrive. `before` pages towards older entries,
    `after` towards newer ones."""
    if after is not None:
        # at >= X AND NOT (at = X AND id <= Y): an index range scan on (at, id), in either order.
        rows = list(
            entries.filter(at__gte=after.at)
            .exclude(at=after.at, id__lte=after.id)
            .order_by("at", "id")[: size + 1]
        )
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return Page(
            entries=rows,
            newer=Cursor.of(rows[0]) if rows and more_newer else None,
            older=Cursor.of(rows[-1]) if rows else None,
        )
    if before is not None:
        entries = entries.filter(at__lte=before.at).exclude(at=before.at, id__gte=before.id)
    rows = list(entries.order_by("-at", "-id")[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return Page(
        entries=rows,
        newer=Cursor.of(rows[0]) if rows and before is not None else None,
        older=Cursor.of(rows[-1]) if more_older else None,
    )


# A meeting's "who looked" table shows the most recent viewers up to this many.
VIEWERS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class Viewer:
    """One staff member's lookups of one meeting on one deployment."""

    username: str
    deployment: str
    lookups: int
    found: int
    refreshes: int
    first_at: datetime
    last_at: datetime


def who_looked(*, meeting_id: str, limit: int | None = None) -> list[Viewer]:
    """Who looked the meeting up, per deployment, most recent first (refreshes counted apart);
    the `limit` (VIEWERS_SHOWN) most recent only."""
    limit = limit or VIEWERS_SHOWN
    rows = (
        AuditEntry.objects.filter(meeting_id=meeting_id, action=Action.LOOKUP)
        .values("actor_username", "deployment")
        .annotate(
            lookups=Count("id", filter=~Q(via=Via.REFRESH)),
            found=Count("id", filter=Q(outcome="found") & ~Q(via=Via.REFRESH)),
            refreshes=Count("id", filter=Q(via=Via.REFRESH)),
            first_at=Min("at"),
            last_at=Max("at"),
        )
        .order_by("-last_at", "actor_username", "deployment")[:limit]
    )
    return [Viewer(username=row.pop("actor_username"), **row) for row in rows]


@dataclass(frozen=True, slots=True)
class MeetingOnDeployment:
    """A meeting ID on one deployment: `demo` and `demo-prod` are different meetings."""

    deployment: str
    lookups: int
    staff: int
    not_visible: int
    refreshes: int
    first_at: datetime
    last_at: datetime


def meeting_deployments(*, meeting_id: str) -> list[MeetingOnDeployment]:
    rows = (
        AuditEntry.objects.filter(meeting_id=meeting_id, action=Action.LOOKUP)
        .values("deployment")
        .annotate(
            lookups=Count("id", filter=~Q(via=Via.REFRESH)),
            staff=Count("actor_username", distinct=True),
            not_visible=Count("id", filter=Q(outcome="not_visible") & ~Q(via=Via.REFRESH)),
            refreshes=Count("id", filter=Q(via=Via.REFRESH)),
            first_at=Min("at"),
            last_at=Max("at"),
        )
        .order_by("-last_at", "deployment")
    )
    return [MeetingOnDeployment(**row) for row in rows]


def neighbours(entry: AuditEntry) -> dict[str, AuditEntry | None]:
    """The entries just before and after this one in the log's order (time, then id). Audit
    page views are stepped over, as the list hides them: each step would add one."""
    entries = AuditEntry.objects.exclude(action=Action.AUDIT_VIEWED)
    older = (
        entries.filter(at__lte=entry.at)
        .exclude(at=entry.at, id__gte=entry.pk)
        .order_by("-at", "-id")
        .first()
    )
    newer = (
        entries.filter(at__gte=entry.at)
        .exclude(at=entry.at, id__lte=entry.pk)
        .order_by("at", "id")
        .first()
    )
    return {"older": older, "newer": newer}


def latest_verification() -> ChainVerification | None:
    return ChainVerification.objects.order_by("-at", "-id").first()


def latest_checkpoint() -> ChainCheckpoint | None:
    return ChainCheckpoint.objects.order_by("-at", "-id").first()


def recent_lookups(*, user, limit: int) -> list[AuditEntry]:
    """The agent's last `limit` distinct meetings opened on a page, newest first, each with the
    outcome of its latest lookup (IDs that were not meetings at all are left out)."""
    seen: set[tuple[str, str]] = set()
    recent: list[AuditEntry] = []
    rows = (
        AuditEntry.objects.filter(actor=user, action=Action.LOOKUP, via=Via.PAGE)
        .exclude(outcome__in=[Outcome.INVALID_ID, Outcome.UNKNOWN_DEPLOYMENT])
        .only("at", "deployment", "meeting_id", "outcome")[:100]
    )
    for row in rows:
        key = (row.deployment, row.meeting_id)
        if key not in seen:
            seen.add(key)
            recent.append(row)
        if len(recent) == limit:
            break
    return recent


def last_found_deployment(*, user) -> str | None:
    """The deployment of the agent's last lookup that showed a meeting, if any."""
    return (
        AuditEntry.objects.filter(actor=user, action=Action.LOOKUP, outcome=Outcome.FOUND)
        .values_list("deployment", flat=True)
        .first()
    )


def seen_meetings(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SeenMeeting]:
    """What the console last saw of each (deployment, meeting id) it has seen found, for
    naming meetings on a page: one query for the whole page."""
    wanted = {(deployment, meeting_id) for deployment, meeting_id in pairs if meeting_id}
    if not wanted:
        return {}
    query = Q()
    for deployment, meeting_id in wanted:
        query |= Q(deployment=deployment, meeting_id=meeting_id)
    return {(m.deployment, m.meeting_id): m for m in SeenMeeting.objects.filter(query)}
