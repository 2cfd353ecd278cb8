"""A page's live refreshes are one record, not one row each (audit/spans.py): the span's life
cycle through real pages and the fake Connvo — opened by the first look, counted before each
call, sealed while open and when quiet, and calls that were counted but never answered."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit import chain, selectors, spans
from audit.models import AuditEntry, Span, SpanCount, Via
from audit.services import Origin
from meetings import connvo, pasted_tokens
from meetings.deployments import get_deployment
from meetings.live import Shown
from tests.conftest import _user, examples
from tests.test_live_refresh import HTMX, poll_state
from tests.test_table_view import poller, table_url
from tests.test_table_view import refresh as table_refresh

pytestmark = pytest.mark.django_db


def detail_url(fake, label: str) -> str:
    return reverse("meetings:detail", args=["dev", fake.meeting_id(label)])


def open_page(client, fake, label: str = "standup") -> dict:
    """The meeting page's first look; what its poller will send back."""
    return poll_state(client.get(detail_url(fake, label)).content.decode())


def refresh(client, fake, span: str, label: str = "standup", **params):
    return client.get(detail_url(fake, label), {"span": span, "interval": 10, **params}, **HTMX)


def seal_after(seconds: float) -> str:
    """Run `audit_seal` as if `seconds` had passed; return what it printed."""
    out = StringIO()
    with time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False):
        call_command("audit_seal", stdout=out)
    return out.getvalue()


def open_now(**entry_filter: str) -> list:
    """The open spans the audit pages show for this filter."""
    return selectors.open_spans(selectors.EntryFilter(**entry_filter), now=timezone.now())


QUIET = 10 * 60  # longer than any span stays open after its last call in these tests


# --- Open -----------------------------------------------------------------------------------


def test_first_look_is_a_full_entry_and_opens_the_pages_span(
    agent_client, agent_token, fake_connvo
):
    page = open_page(agent_client, fake_connvo)

    entry = AuditEntry.objects.get()
    assert (entry.via, entry.calls, entry.outcome, entry.tally) == (Via.PAGE, 1, "found", None)
    assert spans.KEY.fullmatch(page["span"])
    span = Span.objects.get()
    assert (span.key, span.via, span.actor_username) == (page["span"], Via.REFRESH, "agent")
    # The first look's call is counted and, with its entry, already sealed.
    assert (span.calls, span.sealed_calls) == (1, 1)
    assert list(span.counts.values_list("outcome", "calls", "sealed")) == [("found", 1, 1)]


def test_a_lookup_refused_before_any_call_is_an_entry_of_no_calls_and_no_span(
    agent_client, agent_token
):
    agent_client.get(reverse("meetings:detail", args=["dev", "not-an-id"]))

    entry = AuditEntry.objects.get()
    assert (entry.outcome, entry.calls) == ("invalid_id", 0)
    assert not Span.objects.exists()


# --- Count ----------------------------------------------------------------------------------


def test_refreshes_are_counted_in_the_span_and_append_nothing(
    agent_client, agent_token, fake_connvo
):
    page = open_page(agent_client, fake_connvo)

    for _ in range(5):
        response = refresh(agent_client, fake_connvo, page["span"], seen=page["seen"])
        assert response.status_code == 204

    assert AuditEntry.objects.count() == 1
    span = Span.objects.get()
    assert (span.calls, span.sealed_calls) == (6, 1)
    assert list(span.counts.values_list("outcome", "calls", "sealed")) == [("found", 6, 1)]
    assert spans.calls_on_record() == fake_connvo.call_count == 6


def test_open_spans_show_their_current_counts(agent_client, agent_token, fake_connvo):
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])
    fake_connvo.misbehave("status", status=500, times=1)
    refresh(agent_client, fake_connvo, page["span"])

    (shown,) = open_now(meeting_id=fake_connvo.meeting_id("standup"))
    assert (shown.span.key, shown.span.actor_username, shown.facts.calls, shown.facts.sealed) == (
        page["span"],
        "agent",
        3,
        1,
    )
    assert dict(shown.facts.outcomes) == {"found": 2, "server_error": 1}
    assert shown.facts.unanswered == 0
    assert open_now(staff="someone else") == []


def test_an_open_span_names_its_first_and_last_connvo_request(
    agent_client, agent_token, fake_connvo
):
    key = spans.new_key()
    for _ in range(2):
        refresh(agent_client, fake_connvo, key, label="private")

    (shown,) = open_now(meeting_id=fake_connvo.meeting_id("private"))
    assert dict(shown.facts.outcomes) == {"not_visible": 2}
    requests = [call.request_id for call in fake_connvo.calls]
    assert (shown.facts.first_request, shown.facts.last_request) == (requests[0], requests[1])

    seal_after(QUIET)
    tally = AuditEntry.objects.get().tally
    assert (tally["first_request"], tally["last_request"]) == (requests[0], requests[1])


