"""audit/spans.py behaviour that `make mutants` found no test pinning down (docs/testing.md,
"Mutation testing"): the instants a sealed part records, where "quiet" begins, the order parts
are appended in, and everything an open span shows the auditor. Spans are counted and answered
here through the module's own interface (as meetings/lookups.py does), without Connvo: these are
the span store's rules, not the pages'."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit import chain, selectors, spans
from audit.models import Action, AuditEntry, Span, SpanCount, Via
from audit.services import Origin

pytestmark = pytest.mark.django_db

# A local zone fourteen hours east of UTC: a time written in local time instead of UTC shows.
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")
OPENED = datetime(2027, 3, 1, 10, 0, 0, tzinfo=KIRITIMATI)  # 2027-02-28T20:00:00Z


def open_now(*, now: datetime | None = None, **entry_filter: str) -> list:
    """The open spans the audit pages show (audit/selectors.py), as of `now`."""
    return selectors.open_spans(selectors.EntryFilter(**entry_filter), now=now or timezone.now())


def key(letter: str) -> str:
    return letter * 22


def count(agent, span_key: str, *meetings: tuple[str, str], quiet_after: int = 30, **origin):
    return spans.count_calls(
        key=span_key,
        origin=Origin(user=agent, username=agent.username, **origin),
        via=Via.TABLE,
        meetings=list(meetings),
        quiet_after=quiet_after,
    )


def answer(counted: spans.Counted, *meetings: tuple[str, str], outcome: str = "found", **kw):
    spans.record_answers(
        counted,
        [spans.Answered(deployment=d, meeting_id=m, outcome=outcome, **kw) for d, m in meetings],
    )


def test_a_sealed_part_gives_its_instants_in_utc_whatever_the_local_zone(agent):
    with time_machine.travel(OPENED, tick=False):
        counted = count(agent, key("a"), ("dev", "1"))
        answer(counted, ("dev", "1"))
    with time_machine.travel(OPENED + timedelta(seconds=20), tick=False):
        answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))
    with time_machine.travel(OPENED + timedelta(minutes=10), tick=False):
        (part,) = spans.seal_quiet()

    assert (part.tally["opened"], part.tally["from"], part.tally["to"]) == (
        "2027-02-28T20:00:00Z",
        "2027-02-28T20:00:00Z",
        "2027-02-28T20:00:20Z",
    )


def test_a_span_is_quiet_only_once_more_than_its_quiet_after_has_passed(agent):
    with time_machine.travel(OPENED, tick=False):
        counted = count(agent, key("a"), ("dev", "1"), quiet_after=30)
        answer(counted, ("dev", "1"))
    span_id = counted.spans[("dev", "1")]

    for seconds in (0, 10, 30):  # still refreshing, or exactly at its quiet_after
        with time_machine.travel(OPENED + timedelta(seconds=seconds), tick=False):
            assert spans.seal([span_id], final=True) == []
            assert Span.objects.filter(pk=span_id).exists()

    with time_machine.travel(OPENED + timedelta(seconds=30, microseconds=1), tick=False):
        (part,) = spans.seal([span_id], final=True)
    assert (part.calls, part.tally["final"]) == (1, True)
    assert not Span.objects.exists()


def test_parts_are_appended_in_the_order_spans_are_locked(agent):
    """Key, then deployment, then meeting id: the order counting locks a page's spans in, so a
    sealer and a counter queue rather than deadlock. It is also the order of the parts in the
    chain, which is what a single process can see of it."""
    opened = [
        (key("b"), ("dev", "1")),
        (key("a"), ("prod", "1")),
        (key("a"), ("dev", "2")),
        (key("a"), ("dev", "1")),
    ]
    with time_machine.travel(OPENED, tick=False):
        ids = []
        for span_key, meeting in opened:  # one statement each: ids in this order
            counted = count(agent, span_key, meeting)
            answer(counted, meeting)
            ids.append(counted.spans[meeting])
    with time_machine.travel(OPENED + timedelta(minutes=10), tick=False):
        parts = spans.seal(ids, final=True)

    assert [(p.tally["span"], p.deployment, p.meeting_id) for p in parts] == [
        (key("a"), "dev", "1"),
        (key("a"), "dev", "2"),
        (key("a"), "prod", "1"),
        (key("b"), "dev", "1"),
    ]
    assert [p.id for p in parts] == sorted(p.id for p in parts)
    assert chain.verify().ok


def test_an_open_span_shows_the_auditor_everything_counted_so_far(agent):
    with time_machine.travel(OPENED, tick=False):
        counted = count(agent, key("a"), ("prod", "77"))
        answer(counted, ("prod", "77"), outcome="timeout", request_id="req-1")
    later = OPENED + timedelta(seconds=20)
    with time_machine.travel(later, tick=False):
        count(agent, key("a"), ("prod", "77"))  # in flight

    (shown,) = open_now(now=later, meeting_id="77")

    span, facts = shown.span, shown.facts
    assert (span.key, span.deployment, span.meeting_id, span.actor_username, span.via) == (
        key("a"),
        "prod",
        "77",
        "agent",
        Via.TABLE,
    )
    assert (facts.opened, facts.last) == (OPENED.astimezone(UTC), later.astimezone(UTC))
    assert (facts.calls, facts.sealed, dict(facts.outcomes)) == (2, 0, {"timeout": 1})
    assert (facts.first_request, facts.last_request) == ("req-1", "req-1")
    assert facts.unanswered == 1


def test_open_spans_come_most_recently_active_first(agent):
    with time_machine.travel(OPENED, tick=False):
        older = count(agent, key("a"), ("dev", "1"))
        newer = count(agent, key("b"), ("dev", "2"))
    with time_machine.travel(OPENED + timedelta(seconds=5), tick=False):
        count(agent, key("a"), ("dev", "1"))  # the first span opened is the last active

    shown = open_now(now=OPENED + timedelta(seconds=5))
    assert [item.span.meeting_id for item in shown] == ["1", "2"]
    assert older.spans[("dev", "1")] < newer.spans[("dev", "2")]


def test_a_part_sealed_while_open_starts_the_next_part_there(agent):
    with time_machine.travel(OPENED, tick=False):
        counted = count(agent, key("a"), ("dev", "1"))
        answer(counted, ("dev", "1"))
    sealed_at = OPENED + timedelta(seconds=15)
    with time_machine.travel(sealed_at, tick=False):
        (first,) = spans.seal(counted.spans.values(), final=False)
        answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))
    assert Span.objects.get().sealed_at == sealed_at
    with time_machine.travel(OPENED + timedelta(minutes=10), tick=False):
        (second,) = spans.seal_quiet()

    assert (first.tally["from"], first.tally["final"]) == ("2027-02-28T20:00:00Z", False)
    assert (second.tally["from"], second.tally["to"]) == (
        "2027-02-28T20:00:15Z",
        "2027-02-28T20:00:15Z",
    )
    assert (second.calls, second.tally["opened"]) == (1, "2027-02-28T20:00:00Z")


def test_a_part_names_only_the_outcomes_it_stands_for(agent):
    counted = count(agent, key("a"), ("dev", "1"))
    answer(counted, ("dev", "1"), outcome="found")
    spans.seal(counted.spans.values(), final=False)
    answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"), outcome="timeout")

    (part,) = spans.seal(counted.spans.values(), final=False)

    assert (part.calls, part.outcome, part.tally["outcomes"]) == (1, "timeout", {"timeout": 1})


def test_a_call_still_in_flight_is_not_sealed_as_unanswered_while_the_page_is_open(agent):
    with time_machine.travel(OPENED, tick=False):
        counted = count(agent, key("a"), ("dev", "1"))
        answer(counted, ("dev", "1"))
        in_flight = count(agent, key("a"), ("dev", "1"))

        (part,) = spans.seal(counted.spans.values(), final=False)

        assert (part.calls, part.tally["unanswered"]) == (1, 0)
        span = Span.objects.get()
        assert (span.calls, span.sealed_calls) == (2, 1)
        answer(in_flight, ("dev", "1"), outcome="timeout")  # its answer comes in after all
    with time_machine.travel(OPENED + timedelta(minutes=10), tick=False):
        (last,) = spans.seal_quiet()
    assert (last.calls, last.tally["outcomes"], last.tally["unanswered"]) == (
        1,
        {"timeout": 1},
        0,
    )
    assert spans.calls_on_record() == 2


def test_sealing_reads_each_actor_with_its_span_not_one_query_each(agent):
    with time_machine.travel(OPENED, tick=False):
        ids = []
        for meeting in ("1", "2", "3"):
            counted = count(agent, key("a"), ("dev", meeting))
            answer(counted, ("dev", meeting))
            ids += counted.spans.values()
    with (
        time_machine.travel(OPENED + timedelta(minutes=10), tick=False),
        CaptureQueriesContext(connection) as queries,
    ):
        parts = spans.seal(ids, final=True)

    assert len(parts) == 3 and {part.actor_id for part in parts} == {agent.pk}
    user_table = connection.ops.quote_name(agent._meta.db_table)
    assert not [q["sql"] for q in queries if f"FROM {user_table}" in q["sql"]]


def test_each_part_names_its_own_first_and_last_connvo_request(agent):
    counted = count(agent, key("a"), ("dev", "1"))
    answer(counted, ("dev", "1"), request_id="req-1")
    answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"), request_id="req-2")
    (first,) = spans.seal(counted.spans.values(), final=False)
    answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"), request_id="req-3")
    answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"), request_id="req-4")
    (second,) = spans.seal(counted.spans.values(), final=False)
    answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))  # no request id came back
    (third,) = spans.seal(counted.spans.values(), final=False)

    assert [
        (p.tally["first_request"], p.tally["last_request"]) for p in (first, second, third)
    ] == [
        ("req-1", "req-2"),
        ("req-3", "req-4"),
        ("", ""),
    ]


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (row locks; SQLite has none)"
)
@pytest.mark.django_db(transaction=True)
def test_an_answer_is_recorded_while_its_span_is_being_sealed(agent):
    """Sealing a part locks its spans FOR NO KEY UPDATE: counters queue behind it, but an answer
    that only adds a count of a new outcome (a row referring to the span, which takes a KEY
    SHARE lock) goes ahead instead of holding up its page until the seal commits."""
    counted = count(agent, key("a"), ("dev", "1"))
    answer(counted, ("dev", "1"))
    count(agent, key("a"), ("dev", "1"))  # the call whose answer comes in mid-seal
    failures: list[BaseException] = []

    def answer_meanwhile() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '5s'")
            answer(counted, ("dev", "1"), outcome="timeout")
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    with transaction.atomic():
        (part,) = spans.seal(counted.spans.values(), final=False)  # its lock held until commit
        other = threading.Thread(target=answer_meanwhile)
        other.start()
        other.join()

    assert failures == []
    assert part.tally["outcomes"] == {"found": 1}
    (shown,) = open_now()
    assert (shown.facts.calls, shown.facts.sealed, dict(shown.facts.outcomes)) == (
        2,
        1,
        {"found": 1, "timeout": 1},
    )


@pytest.mark.parametrize(
    ("answers", "records"),
    [
        ({"found": 3, "timeout": 1}, [("found", 3), ("timeout", 1)]),
        ({"found": 1, "timeout": 3}, [("timeout", 3), ("found", 1)]),
        ({"found": 2, "timeout": 2}, [("found", 2), ("timeout", 2)]),  # a tie: by name, always
    ],
)
def test_a_part_that_ended_in_several_ways_is_a_record_per_outcome_most_first(
    agent, answers, records
):
    counted = count(agent, key("a"), ("dev", "1"))
    for outcome, calls in answers.items():
        for _ in range(calls):
            answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"), outcome=outcome)

    parts = spans.seal(counted.spans.values(), final=False)

    assert [(part.outcome, part.calls) for part in parts] == records
    assert [part.tally["outcomes"] for part in parts] == [{o: n} for o, n in records]
    assert {part.tally["part"] for part in parts} == {4}
    assert {(part.tally["from"], part.tally["to"], part.tally["span"]) for part in parts} == {
        (parts[0].tally["from"], parts[0].tally["to"], key("a"))
    }
    assert [part.pk for part in parts] == sorted(part.pk for part in parts)


def test_a_part_is_recorded_as_from_whoever_and_wherever_the_calls_came(agent):
    origin = {"client_ip": "192.0.2.7", "user_agent": "Firefox/140"}
    counted = count(agent, key("a"), ("prod", "1"), **origin)
    answer(counted, ("prod", "1"))

    (part,) = spans.seal(counted.spans.values(), final=False)

    assert (part.actor, part.actor_username, part.client_ip, part.user_agent) == (
        agent,
        "agent",
        "192.0.2.7",
        "Firefox/140",
    )
    assert (part.deployment, part.meeting_id, part.via) == ("prod", "1", Via.TABLE)


def test_calls_on_record_count_an_entry_from_before_spans_as_one_call_if_a_lookup(
    agent, audit_entry
):
    audit_entry(action=Action.LOOKUP, outcome="found")  # written before `calls` existed
    audit_entry(action=Action.LOOKUP, outcome="found")
    audit_entry(action=Action.SIGN_IN)
    audit_entry(action=Action.LOOKUP, outcome="found", calls=3)
    audit_entry(action=Action.LOOKUP, outcome="invalid_id", calls=0)
    assert AuditEntry.objects.filter(calls=None).count() == 3
    counted = count(agent, key("a"), ("dev", "1"), ("dev", "2"))  # two calls, not sealed

    assert spans.calls_on_record() == 2 + 3 + 2
    with transaction.atomic():  # a first look: its full entry, and its call counted sealed
        audit_entry(action=Action.LOOKUP, outcome="found", meeting_id="1", calls=1)
        spans.record_answers(counted, [spans.Answered("dev", "1", "found")], sealed=True)
    assert spans.calls_on_record() == 7


def test_a_due_seal_that_fails_is_logged_with_how_many_spans_wait(
    agent, settings, monkeypatch, caplog
):
    settings.AUDIT_SPAN_SEAL_EVERY = 20
    with time_machine.travel(OPENED, tick=False):
        answer(count(agent, key("a"), ("dev", "1"), ("dev", "2")), ("dev", "1"), ("dev", "2"))
    with time_machine.travel(OPENED + timedelta(seconds=21), tick=False):
        counted = count(agent, key("a"), ("dev", "1"), ("dev", "2"))
    assert counted.due == frozenset(counted.spans.values())

    def locked(*args, **kwargs):
        raise DatabaseError("the chain head is locked")

    monkeypatch.setattr("audit.spans.seal", locked)
    spans.seal_if_due(counted)  # fails open: the refresh goes on

    (logged,) = [r for r in caplog.records if r.name == "audit.spans"]
    assert logged.getMessage() == "2 spans due a seal could not be sealed"
    assert logged.exc_info is not None
    assert spans.calls_on_record() == 4


def test_answers_are_matched_to_their_counts_as_stored(agent):
    """A meeting counted twice in one statement, an ID and an outcome longer than their columns:
    each answer lands on the span and count it was counted in."""
    long_id, long_name = "9" * 70, "d" * 70
    counted = count(agent, key("a"), ("dev", long_id), ("dev", "1"), ("dev", "1"), (long_name, "5"))
    spans.record_answers(
        counted,
        [
            spans.Answered(long_name, "5", "found"),
            spans.Answered("dev", long_id, "x" * 40),
            spans.Answered("dev", "1", "found"),
            spans.Answered("dev", "1", "found"),
        ],
    )

    assert {
        (item.span.deployment, item.span.meeting_id, item.facts.calls): dict(item.facts.outcomes)
        for item in open_now()
    } == {
        ("dev", long_id[:64], 1): {"x" * 32: 1},
        ("dev", "1", 2): {"found": 2},
        (long_name[:64], "5", 1): {"found": 1},
    }


def test_a_first_looks_call_is_counted_sealed_when_it_was(agent):
    with time_machine.travel(OPENED, tick=False):
        counted = count(agent, key("a"), ("dev", "1"))
    looked = OPENED + timedelta(seconds=3)  # its answer, and its full entry, came later
    with time_machine.travel(looked, tick=False):
        spans.record_answers(counted, [spans.Answered("dev", "1", "found")], sealed=True)

    span = Span.objects.get()
    assert (span.calls, span.sealed_calls, span.sealed_at) == (1, 1, looked)


def test_a_first_look_that_was_retried_counts_every_request_sealed(agent):
    counted = count(agent, key("a"), ("dev", "1"))
    spans.record_answers(counted, [spans.Answered("dev", "1", "found", attempts=2)], sealed=True)

    span = Span.objects.get()
    assert (span.calls, span.sealed_calls) == (2, 2)


def test_open_spans_take_filters_and_read_their_counts_in_one_query(
    agent, django_assert_num_queries
):
    counted = count(agent, key("a"), ("dev", "1"), ("dev", "2"), ("dev", "3"))
    answer(counted, ("dev", "1"), ("dev", "2"), ("dev", "3"))

    with django_assert_num_queries(2):  # the spans, then every span's counts
        shown = open_now()
    # Counted in one statement, so equally recent: the newest span first.
    assert [item.span.meeting_id for item in shown] == ["3", "2", "1"]
    assert [item.span.meeting_id for item in open_now(meeting_id="2")] == ["2"]


def test_a_span_opened_by_a_call_opens_when_that_call_was_counted(agent):
    """What the auditor reads as its opening and its first part's start: the first call's time,
    the same instant as its last call while it has only one."""
    count(agent, key("a"), ("dev", "1"))  # the real clock: no two reads of it are the same

    span = Span.objects.get()
    assert span.opened_at == span.last_at


def test_spans_that_may_be_quiet_are_read_in_one_query_however_many_are_open(
    agent, django_assert_num_queries
):
    """`seal_quiet` runs with every audit page: the spans it may seal are found by what decides
    it (each one's `open_until`) in one query, not with one more query each."""
    with time_machine.travel(OPENED, tick=False):
        for meeting in ("1", "2", "3"):
            count(agent, key("a"), ("dev", meeting), quiet_after=600)
    with time_machine.travel(OPENED + timedelta(seconds=50), tick=False):
        count(agent, key("b"), ("dev", "4"), quiet_after=30)  # the shortest, still refreshing

    with (
        time_machine.travel(OPENED + timedelta(seconds=60), tick=False),
        django_assert_num_queries(1),
    ):
        assert spans.seal_quiet() == []
    assert Span.objects.count() == 4


def test_a_span_never_sealed_is_due_once_it_has_been_open_longer_than_seal_every(agent, settings):
    """A table's or watch list's span has no first look to start it sealed: it is first due
    AUDIT_SPAN_SEAL_EVERY after it opened, not at the first audit page that comes along."""
    settings.AUDIT_SPAN_SEAL_EVERY = 20
    with time_machine.travel(OPENED, tick=False):
        answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))
    with time_machine.travel(OPENED + timedelta(seconds=20), tick=False):
        answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))
        assert spans.seal_due() == []
    with time_machine.travel(OPENED + timedelta(seconds=21), tick=False):
        (part,) = spans.seal_due()

    assert (part.calls, part.tally["final"]) == (2, False)
    assert Span.objects.get().sealed_calls == 2


