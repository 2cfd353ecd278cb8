"""What a sealed span, a counted record or an open span stands for, in figures and in words: the
one place that reads a record's `tally`. Every audit page, both exports, the summaries
(`audit/rollup.py`) and `manage.py audit_insights` say and count records through here.

A tally is read as it is, never trusted to be well formed: an older encoding may lack a key or
hold another type, and a record whose tally does not add up to its `calls` is counted by its
`calls` under its own outcome (what its chained fields say), never dropped nor raised on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from django.db.models import Case, F, PositiveBigIntegerField, Value, When
from django.db.models.functions import Coalesce
from django.utils import dateformat, timezone

from connvo_admin.outcomes import Outcome, describe

from .models import Action, AuditEntry, Span, Via

SPAN = "span"
REPEATS = "repeats"
# An answer that came after its span was sealed finally (audit/spans.py, `_record_late`): its call
# is in the sealed part already, as unanswered, so the entry adds only its retries to the figures.
LATE_ANSWER = "late_answer"
# The outcome under which calls that never got an answer are counted (a worker killed between
# the call and its outcome): the summaries and the overview's breakdown count them apart.
UNANSWERED = "unanswered"
# How the log writes a moment (the entries' own times, in the viewer's time zone), and the time
# of day alone, for a span within one day.
LOG_TIME = "j M Y, H:i:s"
LOG_CLOCK = "H:i:s"
# Written as escapes: the linter reads them as look-alikes of "-" and "x".
DASH, TIMES = "\u2013", "\u00d7"
# The outcomes after which a page asks nothing more about its meeting (a table, nothing more about
# that row): their live handling stops it (connvo_admin/outcomes.py, the one home of that).
STOPS_THE_PAGE = frozenset(
    str(outcome) for outcome in Outcome if not describe(outcome).live.keeps_going
)
# A sentence names this many outcomes; the rest are summed ("and 9 more with 4 other outcomes").
OUTCOMES_NAMED = 5
OUTCOME_LENGTH = AuditEntry._meta.get_field("outcome").max_length
# What the per-outcome figures weigh in SQL, as `weight()` does in Python: a record's Connvo calls
# when it stands for some; otherwise the requests it stands for (1, or a counted record's repeats),
# so a lookup refused before any call (an invalid ID, the lookup limit) still counts as one.
# It reads only columns a meeting's covering index holds (audit/models.py), so a meeting's
# figures are summed from the index alone; a record's tally is not among them. A late answer
# with no retries (`calls=0`) stands for no call, but WEIGHT cannot tell it from a lookup refused
# before any call: a sum of WEIGHT over entries with a tally adds `correction()` for them, in all
# as well as per outcome (or counts them with `calls_by_outcome()`, as the summaries do).
WEIGHT = Case(
    When(calls__gt=0, then=F("calls")),
    When(calls__isnull=True, action=Action.LOOKUP, then=Value(1)),
    default=Coalesce(F("repeats"), Value(1)),
    output_field=PositiveBigIntegerField(),
)


def _count(value: object) -> int | None:
    """A count from a tally: a whole number >= 0 (a bool is not one), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _text(value: object, length: int = 64) -> str:
    return value[:length] if isinstance(value, str) else ""


