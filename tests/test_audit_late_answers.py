"""A Connvo answer that arrives after its page's span was sealed finally (audit/spans.py): the call
is already on record as unanswered, so its outcome is appended as a chained entry of no calls,
instead of failing the refresh on a span that no longer exists. Transactional: the foreign key
from a span's counts to the span is checked when the transaction commits, on SQLite and on
PostgreSQL alike."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.signals import post_delete, pre_delete
from django.urls import reverse
from django.utils import timezone

from audit import chain, overview, records, rollup, selectors, spans
from audit.models import Action, ActivityHour, AuditEntry, Span, SpanCount, Via
from audit.services import Origin


def count(agent, key: str, *meetings: tuple[str, str], via: Via = Via.REFRESH) -> spans.Counted:
    return spans.count_calls(
        key=key,
        origin=Origin(user=agent, username=agent.username, client_ip="192.0.2.7"),
        via=via,
        meetings=list(meetings),
        quiet_after=30,
    )


def summed_lookups() -> dict[str, int]:
    """The lookups' figures per outcome, as the summaries count them (audit/rollup.py)."""
    rollup.catch_up()
    return dict(
        ActivityHour.objects.filter(action=Action.LOOKUP)
        .values("outcome")
        .annotate(calls=Sum("entries"))
        .values_list("outcome", "calls")
    )


def seal_quietly(counted: spans.Counted) -> list[AuditEntry]:
    """Seal the page's spans finally, as `audit_seal` does once the page has gone quiet."""
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        return spans.seal_quiet()


@pytest.mark.usefixtures("transactional_db")
def test_an_answer_after_its_span_was_sealed_is_recorded_as_a_late_answer(agent):
    counted = count(agent, spans.new_key(), ("dev", "1"))
    (sealed,) = seal_quietly(counted)
    assert (sealed.calls, sealed.tally["unanswered"]) == (1, 1)
    assert not Span.objects.exists()

    handed_back = spans.record_answers(
        counted, [spans.Answered("dev", "1", "found", request_id="req-9")]
    )

    # Recorded here, as a refresh's late answer: nothing is handed back (only a first look's,
    # `sealed=True`, is, for its caller's own entry to say so).
    assert handed_back == []
    late = AuditEntry.objects.order_by("id").last()
    assert late.pk != sealed.pk
    assert (late.action, late.via, late.deployment, late.meeting_id) == (
        Action.LOOKUP,
        Via.REFRESH,
        "dev",
        "1",
    )
    assert (late.outcome, late.calls, late.actor, late.connvo_request_id) == (
        "found",
        0,
        agent,
        "req-9",
    )
    assert late.tally == {"kind": "late_answer", "span": counted.key}
    assert "already counted as unanswered" in late.detail and "retries" not in late.detail
    assert not SpanCount.objects.exists()
    assert spans.calls_on_record() == 1  # the one call Connvo received, once
    assert chain.verify().ok


@pytest.mark.usefixtures("transactional_db")
def test_late_answers_of_a_table_are_recorded_beside_the_answers_still_counted(agent):
    """One table refresh: one row's span was sealed meanwhile, the other's is still open."""
    key = spans.new_key()
    first = count(agent, key, ("dev", "1"))
    seal_quietly(first)
    both = count(agent, key, ("dev", "1"), ("dev", "2"))
    Span.objects.filter(meeting_id="1").delete()  # sealed by another worker in between
    assert spans.calls_on_record() == 1 + 1  # the sealed call, and row 2's

    spans.record_answers(
        both,
        [spans.Answered("dev", "1", "gone"), spans.Answered("dev", "2", "found", attempts=2)],
    )

    late = AuditEntry.objects.order_by("id").last()
    assert (late.meeting_id, late.outcome, late.calls) == ("1", "gone", 0)
    (open_count,) = SpanCount.objects.all()
    assert (open_count.span.meeting_id, open_count.outcome, open_count.calls) == ("2", "found", 2)
    assert spans.calls_on_record() == 1 + 2  # row 2 was retried: two requests
    assert chain.verify().ok