def test_a_span_sealed_recently_is_not_due_again_however_long_ago_it_opened(agent, settings):
    settings.AUDIT_SPAN_SEAL_EVERY = 20
    with time_machine.travel(OPENED, tick=False):
        answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))
    with time_machine.travel(OPENED + timedelta(seconds=21), tick=False):
        (first,) = spans.seal_due()
    with time_machine.travel(OPENED + timedelta(seconds=25), tick=False):
        answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))
    with time_machine.travel(OPENED + timedelta(seconds=30), tick=False):
        assert spans.seal_due() == []  # sealed 9 s ago
    with time_machine.travel(OPENED + timedelta(seconds=42), tick=False):
        (second,) = spans.seal_due()

    assert (first.calls, second.calls) == (1, 1)
    assert second.tally["from"] == "2027-02-28T20:00:21Z"


def test_a_span_with_nothing_unsealed_is_not_due(agent, settings):
    """Nothing to seal leaves the span alone: its next part still begins at its last seal."""
    settings.AUDIT_SPAN_SEAL_EVERY = 20
    with time_machine.travel(OPENED, tick=False):
        answer(count(agent, key("a"), ("dev", "1")), ("dev", "1"))
    with time_machine.travel(OPENED + timedelta(seconds=21), tick=False):
        spans.seal_due()
    with time_machine.travel(OPENED + timedelta(seconds=50), tick=False):
        assert spans.seal_due() == []
    assert Span.objects.get().sealed_at == OPENED + timedelta(seconds=21)