def test_an_answer_that_cannot_be_recorded_is_not_shown_and_its_call_stays_on_record(
    agent_client, agent_token, fake_connvo, monkeypatch
):
    page = open_page(agent_client, fake_connvo)

    def unavailable(*args, **kwargs):
        raise DatabaseError("the span table is locked")

    monkeypatch.setattr("audit.spans.record_answers", unavailable)
    response = refresh(agent_client, fake_connvo, page["span"])

    html = response.content.decode()
    assert poll_state(html)["status"] == "failing"
    assert "could not be recorded" in html
    assert 'id="metric-values"' not in html  # nothing of Connvo's answer
    assert spans.calls_on_record() == fake_connvo.call_count == 2


def test_a_refresh_whose_call_cannot_be_counted_makes_no_call(
    agent_client, agent_token, fake_connvo, monkeypatch
):
    page = open_page(agent_client, fake_connvo)

    def unavailable(**kwargs):
        raise DatabaseError("the span table is locked")

    monkeypatch.setattr("audit.spans.count_calls", unavailable)
    response = refresh(agent_client, fake_connvo, page["span"])

    assert poll_state(response.content.decode())["status"] == "failing"
    assert fake_connvo.call_count == 1  # the first look only


# --- Seal on quiet --------------------------------------------------------------------------


def test_a_quiet_page_is_sealed_into_one_entry_with_its_tally(
    agent_client, agent_token, fake_connvo
):
    page = open_page(agent_client, fake_connvo)
    for _ in range(4):
        refresh(agent_client, fake_connvo, page["span"])

    printed = seal_after(QUIET)

    first, sealed = AuditEntry.objects.order_by("id")
    assert first.via == Via.PAGE
    assert (sealed.action, sealed.via, sealed.calls, sealed.outcome) == (
        "lookup",
        Via.REFRESH,
        4,
        "found",
    )
    assert (sealed.meeting_id, sealed.actor_username) == (
        fake_connvo.meeting_id("standup"),
        "agent",
    )
    assert sealed.http_status is None and sealed.latency_ms is None
    tally = sealed.tally
    assert tally["kind"] == "span" and tally["span"] == page["span"]
    assert (tally["outcomes"], tally["unanswered"], tally["final"]) == ({"found": 4}, 0, True)
    assert tally["opened"] <= tally["from"] <= tally["to"]
    assert "1 closed" in printed
    assert not Span.objects.exists() and not SpanCount.objects.exists()
    assert spans.calls_on_record() == fake_connvo.call_count == 5
    assert chain.verify().ok


def test_a_page_that_only_looked_once_goes_quiet_without_another_entry(
    agent_client, agent_token, fake_connvo
):
    open_page(agent_client, fake_connvo)

    seal_after(QUIET)

    assert AuditEntry.objects.count() == 1
    assert not Span.objects.exists()
    assert spans.calls_on_record() == 1


def test_a_page_still_refreshing_is_not_sealed_as_quiet(agent_client, agent_token, fake_connvo):
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])

    seal_after(5)

    assert AuditEntry.objects.count() == 1
    assert Span.objects.get().calls == 2


def test_a_page_refreshing_after_its_span_was_sealed_opens_it_again(
    agent_client, agent_token, fake_connvo
):
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])
    seal_after(QUIET)

    response = refresh(agent_client, fake_connvo, page["span"], seen=page["seen"])

    assert response.status_code == 204  # the page carries on with its key
    span = Span.objects.get()
    assert (span.key, span.calls, span.sealed_calls) == (page["span"], 1, 0)
    assert spans.calls_on_record() == fake_connvo.call_count == 3


# --- Seal while open ------------------------------------------------------------------------


def test_a_span_sealed_by_an_auditors_page_does_not_take_its_request_id(
    agent_client, agent_token, fake_connvo, auditor_client
):
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])

    with time_machine.travel(timezone.now() + timedelta(seconds=QUIET), tick=False):
        auditor_client.get(reverse("audit:list"))

    viewed = AuditEntry.objects.get(action="audit_viewed")
    sealed = AuditEntry.objects.get(tally__kind="span")
    assert viewed.request_id
    # It read as the auditor's request's own record, as if the auditor's page had looked up
    # the meeting.
    assert sealed.request_id == ""
    assert chain.verify().ok