@pytest.mark.usefixtures("transactional_db")
def test_a_late_answer_that_was_retried_puts_its_retries_on_record(agent):
    counted = count(agent, spans.new_key(), ("dev", "1"))
    seal_quietly(counted)

    spans.record_answers(counted, [spans.Answered("dev", "1", "found", attempts=3)])

    late = AuditEntry.objects.order_by("id").last()
    assert (late.outcome, late.calls) == ("found", 2)  # the first was counted, and sealed
    assert late.detail.endswith("adds no call but its 2 retries.")
    assert records.record_words(late).endswith("; 2 retries on the way, counted here.")
    assert spans.calls_on_record() == 3
    assert chain.verify().ok


@pytest.mark.usefixtures("transactional_db")
def test_a_first_look_whose_span_was_sealed_meanwhile_is_returned_not_appended(agent):
    """A first look's outcome is its caller's own full entry, in the same transaction: so the
    late answer is handed back for that entry to say so, nothing is appended here, and nothing
    fails."""
    counted = count(agent, spans.new_key(), ("dev", "1"), ("dev", "2"))
    Span.objects.filter(meeting_id="1").delete()  # sealed by another worker in between
    entries = AuditEntry.objects.count()
    answers = [spans.Answered("dev", "1", "found"), spans.Answered("dev", "2", "found")]

    with transaction.atomic():
        late = spans.record_answers(counted, answers, sealed=True)

    assert late == answers[:1]
    assert AuditEntry.objects.count() == entries
    assert SpanCount.objects.get().span.meeting_id == "2"


@pytest.mark.usefixtures("transactional_db")
def test_a_first_look_sealed_while_connvo_answered_counts_its_call_once(
    agent_client, agent_token, fake_connvo
):
    """Through the console: the page goes quiet while Connvo takes its time (here, by the clock
    of the sealer, which a stalled worker or a trickled answer would make real), `audit_seal`
    seals its span with the call unanswered, and then the answer comes. The full entry of the
    first look says the outcome, and adds no call: calls on record stay the calls Connvo got."""
    fake_connvo.misbehave("slow", delay=1.0)
    sealed: list[AuditEntry] = []

    def sealer() -> None:
        try:
            deadline = time.monotonic() + 10
            while not Span.objects.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            Span.objects.update(open_until=timezone.now() - timedelta(seconds=1))
            sealed.extend(spans.seal_quiet())
        finally:
            connection.close()

    thread = threading.Thread(target=sealer)
    thread.start()
    page = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )
    thread.join()

    assert page.status_code == 200 and "Support Team Daily Standup" in page.content.decode()
    assert [(entry.calls, entry.tally["unanswered"]) for entry in sealed] == [(1, 1)]
    first_look = AuditEntry.objects.filter(via=Via.PAGE).get()
    assert (first_look.outcome, first_look.calls) == ("found", 0)
    assert first_look.tally == {"kind": "late_answer", "span": sealed[0].tally["span"]}
    assert first_look.detail.startswith("Answered after its page's span was sealed")
    assert spans.calls_on_record() == fake_connvo.call_count == 1
    per_outcome = summed_lookups()
    assert per_outcome == {records.UNANSWERED: 1}  # the one call, once, as it was sealed
    assert chain.verify().ok


@pytest.mark.usefixtures("transactional_db")
def test_an_auditor_reads_a_late_answer_with_its_note(agent, auditor_client):
    counted = count(agent, spans.new_key(), ("dev", "1"))
    seal_quietly(counted)
    spans.record_answers(counted, [spans.Answered("dev", "1", "found")])
    late = AuditEntry.objects.order_by("id").last()

    listed = auditor_client.get(reverse("audit:list"))
    shown = auditor_client.get(reverse("audit:entry", args=[late.pk]))

    assert listed.status_code == shown.status_code == 200
    assert "already counted as unanswered" in shown.content.decode()
    # Said in words where its 0 calls are shown, on the list, and in the exports' summary.
    words = "A late answer: its call is counted, as unanswered, in its page&#x27;s record sealed"
    assert words in shown.content.decode()
    assert words in auditor_client.get(reverse("audit:list"), {"refreshes": "on"}).content.decode()
    exported = auditor_client.get(reverse("audit:export", args=["jsonl"]), {"refreshes": "on"})
    lines = b"".join(exported.streaming_content).decode().splitlines()
    (document,) = [json.loads(line) for line in lines if json.loads(line)["id"] == late.pk]
    assert document["summary"] == records.record_words(late)
    assert document["summary"].startswith("A late answer")