# A tally's moment within a day of the calendar's ends cannot be shown in every viewer's zone
# (0001-01-01 in New York, 9999-12-31 at +14: OverflowError on every page that shows it).
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def _moment(value: object) -> datetime | None:
    """A tally's time, or None where it is not one a page can show: a tally is never trusted to
    be well formed (a tampered record's pages must still open to show it)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
        return moment if _EARLIEST <= moment <= _LATEST else None
    except (ValueError, OverflowError):
        return None


def kind(tally: object) -> str:
    """ "span", "repeats", "late_answer", or "" (an ordinary entry, or a tally of no kind this
    console knows)."""
    found = tally.get("kind") if isinstance(tally, Mapping) else None
    return found if found in (SPAN, REPEATS, LATE_ANSWER) else ""


def weight(*, action: str, calls: int | None, repeats: int | None) -> int:
    """What a record counts for in the figures (see WEIGHT)."""
    if calls is None:
        calls = 1 if action == Action.LOOKUP else 0
    if calls > 0:
        return calls
    return 1 if repeats is None else repeats


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """A sealed span part's tally, read (or an open span's current counts)."""

    calls: int
    # Answered calls per outcome, most first; calls without an answer are `unanswered`.
    outcomes: list[tuple[str, int]]
    unanswered: int
    key: str = ""
    opened: datetime | None = None
    first: datetime | None = None  # the part's first and last call
    last: datetime | None = None
    first_request: str = ""
    last_request: str = ""
    final: bool | None = None  # the span's last part (None: the tally does not say)
    # The calls of the whole part, when it ended in several ways and this record is the calls of
    # one of them (the others are the records sealed with it); else `calls`.
    part: int = 0
    # False: the tally's outcomes do not add up to `calls`; the figures count `calls` under the
    # record's own outcome, and the page says so.
    adds_up: bool = True
    # Open spans only: already sealed into the chain, whether the page may still be asking, and
    # until when it counts as open if it asks nothing more.
    sealed: int = 0
    waiting: bool = False
    open_until: datetime | None = None
    settled: bool = False  # its answers stopped the page: it asks nothing more (`settled_by`)

    @property
    def one_outcome(self) -> bool:
        """Whether every call ended the same way (a record's outcome is then all of its calls',
        not only most of them)."""
        return len(self.by_outcome) == 1

    @property
    def by_outcome(self) -> dict[str, int]:
        counts = dict(self.outcomes)
        if self.unanswered:
            counts[UNANSWERED] = counts.get(UNANSWERED, 0) + self.unanswered
        return counts


def _outcome_counts(value: object) -> list[tuple[str, int]] | None:
    if not isinstance(value, Mapping):
        return None
    counts: Counter[str] = Counter()
    for name, n in value.items():
        n = _count(n)
        if not isinstance(name, str) or n is None:
            return None
        if n:
            counts[name[:OUTCOME_LENGTH]] += n
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def span_facts(*, calls: int | None, outcome: str, tally: object) -> SpanFacts:
    """A sealed span part as its tally tells it, checked against its chained `calls`."""
    calls = calls or 0
    tally = tally if isinstance(tally, Mapping) else {}
    outcomes = _outcome_counts(tally.get("outcomes"))
    unanswered = _count(tally.get("unanswered", 0))
    adds_up = (
        outcomes is not None
        and unanswered is not None
        and sum(n for _, n in outcomes) + unanswered == calls
    )
    if not adds_up:
        outcomes, unanswered = ([(outcome[:OUTCOME_LENGTH], calls)] if calls else []), 0
    final = tally.get("final")
    part = _count(tally.get("part"))
    return SpanFacts(
        calls=calls,
        part=part if part is not None and part > calls else calls,
        outcomes=outcomes or [],
        unanswered=unanswered or 0,
        key=_text(tally.get("span")),
        opened=_moment(tally.get("opened")),
        first=_moment(tally.get("from")),
        last=_moment(tally.get("to")),
        first_request=_text(tally.get("first_request")),
        last_request=_text(tally.get("last_request")),
        final=final if isinstance(final, bool) else None,
        adds_up=adds_up,
    )


@dataclass(frozen=True, slots=True)
class RepeatFacts:
    """A counted record's tally, read."""

    requests: int  # after the minute's first, which is its own entry
    source: str = ""
    first: datetime | None = None
    last: datetime | None = None
    sample: list[str] = field(default_factory=list)
    distinct: int | None = None

    @property
    def distinct_words(self) -> str:
        """ "58 different, the minute's first included": the distinct values are counted over
        every request of the minute (audit/repeats.py), its first entry's too, so beside "x57
        more" a bare "58 different" read as impossible."""
        if self.distinct is None:
            return ""
        return f"{self.distinct:,} different, the minute's first included"