def test_an_open_page_is_sealed_inline_once_its_last_seal_is_old(
    agent_client, agent_token, fake_connvo, settings
):
    settings.AUDIT_SPAN_SEAL_EVERY = 20
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])
    refresh(agent_client, fake_connvo, page["span"])

    with time_machine.travel(timezone.now() + timedelta(seconds=21), tick=False):
        refresh(agent_client, fake_connvo, page["span"])

    part = AuditEntry.objects.order_by("id").last()
    assert (part.via, part.calls, part.tally["final"]) == (Via.REFRESH, 3, False)
    assert part.tally["outcomes"] == {"found": 3}
    span = Span.objects.get()
    assert (span.calls, span.sealed_calls) == (4, 4)  # still open, all of it sealed

    refresh(agent_client, fake_connvo, page["span"])
    seal_after(QUIET)

    last = AuditEntry.objects.order_by("id").last()
    assert (last.calls, last.tally["final"], last.tally["span"]) == (1, True, page["span"])
    assert sum(entry.call_count for entry in AuditEntry.objects.all()) == 5
    assert spans.calls_on_record() == fake_connvo.call_count == 5
    assert chain.verify().ok


def test_audit_seal_seals_open_spans_that_are_due(agent_client, agent_token, fake_connvo, settings):
    settings.AUDIT_SPAN_SEAL_EVERY = 20
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])

    printed = seal_after(21)  # due, and not quiet yet (three intervals of 10 s)

    part = AuditEntry.objects.order_by("id").last()
    assert (part.calls, part.tally["final"]) == (1, False)
    assert "1 open" in printed
    assert Span.objects.get().sealed_calls == 2
    assert spans.calls_on_record() == fake_connvo.call_count == 2


# --- Crash between count and answer -----------------------------------------------------------


def crashed_refresh(agent: User, token: str, fake, key: str, label: str = "standup") -> None:
    """What a worker killed mid-refresh leaves: the call counted and made, its answer never
    recorded."""
    meeting_id = fake.meeting_id(label)
    spans.count_calls(
        key=key,
        origin=Origin(user=agent, username=agent.username),
        via=Via.REFRESH,
        meetings=[("dev", meeting_id)],
        quiet_after=30,
    )
    connvo.get_meeting(deployment=get_deployment("dev"), token=token, meeting_id=meeting_id)


def test_a_call_counted_but_never_answered_is_sealed_as_unanswered(
    agent, agent_client, agent_token, fake_connvo
):
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])
    refresh(agent_client, fake_connvo, page["span"])
    crashed_refresh(agent, agent_token, fake_connvo, page["span"])
    assert spans.calls_on_record() == fake_connvo.call_count == 4

    seal_after(QUIET)

    # The part ended in two ways: a record for each, the most frequent first, sealed together.
    found, unanswered = AuditEntry.objects.order_by("id")[1:]
    assert (found.outcome, found.calls, found.tally["outcomes"]) == ("found", 2, {"found": 2})
    assert (unanswered.outcome, unanswered.calls) == ("unanswered", 1)
    assert (unanswered.tally["outcomes"], unanswered.tally["unanswered"]) == ({}, 1)
    assert found.tally["part"] == unanswered.tally["part"] == 3
    assert found.tally["span"] == unanswered.tally["span"] == page["span"]
    assert spans.calls_on_record() == fake_connvo.call_count == 4


def test_a_part_that_ended_in_several_ways_is_a_record_per_outcome_each_found_by_its_filter(
    agent_client, agent_token, fake_connvo, auditor_client
):
    """An auditor following "Server error: 1" from the overview, or filtering the log by an
    outcome, finds the sealed calls that ended in it: before, a part of 3 found and 1 server
    error was one record under "found", which the filter by server error never listed."""
    page = open_page(agent_client, fake_connvo)
    refresh(agent_client, fake_connvo, page["span"])
    fake_connvo.misbehave("status", status=500, times=1)
    refresh(agent_client, fake_connvo, page["span"])
    refresh(agent_client, fake_connvo, page["span"])
    refresh(agent_client, fake_connvo, page["span"])
    seal_after(QUIET)

    found, failed = AuditEntry.objects.order_by("id")[1:]
    assert [(e.outcome, e.calls, e.tally["outcomes"]) for e in (found, failed)] == [
        ("found", 3, {"found": 3}),
        ("server_error", 1, {"server_error": 1}),
    ]
    assert found.tally["part"] == failed.tally["part"] == 4
    assert chain.verify().ok
    assert spans.calls_on_record() == fake_connvo.call_count == 5

    # The auditor looks once the seal has happened (seal_after moved the clock on to it).
    with time_machine.travel(timezone.now() + timedelta(seconds=QUIET + 60), tick=False):
        log = auditor_client.get(reverse("audit:list"), {"outcome": "server_error"})
        # The overview's figure (live refreshes included) links to that filter.
        overview = auditor_client.get(reverse("audit:list"), {"refreshes": "on"}).content.decode()
        detail = auditor_client.get(reverse("audit:entry", args=[failed.pk])).content.decode()
    shown = log.content.decode()
    assert f'href="{reverse("audit:entry", args=[failed.pk])}"' in shown
    assert f'href="{reverse("audit:entry", args=[found.pk])}"' not in shown
    assert "1 of 4 refreshes: 1 Connvo server error" in " ".join(shown.split())
    assert "refreshes=on&amp;outcome=server_error" in overview
    assert "of the part's 4" in detail
    assert "all of its calls:" in detail and "most of its calls" not in detail