# --- Pushed pages (third run): first looks, holding a page open, sealing a closed stream --------


def test_a_first_look_is_a_single_call_of_this_page_and_staff_member_since_then(agent, outsider):
    """What a page's first push stream does not count again (meetings/lookups.py): the
    meetings this page's first look counted once, since the limit's window began. Not a
    meeting refreshed since, another page's, another staff member's, or one looked up before."""
    long_id, long_name = "9" * 70, "d" * 70
    with time_machine.travel(OPENED - timedelta(seconds=1), tick=False):
        count(agent, key("a"), ("dev", "5"))  # before the window
    with time_machine.travel(OPENED, tick=False):
        count(agent, key("a"), ("dev", "1"), ("dev", long_id), (long_name, "7"))
        count(agent, key("a"), ("dev", "2"))
        count(agent, key("a"), ("dev", "2"))  # refreshed: not a first look any more
        count(outsider, key("a"), ("dev", "3"))  # the same key, someone else's span
        count(agent, key("b"), ("dev", "4"))  # another page
    asked = [("dev", str(n)) for n in range(1, 7)] + [("dev", long_id), (long_name, "7")]

    def looks(span_key: str = key("a"), meetings=asked, actor=agent) -> int:
        return spans.first_looks(key=span_key, actor_id=actor.pk, meetings=meetings, since=OPENED)

    assert looks() == 3  # dev/1, and the two cut to their columns as they were counted
    assert looks(meetings=[("dev", "1")]) == 1
    assert looks(meetings=[("dev", "2"), ("dev", "5"), ("dev", "6")]) == 0
    assert looks(actor=outsider) == 1
    assert looks(key("b")) == 1
    assert looks("") == 0  # no key: no page to have looked
    assert looks(meetings=[]) == 0