def repeat_facts(*, repeats: int | None, tally: object) -> RepeatFacts:
    tally = tally if isinstance(tally, Mapping) else {}
    sample = tally.get("sample")
    return RepeatFacts(
        requests=1 if repeats is None else repeats,
        source=_text(tally.get("source"), 160),
        first=_moment(tally.get("from")),
        last=_moment(tally.get("to")),
        sample=[_text(item, 150) for item in sample if isinstance(item, str)][:20]
        if isinstance(sample, list)
        else [],
        distinct=_count(tally.get("distinct")),
    )


def calls_by_outcome(
    *, action: str, outcome: str, calls: int | None, repeats: int | None, tally: object
) -> dict[str, int]:
    """What the record adds to each outcome's figure: a sealed span its calls per outcome (its
    unanswered calls under UNANSWERED), any other record its `weight()` under its own outcome."""
    if kind(tally) == SPAN and action == Action.LOOKUP:
        return span_facts(calls=calls, outcome=outcome, tally=tally).by_outcome
    if kind(tally) == LATE_ANSWER:
        # Its first call is counted (unanswered) in the sealed part: only retries are new.
        return {outcome: calls} if isinstance(calls, int) and calls > 0 else {}
    n = weight(action=action, calls=calls, repeats=repeats)
    return {outcome: n} if n else {}


def correction(
    *, action: str, outcome: str, calls: int | None, repeats: int | None, tally: object
) -> Counter[str]:
    """How a record's figures per outcome differ from its WEIGHT counted under its own outcome:
    nothing, except for a sealed span whose calls ended in several ways (its total is 0), and a
    late answer with no retries, which WEIGHT counts as one call and which stands for none (-1).
    Figures summed with WEIGHT by the database over every entry are made exact by adding this
    for the few entries with a tally, read apart (a meeting's from a small partial index): its
    `total()` to every figure that counts the record whatever its outcome."""
    delta = Counter(
        calls_by_outcome(action=action, outcome=outcome, calls=calls, repeats=repeats, tally=tally)
    )
    delta[outcome] -= weight(action=action, calls=calls, repeats=repeats)
    return Counter({name: n for name, n in delta.items() if n})


# ---- in words ----


def _clock(moment: datetime, zone: tzinfo | None) -> datetime:
    return timezone.localtime(moment, zone) if zone else timezone.localtime(moment)


def between(first: datetime | None, last: datetime | None, *, zone: tzinfo | None = None) -> str:
    """Two moments: the times of day alone (dashed) within one day of the viewer's, else both
    moments in full."""
    if first is None and last is None:
        return ""
    first, last = first or last, last or first
    a, b = _clock(first, zone), _clock(last, zone)
    if a.date() == b.date():
        return f"{dateformat.format(a, LOG_CLOCK)}{DASH}{dateformat.format(b, LOG_CLOCK)}"
    return f"{dateformat.format(a, LOG_TIME)} {DASH} {dateformat.format(b, LOG_TIME)}"


def in_sentence(label: str) -> str:
    """An outcome's label inside a sentence: "No answer in time" -> "no answer in time", but
    Connvo keeps its capital."""
    return label if label.startswith("Connvo") or not label else label[0].lower() + label[1:]


def about_account(username: str) -> str:
    """How an "Access changed" entry's detail begins: the account it is about. accounts/access.py
    writes it; a staff member's page finds the changes to their access by it."""
    return f"{username}: "


def count_of(number: int, one: str, many: str) -> str:
    """ "1 entry", "2,500 entries": the number, and the word that goes with it."""
    return f"{number:,} {one if number == 1 else many}"


def outcome_words(outcomes: list[tuple[str, int]], *, unanswered: int, waiting: bool) -> str:
    """ "268 found, 2 no answer in time, 1 unanswered" (the most frequent first)."""
    parts = [f"{n:,} {in_sentence(describe(name).label)}" for name, n in outcomes]
    if len(parts) > OUTCOMES_NAMED:
        rest = outcomes[OUTCOMES_NAMED - 1 :]
        parts = parts[: OUTCOMES_NAMED - 1]
        parts.append(f"{sum(n for _, n in rest):,} with {len(rest)} other outcomes")
    if unanswered:
        parts.append(
            f"{unanswered:,} waiting for Connvo's answer"
            if waiting
            else f"{unanswered:,} unanswered (no outcome was recorded)"
        )
    return ", ".join(parts)