def test_a_span_whose_only_call_went_unanswered_is_sealed_as_such(
    agent, agent_token, fake_connvo, auditor_client
):
    crashed_refresh(agent, agent_token, fake_connvo, spans.new_key())

    seal_after(QUIET)

    sealed = AuditEntry.objects.get()
    assert (sealed.calls, sealed.outcome) == (1, "unanswered")
    assert (sealed.tally["outcomes"], sealed.tally["unanswered"]) == ({}, 1)
    assert spans.calls_on_record() == fake_connvo.call_count == 1
    # One name for those calls: the overview's "Unanswered" figure, the filter it links to (a
    # choice of the form's, not an outcome "never in the log"), and the record's badge.
    with time_machine.travel(timezone.now() + timedelta(seconds=QUIET + 60), tick=False):
        log = auditor_client.get(
            reverse("audit:list"), {"refreshes": "on", "outcome": "unanswered"}
        )
    shown = " ".join(log.content.decode().split())
    assert "refreshes=on&amp;outcome=unanswered" in shown
    assert f'href="{reverse("audit:entry", args=[sealed.pk])}"' in shown
    assert '<option value="unanswered" selected>Unanswered</option>' in shown
    assert "never in the log" not in shown


def test_a_first_look_whose_entry_cannot_be_written_shows_nothing_and_stays_on_record(
    agent_client, agent_token, fake_connvo, monkeypatch
):
    def unavailable(**kwargs):
        raise DatabaseError("the audit table is locked")

    monkeypatch.setattr("meetings.lookups.record", unavailable)
    response = agent_client.get(detail_url(fake_connvo, "standup"))

    assert response.status_code == 503
    assert "Daily Standup" not in response.content.decode()
    assert not AuditEntry.objects.exists()
    # Neither the entry nor the call's seal in the span was written: the call is counted, open.
    span = Span.objects.get()
    assert (span.calls, span.sealed_calls, span.counts.count()) == (1, 0, 0)
    monkeypatch.undo()
    seal_after(QUIET)
    assert AuditEntry.objects.get().tally["unanswered"] == 1
    assert spans.calls_on_record() == fake_connvo.call_count == 1


# --- Tables ---------------------------------------------------------------------------------


def test_a_tables_refreshes_are_counted_in_one_span_per_meeting(
    agent_client, agent_token, fake_connvo
):
    url = table_url(fake_connvo, "standup", "planning")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    assert AuditEntry.objects.filter(via=Via.TABLE, calls=1).count() == 2

    for _ in range(3):
        table_refresh(agent_client, url, vals)

    assert AuditEntry.objects.count() == 2
    assert sorted(Span.objects.values_list("key", "via", "calls", "sealed_calls")) == [
        (vals["span"], Via.TABLE, 4, 1),
        (vals["span"], Via.TABLE, 4, 1),
    ]
    seal_after(QUIET)
    sealed = AuditEntry.objects.filter(tally__isnull=False)
    assert sorted(sealed.values_list("meeting_id", "via", "calls")) == sorted(
        (fake_connvo.meeting_id(label), Via.TABLE, 3) for label in ("standup", "planning")
    )
    assert spans.calls_on_record() == fake_connvo.call_count == 8


def test_a_watch_list_refresh_is_counted_in_its_span(agent, agent_client, agent_token, fake_connvo):
    agent_client.post(reverse("meetings:watch", args=["dev", fake_connvo.meeting_id("standup")]))
    vals = poller(agent_client.get(reverse("meetings:watching")).content.decode())["vals"]

    agent_client.get(reverse("meetings:watching"), vals, **HTMX)

    span = Span.objects.get()
    assert (span.key, span.via, span.calls) == (vals["span"], Via.TABLE, 2)