@pytest.mark.usefixtures("transactional_db")
def test_the_summaries_count_a_late_answers_call_once(agent):
    """The overview, flags and summaries count calls (audit/records.py): the late answer's call
    is counted in its sealed part, as unanswered, so its entry adds only its retries."""
    one = count(agent, spans.new_key(), ("dev", "1"), ("dev", "3"))
    seal_quietly(one)
    two = count(agent, spans.new_key(), ("dev", "2"))
    late = [spans.Answered("dev", "1", "found", attempts=2), spans.Answered("dev", "3", "found")]
    spans.record_answers(one, late)
    spans.record_answers(two, [spans.Answered("dev", "2", "found", attempts=3)])
    seal_quietly(two)
    assert spans.calls_on_record() == 2 + 1 + 3
    per_outcome = summed_lookups()
    # The late calls once each (unanswered, in their sealed part), the one retry found; and 3
    # found in the second span.
    assert per_outcome == {records.UNANSWERED: 2, "found": 1 + 3}
    assert records.calls_by_outcome(
        action=Action.LOOKUP,
        outcome="found",
        calls=2,
        repeats=None,
        tally={"kind": records.LATE_ANSWER, "span": "k"},
    ) == {"found": 2}


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite runs one writer at a time (BEGIN IMMEDIATE): an answer waits for the seal",
)
@pytest.mark.parametrize(
    "paused",
    [pre_delete, post_delete],
    ids=["after the seal read its counts", "after the seal deleted the span"],
)
@pytest.mark.usefixtures("transactional_db")
def test_an_answer_during_a_final_seal_is_recorded_once_and_never_fails(agent, paused):
    """PostgreSQL lets an answer's statement run while another worker's final seal is between its
    read of the counts and its commit: the answer must then neither be lost (counted into a
    span the seal has already summed, and deleted with it) nor fail (its count referring to a
    span deleted before it commits). It waits for the seal, and is a late answer."""
    counted = count(agent, spans.new_key(), ("dev", "1"))
    Span.objects.update(open_until=timezone.now() - timedelta(seconds=1))  # the page went quiet
    in_seal, go_on = threading.Event(), threading.Event()
    sealed: list[AuditEntry] = []
    failed: list[BaseException] = []

    def pause(**kwargs) -> None:
        in_seal.set()
        go_on.wait(10)

    def sealer() -> None:
        try:
            sealed.extend(spans.seal_quiet())
        finally:
            connection.close()

    def answer() -> None:
        try:
            spans.record_answers(counted, [spans.Answered("dev", "1", "found")])
        except BaseException as error:  # reported by the assertion below
            failed.append(error)
        finally:
            connection.close()

    paused.connect(pause, sender=Span)
    try:
        seal_thread = threading.Thread(target=sealer)
        seal_thread.start()
        assert in_seal.wait(10)
        answer_thread = threading.Thread(target=answer)
        answer_thread.start()
        answer_thread.join(0.5)  # as far as it gets while the seal is under way
        go_on.set()
        seal_thread.join(10)
        answer_thread.join(10)
    finally:
        paused.disconnect(pause, sender=Span)
        go_on.set()

    assert not failed
    assert [(entry.calls, entry.tally["unanswered"]) for entry in sealed] == [(1, 1)]
    late = AuditEntry.objects.order_by("id").last()
    assert (late.outcome, late.calls, late.tally["kind"]) == ("found", 0, records.LATE_ANSWER)
    assert not Span.objects.exists() and not SpanCount.objects.exists()
    assert spans.calls_on_record() == 1
    assert chain.verify().ok