def _noun(via: str) -> tuple[str, str]:
    return ("refresh", "refreshes") if via == Via.REFRESH else ("lookup", "lookups")


def span_words(facts: SpanFacts, *, via: str, zone: tzinfo | None = None) -> str:
    """A sealed span part: "Watched 10:02:13-10:47:55 · 270 refreshes: 270 found" (an en dash
    between the times); one of a part that ended in several ways (a record per outcome, sealed
    together): "… · 2 of 270 refreshes: 2 no answer in time"; an older record of such a part: "…
    · 270 refreshes: 268 found, 2 no answer in time"."""
    when = between(facts.first, facts.last, zone=zone)
    words = f"Watched {when} · " if when else "Watched · "
    one, many = _noun(via)
    if facts.part > facts.calls:
        words += f"{facts.calls:,} of {facts.part:,} {many}"
    else:
        words += count_of(facts.calls, one, many)
    detail = outcome_words(facts.outcomes, unanswered=facts.unanswered, waiting=False)
    if detail:
        words += f": {detail}"
    if facts.final is False:
        words += " · the page was still open (continued in a later record)"
    if not facts.adds_up:
        words += " · its per-outcome counts did not add up, so all are counted as its outcome"
    return words


def repeat_words(entry: AuditEntry, facts: RepeatFacts, *, zone: tzinfo | None = None) -> str:
    """A counted record: "CSRF refusal x58 more from 192.0.2.7, 10:02:00-10:02:59 (sample:
    alice, bob; 12 different, the minute's first included)" (a multiplication sign and an en
    dash)."""
    if "CSRF check failed" in entry.detail:
        what = "CSRF refusal"
    else:
        what = Action(entry.action).label if entry.action in Action.values else entry.action
        if entry.outcome:
            what += f" ({in_sentence(describe(entry.outcome).label)})"
    source = facts.source or entry.client_ip or entry.actor_username
    words = f"{what} {TIMES}{facts.requests:,} more"
    if source:
        words += f" from {source}"
    when = between(facts.first, facts.last, zone=zone)
    if when:
        words += f", {when}"
    notes = []
    if facts.sample:
        notes.append("sample: " + ", ".join(facts.sample[:5]))
    if facts.distinct is not None:
        notes.append(facts.distinct_words)
    if notes:
        words += f" ({'; '.join(notes)})"
    return words


def period(entry: AuditEntry) -> tuple[datetime | None, datetime | None] | None:
    """When what a sealed span part or a counted record stands for happened (its first and last
    call or repeat); None for an ordinary entry. Its `at` is when it was sealed, which can be
    minutes later, by someone else's request."""
    found = kind(entry.tally)
    if found == SPAN:
        facts = span_facts(calls=entry.calls, outcome=entry.outcome, tally=entry.tally)
        return facts.first, facts.last
    if found == REPEATS or entry.repeats is not None:
        facts = repeat_facts(repeats=entry.repeats, tally=entry.tally)
        return facts.first, facts.last
    return None


def record_words(entry: AuditEntry, *, zone: tzinfo | None = None) -> str:
    """A sealed span part or a counted record in words; "" for an ordinary entry (its columns say
    it all)."""
    found = kind(entry.tally)
    if found == SPAN:
        facts = span_facts(calls=entry.calls, outcome=entry.outcome, tally=entry.tally)
        return span_words(facts, via=entry.via, zone=zone)
    if found == REPEATS or entry.repeats is not None:
        facts = repeat_facts(repeats=entry.repeats, tally=entry.tally)
        return repeat_words(entry, facts, zone=zone)
    if found == LATE_ANSWER:
        return late_answer_words(entry)
    return ""


def late_answer_words(entry: AuditEntry) -> str:
    """An answer that came after its page's span part was sealed: its call is on record there
    (unanswered), so this one stands only for the retries made on the way (`calls`)."""
    retries = entry.calls if isinstance(entry.calls, int) and entry.calls > 0 else 0
    words = (
        "A late answer: its call is counted, as unanswered, in its page's record sealed before "
        "the answer came"
    )
    if retries:
        words += f"; {count_of(retries, 'retry', 'retries')} on the way, counted here"
    return words + "."