def test_a_page_held_open_goes_quiet_its_quiet_for_from_now_at_the_earliest(agent, outsider):
    with time_machine.travel(OPENED, tick=False):
        held = count(agent, key("a"), ("dev", "1"), ("dev", "2"), quiet_after=30)
        others = [
            count(outsider, key("a"), ("dev", "3"), quiet_after=30),  # the same key, not theirs
            count(agent, key("b"), ("dev", "4"), quiet_after=30),  # another page
        ]
        spans.hold_open(key=key("a"), actor_id=agent.pk, quiet_for=45)
        assert {s.open_until for s in Span.objects.filter(pk__in=held.spans.values())} == {
            OPENED + timedelta(seconds=45)
        }
    later = OPENED + timedelta(seconds=10, milliseconds=500)
    with time_machine.travel(later, tick=False):
        count(agent, key("a"), ("dev", "2"), quiet_after=30)  # a refresh meanwhile
        spans.hold_open(key=key("a"), actor_id=agent.pk, quiet_for=45)
        spans.hold_open(key=key("a"), actor_id=agent.pk, quiet_for=5)  # never brought forward

    open_until = dict(Span.objects.values_list("meeting_id", "open_until"))
    # 45 s from the last hold, however long ago the span's last call was.
    assert open_until == {
        "1": later + timedelta(seconds=45),
        "2": later + timedelta(seconds=45),
        "3": OPENED + timedelta(seconds=30),
        "4": OPENED + timedelta(seconds=30),
    }
    assert [o.key for o in others] == [key("a"), key("b")]