# --- Whose span -----------------------------------------------------------------------------


@pytest.fixture
def colleague_client(fake_connvo) -> Client:
    """A second support agent, with a token of their own."""
    colleague = _user("alice", "Support")
    pasted_tokens.store_token(
        user=colleague, deployment_name="dev", raw_token=fake_connvo.token_for("alice")
    )
    client = Client()
    client.force_login(colleague)
    return client


def test_someone_elses_span_key_opens_a_span_of_ones_own(
    agent_client, agent_token, colleague_client, fake_connvo
):
    page = open_page(agent_client, fake_connvo, "planning")  # alice is invited too

    response = refresh(colleague_client, fake_connvo, page["span"], label="planning")

    theirs = Span.objects.get(actor_username="alice")
    assert theirs.key != page["span"] and theirs.calls == 1
    assert poll_state(response.content.decode())["span"] == theirs.key
    mine = Span.objects.get(actor_username="agent")
    assert (mine.key, mine.calls) == (page["span"], 1)  # untouched
    assert spans.calls_on_record() == fake_connvo.call_count == 2


def test_a_key_is_a_span_only_for_its_own_meeting(agent_client, agent_token, fake_connvo):
    page = open_page(agent_client, fake_connvo, "standup")

    refresh(agent_client, fake_connvo, page["span"], label="planning")

    # Same key, another meeting: a span of its own, never the standup's.
    assert sorted(Span.objects.values_list("meeting_id", "calls")) == sorted(
        [(fake_connvo.meeting_id("standup"), 1), (fake_connvo.meeting_id("planning"), 1)]
    )


@hypothesis_settings(
    max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=40) | st.from_regex(r"[A-Za-z0-9_-]{20,34}", fullmatch=True))
def test_a_span_key_is_read_strictly(text):
    span = Shown.from_query({"span": text}).span

    assert span == (text if spans.KEY.fullmatch(text) else "")


@hypothesis_settings(
    max_examples=examples(25), suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=40))
def test_a_malformed_span_key_opens_a_new_span_never_an_error(
    agent_client, agent_token, fake_connvo, text
):
    response = refresh(agent_client, fake_connvo, text)

    assert response.status_code == 200
    key = poll_state(response.content.decode())["span"]
    assert spans.KEY.fullmatch(key)
    assert key == text or not spans.KEY.fullmatch(text)
    assert spans.calls_on_record() == fake_connvo.call_count


# --- Every call on record -------------------------------------------------------------------


def test_calls_on_record_are_the_calls_connvo_received(
    agent_client, agent_token, fake_connvo, settings
):
    settings.AUDIT_SPAN_SEAL_EVERY = 20
    page = open_page(agent_client, fake_connvo)
    for _ in range(3):
        refresh(agent_client, fake_connvo, page["span"])
    url = table_url(fake_connvo, "standup", "planning", "retro")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    table_refresh(agent_client, url, vals)
    agent_client.get(url + "&format=csv")
    agent_client.get(reverse("meetings:detail", args=["dev", "not-an-id"]))
    call_command(
        "connvo_lookup", fake_connvo.meeting_id("planning"), user="agent", stdout=StringIO()
    )
    fake_connvo.misbehave("status", status=503, times=1)  # retried once: two requests
    refresh(agent_client, fake_connvo, page["span"])
    assert spans.calls_on_record() == fake_connvo.call_count

    seal_after(21)
    assert spans.calls_on_record() == fake_connvo.call_count

    seal_after(QUIET)
    assert not Span.objects.exists()
    assert spans.calls_on_record() == fake_connvo.call_count
    assert chain.verify().ok


def test_refreshes_refused_by_the_lookup_limit_add_no_calls_to_the_record(
    agent_client, agent_token, fake_connvo, settings
):
    # A table of three meetings refreshed past the limit: the refusals are on record (a first
    # entry and a count), but as requests, never as Connvo calls.
    settings.CONNVO_LOOKUPS_PER_MINUTE = 4
    url = table_url(fake_connvo, "standup", "planning", "retro")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    for _ in range(3):
        table_refresh(agent_client, url, vals)

    refused = AuditEntry.objects.filter(outcome="lookup_limit")
    assert refused.exists()
    assert {entry.call_count for entry in refused} == {0}
    assert spans.calls_on_record() == fake_connvo.call_count == 4