def meeting_overview(**fields) -> overview.Overview:
    return overview.overview(
        selectors.EntryFilter(**fields),
        now=timezone.now() + timedelta(minutes=5),
        zone=timezone.get_current_timezone(),
    )


@pytest.mark.usefixtures("transactional_db")
def test_a_late_refresh_counts_its_call_once_on_the_meeting_and_staff_pages(agent):
    """The meeting page sums its figures from the meeting's index (WEIGHT, which cannot tell a
    late answer from a lookup refused before any call) and corrects them by the records with a
    tally: the late answer's call, in its sealed part as unanswered, is not counted again."""
    counted = count(agent, spans.new_key(), ("dev", "1"))
    seal_quietly(counted)
    spans.record_answers(counted, [spans.Answered("dev", "1", "found")])
    assert spans.calls_on_record() == 1
    rollup.catch_up()

    (place,) = selectors.meeting_deployments(meeting_id="1")
    (viewer,) = selectors.who_looked(meeting_id="1")
    on_the_meeting = meeting_overview(meeting_id="1", include_refreshes=True)
    on_the_staff_page = meeting_overview(staff=agent.username, include_refreshes=True)

    assert (place.refreshes, place.lookups) == (viewer.refreshes, viewer.lookups) == (1, 0)
    assert overview.staff_summary(username=agent.username).refreshes == 1
    for figures in (on_the_meeting, on_the_staff_page):
        assert figures.lookups == sum(o.lookups for o in figures.outcomes) == 1
        assert [(o.outcome, o.lookups) for o in figures.outcomes] == [(records.UNANSWERED, 1)]
        assert figures.top_staff == [(agent.username, 1)]


@pytest.mark.usefixtures("transactional_db")
def test_a_late_first_look_counts_once_beside_a_lookup_refused_before_any_call(agent, audit_entry):
    """A late answer with no retries and a lookup refused before any call both have no calls;
    only the refused lookup stands for a request of its own (and a counted record for its
    repeats)."""
    counted = count(agent, spans.new_key(), ("dev", "1"), via=Via.PAGE)
    seal_quietly(counted)
    spans.record_answers(counted, [spans.Answered("dev", "1", "found")])
    audit_entry(
        username=agent.username,
        deployment="dev",
        meeting_id="1",
        via=Via.PAGE,
        outcome="lookup_limit",
        calls=0,
    )
    rollup.catch_up()

    (place,) = selectors.meeting_deployments(meeting_id="1")
    (viewer,) = selectors.who_looked(meeting_id="1")
    figures = meeting_overview(meeting_id="1")

    assert (place.lookups, place.refreshes) == (2, 0)
    assert (viewer.lookups, viewer.found) == (2, 0)
    assert figures.lookups == sum(o.lookups for o in figures.outcomes) == 2
    assert {o.outcome: o.lookups for o in figures.outcomes} == {
        records.UNANSWERED: 1,
        "lookup_limit": 1,
    }
    assert overview.staff_summary(username=agent.username).lookups == 2


def test_a_late_first_looks_detail_is_the_note_then_its_own():
    """A late first look that failed keeps its own detail after the note, a space between."""
    counted = spans.Counted(
        key="k" * 22, spans={}, origin=Origin(user=None, username="agent"), via=Via.PAGE
    )
    answer = spans.Answered("dev", "1", "timeout", attempts=2)

    fields = spans.late_answer_fields(counted, answer, detail="Connvo did not answer in 10 s.")

    assert fields["detail"] == (
        "Answered after its page's span was sealed: the call was already counted as unanswered "
        "there, so this entry adds no call but its 1 retries. Connvo did not answer in 10 s."
    )
    assert fields["calls"] == 1
    assert spans.late_answer_fields(counted, answer)["detail"].endswith("its 1 retries.")