def test_a_closed_stream_seals_its_own_spans_finally_at_once(agent, outsider):
    with time_machine.travel(OPENED, tick=False):
        closing = count(agent, key("a"), ("dev", "1"), ("dev", "2"), quiet_after=30)
        answer(closing, ("dev", "1"), ("dev", "2"))
        spans.seal([closing.spans[("dev", "2")]], final=False)  # nothing left to seal
        answer(count(outsider, key("a"), ("dev", "3"), quiet_after=30), ("dev", "3"))
        answer(count(agent, key("b"), ("dev", "4"), quiet_after=30), ("dev", "4"))
    with time_machine.travel(OPENED + timedelta(milliseconds=1), tick=False):  # closed at once
        (part,) = spans.seal_closed(key=key("a"), actor_id=agent.pk)

        assert (part.meeting_id, part.calls, part.tally["final"]) == ("1", 1, True)
        assert spans.seal_closed(key=key("c"), actor_id=agent.pk) == []
    left = dict(Span.objects.values_list("meeting_id", "open_until"))
    assert left == dict.fromkeys("234", OPENED + timedelta(seconds=30))
    assert spans.calls_on_record() == 4


def test_spans_are_sealed_in_batches_every_one_of_them(agent, monkeypatch):
    """`audit_seal` seals SEAL_BATCH spans a transaction (one lock of the chain head each):
    every span is sealed, and every part returned, however many batches it takes."""
    monkeypatch.setattr(spans, "SEAL_BATCH", 2)
    batches = []
    seal = spans.seal

    def one_batch(span_ids, *, final):
        batches.append(len(span_ids))
        return seal(span_ids, final=final)

    monkeypatch.setattr(spans, "seal", one_batch)
    with time_machine.travel(OPENED, tick=False):
        for meeting in "12345":
            answer(count(agent, key("a"), ("dev", meeting)), ("dev", meeting))
    with time_machine.travel(OPENED + timedelta(minutes=10), tick=False):
        parts = spans.seal_quiet()

    assert batches == [2, 2, 1]
    assert sorted(part.meeting_id for part in parts) == list("12345")
    assert not Span.objects.exists()
    assert spans.calls_on_record() == 5