# ---- open spans ----


@dataclass(frozen=True, slots=True)
class OpenSpan:
    """A span with calls not sealed into the chain yet, or a page still polling: what the audit
    pages show above the log and the exports write first, marked as not yet sealed."""

    span: Span
    facts: SpanFacts  # every call of the span so far (sealed ones included)
    unsealed: dict[str, int]  # of them, the ones not in the chain yet, per outcome

    @property
    def unsealed_calls(self) -> int:
        return self.span.calls - min(self.span.sealed_calls, self.span.calls)


def settled_by(answered: Mapping[str, int], *, in_flight: int) -> bool:
    """Whether a span's page will ask nothing more about its meeting: every call answered, each
    with an outcome that stops the page (a table row "Not a meeting ID", "Not a participant").
    `selectors.open_spans` asks the same of the database."""
    outcomes = {outcome for outcome, n in answered.items() if n}
    return not in_flight and bool(outcomes) and outcomes <= STOPS_THE_PAGE


def open_span(span: Span, *, now: datetime) -> OpenSpan:
    """A span's current counts from its `SpanCount` rows (prefetched as `counts`)."""
    answered: Counter[str] = Counter()
    unsealed: Counter[str] = Counter()
    for count in span.counts.all():
        answered[count.outcome] += count.calls
        unsealed[count.outcome] += max(count.calls - count.sealed, 0)
    without_answer = max(span.calls - sum(answered.values()), 0)
    if without_answer:
        unsealed[UNANSWERED] += without_answer
    settled = settled_by(answered, in_flight=without_answer)
    facts = SpanFacts(
        calls=span.calls,
        outcomes=sorted(((o, n) for o, n in answered.items() if n), key=lambda i: (-i[1], i[0])),
        unanswered=without_answer,
        key=span.key,
        opened=span.opened_at,
        first=span.opened_at,
        last=span.last_at,
        first_request=span.first_request_id,
        last_request=span.last_request_id,
        sealed=min(span.sealed_calls, span.calls),
        # Calls counted without an answer are in flight while the page polls, unanswered once
        # it has gone quiet (they are sealed as such). A page whose answers stopped it asks
        # nothing more, however long it counts as open.
        waiting=not span.is_quiet(now) and not settled,
        open_until=span.open_until,
        settled=settled,
    )
    return OpenSpan(span=span, facts=facts, unsealed={o: n for o, n in unsealed.items() if n})


def open_span_words(item: OpenSpan, *, zone: tzinfo | None = None) -> str:
    """ "Open since 10:02:13 · 41 lookups so far: 39 found, 1 no answer in time, 1 waiting for
    Connvo's answer · last 10:05:40 · 12 already sealed into the log · open until 10:06:10 unless
    it asks again". A closed tab says nothing, so a page is only known to be open until then."""
    facts, span = item.facts, item.span
    opened = _clock(span.opened_at, zone)
    last = _clock(span.last_at, zone)
    same_day = opened.date() == last.date()
    words = f"Open since {dateformat.format(opened, LOG_CLOCK if same_day else LOG_TIME)} · "
    # Its calls so far include the page's first look (sealed as an entry of its own): "1
    # refresh so far" was said of a page opened once and never refreshed.
    words += count_of(facts.calls, "lookup", "lookups") + " so far"
    detail = outcome_words(facts.outcomes, unanswered=facts.unanswered, waiting=facts.waiting)
    if detail:
        words += f": {detail}"
    words += f" · last {dateformat.format(last, LOG_CLOCK if same_day else LOG_TIME)}"
    if facts.sealed:
        words += f" · {facts.sealed:,} already sealed into the log"
    if facts.waiting and facts.open_until is not None:
        until = _clock(facts.open_until, zone)
        fmt = LOG_CLOCK if until.date() == last.date() else LOG_TIME
        words += f" · open until {dateformat.format(until, fmt)} unless it asks again"
    elif facts.settled:
        words += " · its page asks nothing more, to be sealed"
    else:
        words += " · quiet, to be sealed"
    return words
