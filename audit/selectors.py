"""Reads of the audit log: behind the audit pages and exports (the filtered entries, one page of
them by keyset, never COUNT(*) nor OFFSET; who looked at a meeting), and behind the lookup page (an
agent's recent meetings and last deployment)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, QuerySet, Sum

from connvo_admin.outcomes import Outcome

from . import records, repeats
from .models import (
    Action,
    AuditEntry,
    RepeatCount,
    SeenMeeting,
    Span,
    SpanCount,
    Via,
)


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

    # The column that holds each exact-match filter, in the log and in the tables beside it
    # (spans, counted refusals, the summaries).
    COLUMNS = {
        "staff": "actor_username",
        "meeting_id": "meeting_id",
        "deployment": "deployment",
        "outcome": "outcome",
        "via": "via",
        "action": "action",
    }

    def exact(self, *names: str) -> dict[str, str]:
        """The exact-match filters set, of `names` (every one by default), by their column: for
        `.filter(**…)` of the log or of a table beside it."""
        return {
            self.COLUMNS[name]: value
            for name in names or self.COLUMNS
            if (value := getattr(self, name))
        }

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
    entries = AuditEntry.objects.filter(**entry_filter.exact())
    if entry_filter.since:
        entries = entries.filter(at__gte=entry_filter.since)
    if entry_filter.until:
        entries = entries.filter(at__lt=entry_filter.until)
    # Before spans, a meeting page left open wrote one row per refresh (every few seconds, with no
    # `calls`); those would bury everything else. A span record (one per open page and a few
    # minutes) is shown. `calls` is in the meeting's covering index; `tally` is not.
    if not entry_filter.include_refreshes and entry_filter.via != Via.REFRESH:
        entries = entries.exclude(via=Via.REFRESH, calls__isnull=True)
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


FIGURES = ("lookups", "found", "not_visible", "refreshes")


def _lookup_weights(meeting_id: str, group: tuple[str, ...]) -> dict[tuple, dict[str, int]]:
    """Per `group` (of "actor_username", "deployment"): the meeting's page lookups, the ones
    found and not visible, and live refreshes, counting Connvo calls (`records.WEIGHT`, from the
    meeting's covering index), corrected by the few records with a tally (from their partial
    index): a sealed span's calls per outcome, a late answer's retries only."""
    lookups = AuditEntry.objects.filter(meeting_id=meeting_id, action=Action.LOOKUP)
    page, refresh = ~Q(via=Via.REFRESH), Q(via=Via.REFRESH)
    sums: dict[tuple, dict[str, int]] = {}
    for row in (
        lookups.values(*group)
        .annotate(
            lookups=Sum(records.WEIGHT, filter=page),
            found=Sum(records.WEIGHT, filter=page & Q(outcome=Outcome.FOUND)),
            not_visible=Sum(records.WEIGHT, filter=page & Q(outcome=Outcome.NOT_VISIBLE)),
            refreshes=Sum(records.WEIGHT, filter=refresh),
        )
        .order_by()
    ):
        sums[tuple(row[name] for name in group)] = {name: row[name] or 0 for name in FIGURES}
    counted = lookups.filter(tally__isnull=False).values_list(
        *group, "action", "via", "outcome", "calls", "repeats", "tally"
    )
    for row in counted.order_by():
        action, via, outcome, calls, repeats, tally = row[len(group) :]
        figures = sums.setdefault(tuple(row[: len(group)]), dict.fromkeys(FIGURES, 0))
        delta = records.correction(
            action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally
        )
        if via == Via.REFRESH:
            # All its calls are refreshes, whatever their outcome.
            figures["refreshes"] += delta.total()
            continue
        figures["lookups"] += delta.total()
        figures["found"] += delta[Outcome.FOUND]
        figures["not_visible"] += delta[Outcome.NOT_VISIBLE]
    return sums


def who_looked(*, meeting_id: str, limit: int | None = None) -> list[Viewer]:
    """Who looked the meeting up, per deployment, most recent first (refreshes counted apart),
    counting Connvo calls; the `limit` (VIEWERS_SHOWN) most recent only."""
    limit = limit or VIEWERS_SHOWN
    rows = (
        AuditEntry.objects.filter(meeting_id=meeting_id, action=Action.LOOKUP)
        .values("actor_username", "deployment")
        .annotate(first_at=Min("at"), last_at=Max("at"))
        .order_by("-last_at", "actor_username", "deployment")[:limit]
    )
    weights = _lookup_weights(meeting_id, ("actor_username", "deployment"))
    viewers = []
    for row in rows:
        figures = weights.get((row["actor_username"], row["deployment"]), {})
        viewers.append(
            Viewer(
                username=row["actor_username"],
                deployment=row["deployment"],
                lookups=figures.get("lookups", 0),
                found=figures.get("found", 0),
                refreshes=figures.get("refreshes", 0),
                first_at=row["first_at"],
                last_at=row["last_at"],
            )
        )
    return viewers


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
            staff=Count("actor_username", distinct=True),
            first_at=Min("at"),
            last_at=Max("at"),
        )
        .order_by("-last_at", "deployment")
    )
    weights = _lookup_weights(meeting_id, ("deployment",))
    places = []
    for row in rows:
        figures = weights.get((row["deployment"],), {})
        places.append(
            MeetingOnDeployment(
                lookups=figures.get("lookups", 0),
                not_visible=figures.get("not_visible", 0),
                refreshes=figures.get("refreshes", 0),
                **row,
            )
        )
    return places


# The "Open now" section lists at most this many open spans, the most recently called first.
OPEN_SPANS_SHOWN = 50


def open_spans(
    entry_filter: EntryFilter, *, now: datetime, limit: int | None = OPEN_SPANS_SHOWN
) -> list[records.OpenSpan]:
    """The spans not (wholly) sealed into the chain yet, or whose page is still open (polling,
    or held open by its push stream however long ago its last call was), that `entry_filter`
    matches where it applies to a span (staff, meeting, deployment, via, an outcome among its
    calls, a time range its calls overlap); none for a filter on another action. Most recently
    called first; `limit` None for all of them (the exports). The span table holds one row per
    open page and meeting, and is read without an index (see the model)."""
    if entry_filter.action and entry_filter.action != Action.LOOKUP:
        return []
    # A page open by the clock whose every answer stopped it (`records.settled_by`: a table's
    # row "Not a meeting ID") asks nothing more: once all its calls are sealed, it is not open.
    counts = SpanCount.objects.filter(span=OuterRef("pk"), calls__gt=0)
    asking = Exists(counts.exclude(outcome__in=records.STOPS_THE_PAGE)) | ~Exists(counts)
    spans = Span.objects.filter(Q(calls__gt=F("sealed_calls")) | (~Span.quiet(now) & asking))
    spans = spans.filter(**entry_filter.exact("staff", "meeting_id", "deployment", "via"))
    if entry_filter.outcome:
        spans = spans.filter(
            id__in=SpanCount.objects.filter(outcome=entry_filter.outcome, calls__gt=0).values(
                "span_id"
            )
        )
    if entry_filter.since:
        spans = spans.filter(last_at__gte=entry_filter.since)
    if entry_filter.until:
        spans = spans.filter(opened_at__lt=entry_filter.until)
    spans = spans.order_by("-last_at", "-id").prefetch_related("counts")
    rows = spans.iterator(chunk_size=500) if limit is None else spans[:limit]
    return [records.open_span(span, now=now) for span in rows]


def counting_now(entry_filter: EntryFilter, *, limit: int | None = OPEN_SPANS_SHOWN) -> list:
    """Repeated refusals still being counted (this minute's, or a past minute's not sealed
    yet) that `entry_filter` matches, each as the counted record it will be sealed as (unsaved:
    no id, no MAC), the most recent first; `limit` None for all (the exports). With the open
    spans, what makes a page or an export hold every request on record, not only the sealed."""
    rows = RepeatCount.objects.filter(count__gt=0, **entry_filter.exact())
    if entry_filter.since:
        rows = rows.filter(last_at__gte=entry_filter.since)
    if entry_filter.until:
        rows = rows.filter(first_at__lt=entry_filter.until)
    rows = rows.order_by("-last_at", "-id")
    return [
        AuditEntry(at=row.last_at, **repeats.record_fields(row))
        for row in (rows if limit is None else rows[:limit])
    ]


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


def seen_meetings(
    pairs: Iterable[tuple[str, str]], *, seen_by: str | None = None
) -> dict[tuple[str, str], SeenMeeting]:
    """What the console last saw of each (deployment, meeting id) it has seen found, for
    naming meetings on a page: one query for the whole page. `seen_by`: only what that staff
    member's own lookups saw (an agent's pages); None: the newest anyone's saw (the audit's)."""
    wanted = {(deployment, meeting_id) for deployment, meeting_id in pairs if meeting_id}
    if not wanted:
        return {}
    query = Q()
    for deployment, meeting_id in wanted:
        query |= Q(deployment=deployment, meeting_id=meeting_id)
    rows = SeenMeeting.objects.filter(query)
    if seen_by is not None:
        rows = rows.filter(seen_by=seen_by)
    newest: dict[tuple[str, str], SeenMeeting] = {}
    for row in rows.order_by("seen_at", "id"):
        newest[(row.deployment, row.meeting_id)] = row
    return newest


def seen_title(*, meeting_id: str) -> str:
    """The title last seen of a meeting, on whichever deployment (a meeting's history page spans
    them all)."""
    seen = SeenMeeting.objects.filter(meeting_id=meeting_id).order_by("-seen_at").first()
    return seen.title if seen else ""


def outcome_on_record(outcome: str) -> bool:
    """Whether any entry, or an open span's call, ended in `outcome`: a short read of the
    uncommon outcomes' index (and of the open spans' counts)."""
    return (
        AuditEntry.objects.filter(outcome=outcome).exists()
        or SpanCount.objects.filter(outcome=outcome).exists()
    )


ACCESS_CHANGES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class AccessChange:
    pk: int
    at: datetime
    by: str  # who made it ("" for nobody signed in)
    what: str  # the entry's detail without the account's name


def access_changes(*, username: str, limit: int = ACCESS_CHANGES_SHOWN) -> list[AccessChange]:
    """The newest changes to the account's access, whoever made them (each entry's detail names
    the account first: `records.about_account`). Few: read by the index of uncommon actions."""
    named = records.about_account(username)
    return [
        AccessChange(pk=pk, at=at, by=by, what=detail.removeprefix(named))
        for pk, at, by, detail in AuditEntry.objects.filter(
            action=Action.ACCESS_CHANGED, detail__startswith=named
        )
        .order_by("-at", "-id")
        .values_list("pk", "at", "actor_username", "detail")[:limit]
    ]