def test_a_key_not_shaped_like_one_is_replaced_by_a_new_key_each_time(agent):
    shown = [count(agent, text, ("dev", "1")).key for text in ("", "short", "é" * 22, "x" * 33)]

    assert all(spans.KEY.fullmatch(k) for k in shown)
    assert len(set(shown)) == 4  # never one shared stand-in key
    assert spans.usable_key(key("a")) == key("a")
    assert spans.usable_key("short") == ""


def test_holding_a_page_open_is_one_statement_however_many_rows_it_has(
    agent, django_assert_num_queries
):
    """A pushed table holds its spans open every HOLD_OPEN_EVERY seconds for as long as it is
    open: one update, however many rows."""
    with time_machine.travel(OPENED, tick=False):
        count(agent, key("a"), *[("dev", str(n)) for n in range(1, 6)], quiet_after=30)
    with (
        time_machine.travel(OPENED + timedelta(seconds=5), tick=False),
        django_assert_num_queries(1),
    ):
        spans.hold_open(key=key("a"), actor_id=agent.pk, quiet_for=45)
    assert set(Span.objects.values_list("open_until", flat=True)) == {
        OPENED + timedelta(seconds=5 + 45)
    }


def test_a_connvo_request_id_longer_than_its_column_is_kept_cut_to_it(agent):
    """Connvo's request ids come from outside: one longer than the span's column is stored cut
    to its 64 characters (PostgreSQL would refuse it whole, and with it the answer)."""
    long_request = "r" * 70
    counted = count(agent, key("a"), ("dev", "1"))
    answer(counted, ("dev", "1"), request_id=long_request)

    (part,) = spans.seal(counted.spans.values(), final=False)

    assert (part.tally["first_request"], part.tally["last_request"]) == (
        long_request[:64],
        long_request[:64],
    )


@pytest.mark.django_db(transaction=True)
def test_a_page_key_naming_someone_elses_span_of_one_of_several_meetings_counts_each_once(
    agent, outsider
):
    # A table counts its meetings in one statement, in a transaction: when the key turns out to
    # name someone else's span of one of them, the rows written for the others are undone
    # before they are counted again under a new key. Without the transaction they stay, and
    # every call of that table is on record twice.
    taken = key("t")
    count(outsider, taken, ("dev", "2"))

    counted = count(agent, taken, ("dev", "1"), ("dev", "2"))

    assert counted.key != taken
    assert spans.calls_on_record() == 1 + 2
    assert not Span.objects.filter(key=taken, actor=agent).exists()


@pytest.mark.django_db(transaction=True)
def test_an_answer_that_also_moves_its_span_is_recorded_whole_or_not_at_all(agent, monkeypatch):
    # An answer with a Connvo request id updates its span's first and last request id as well
    # as its counts: two statements, in one transaction (the span first, the order in which a
    # seal locks). When either fails, the other is undone, and the caller, told so, does not
    # show the answer.
    counted = count(agent, key("a"), ("dev", "1"))

    def refused(queryset, **changes):
        raise DatabaseError("the span's row could not be written")

    monkeypatch.setattr(QuerySet, "update", refused)
    with pytest.raises(DatabaseError):
        answer(counted, ("dev", "1"), request_id="connvo-request-1")
    monkeypatch.undo()
    assert not SpanCount.objects.exists()

    def counts_refused(per_outcome, *, sealed):
        raise DatabaseError("the counts could not be written")

    monkeypatch.setattr(spans, "_upsert_counts", counts_refused)
    with pytest.raises(DatabaseError):
        answer(counted, ("dev", "1"), request_id="connvo-request-1")
    monkeypatch.undo()
    span = Span.objects.get()
    assert (span.first_request_id, span.last_request_id) == ("", "")

    answer(counted, ("dev", "1"), request_id="connvo-request-1")
    assert SpanCount.objects.get().calls == 1
    assert Span.objects.get().last_request_id == "connvo-request-1"


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's BEGIN is a statement Django logs"
)
@pytest.mark.django_db(transaction=True)
def test_a_refresh_counts_and_answers_in_one_statement_each_with_no_transaction_of_its_own(agent):
    # Every refresh of a meeting page counts one meeting and, most often, records an answer
    # that changes only the counts: each is one statement, atomic on its own, so neither opens
    # a transaction (BEGIN and COMMIT would be two more round trips each; cc817ae).
    count(agent, key("a"), ("dev", "1"))  # the span exists, as on every refresh after the first
    with CaptureQueriesContext(connection) as statements:
        counted = count(agent, key("a"), ("dev", "1"))
        answer(counted, ("dev", "1"))

    said = [query["sql"].split()[0].upper() for query in statements.captured_queries]
    assert "BEGIN" not in said, said
    assert len(said) == 2, said
