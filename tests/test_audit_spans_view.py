"""The auditor's view of issue #22: an agent's history as the log holds it after spans (old
entries with no `calls`, first looks, sealed span parts, counted refusals, spans still open), on
the log, an entry's, a meeting's and a staff member's pages, the overview, the flags, the exports
and `audit_insights`, every figure counting Connvo calls."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone

from audit import insights, records, rollup, selectors, spans
from audit.models import Action, ActivityHour, AuditEntry, Span, StaffDay, Via
from audit.services import Origin
from meetings.lookups import pushed_quiet_after
from meetings.views.push import HOLD_OPEN_EVERY
from tests.audit_spans import append_at, counted, lookup, open_span, sealed_span

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
T = datetime(2026, 3, 10, 10, 2, tzinfo=UTC)  # 10:02 UTC
MEETING = "m-standup"
PUSHED_QUIET = pushed_quiet_after(HOLD_OPEN_EVERY)  # how long a pushed page's hold lasts


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def history(settings) -> dict:
    """alice's morning: three lookups from before spans (calls NULL, one of them a live refresh
    row of the old log), a first look, a refresh span of 270 calls, a triage table span of 10,
    a counted lookup-limit record, a CSRF flood from a stranger, and a page still open."""
    settings.TIME_ZONE = "UTC"
    old = [
        lookup(T - timedelta(hours=1), calls=None, meeting_id=MEETING, deployment="prod"),
        lookup(
            T - timedelta(hours=1, minutes=-1),
            calls=None,
            outcome="not_visible",
            meeting_id="m-private",
            deployment="prod",
        ),
        lookup(
            T - timedelta(minutes=50),
            calls=None,
            via=Via.REFRESH,
            meeting_id=MEETING,
            deployment="prod",
        ),
    ]
    first_look = lookup(T, meeting_id=MEETING, deployment="prod")
    span = sealed_span(
        first=T, last=T + timedelta(minutes=45), outcomes={"found": 268, "timeout": 2}
    )
    table = sealed_span(
        first=T,
        last=T + timedelta(minutes=5),
        outcomes={"found": 8, "not_visible": 2},
        via=Via.TABLE,
        meeting_id="m-retro",
        key="tableKey_0123456789abcdef",
    )
    limit = counted(
        first=T + timedelta(minutes=6),
        last=T + timedelta(minutes=6, seconds=50),
        repeats=5,
        action=Action.LOOKUP,
        outcome="lookup_limit",
        source="alice",
        username="alice",
        detail="",
        sample=["m-a", "m-b"],
        distinct=2,
        deployment="prod",
    )
    csrf = counted(
        first=T, last=T + timedelta(seconds=59), repeats=58, sample=["alice", "bob"], distinct=12
    )
    still_open = open_span(
        opened=NOW - timedelta(minutes=10),
        last=NOW - timedelta(seconds=3),
        answered={"found": 39, "timeout": 1},
        in_flight=1,
        sealed={"found": 12},
        meeting_id="m-planning",
    )
    return {
        "old": old,
        "first_look": first_look,
        "span": span,
        "table": table,
        "limit": limit,
        "csrf": csrf,
        "open": still_open,
    }


def text(response) -> str:
    """The page's text as a reader sees it: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


# ---- the words ----


def test_a_sealed_span_in_words_in_the_viewers_time_zone(history):
    entry = history["span"]

    assert records.record_words(entry, zone=UTC) == (
        "Watched 10:02:00\u201310:47:00 · 270 refreshes: 268 found, 2 no answer in time"
    )
    with timezone.override("Europe/Berlin"):
        assert records.record_words(entry).startswith("Watched 11:02:00\u201311:47:00 · 270")


def test_a_counted_record_in_words(history):
    assert records.record_words(history["csrf"], zone=UTC) == (
        "CSRF refusal \u00d758 more from 192.0.2.7, 10:02:00\u201310:02:59 "
        # 12 of the minute's 59 (its first included): beside "x58 more", "12 different" alone
        # read as counted over the 58; "x57 more ... 58 different" as impossible.
        "(sample: alice, bob; 12 different, the minute's first included)"
    )
    assert records.record_words(history["limit"], zone=UTC).startswith(
        "Meeting lookup (not asked: lookup limit) \u00d75 more from alice, 10:08:00"
    )


def test_an_open_span_in_words_says_what_is_still_waiting(history):
    (item,) = selectors.open_spans(selectors.EntryFilter(), now=NOW)

    assert records.open_span_words(item, zone=UTC) == (
        "Open since 10:50:00 · 41 lookups so far: 39 found, 1 no answer in time, "
        "1 waiting for Connvo's answer · last 10:59:57 · 12 already sealed into the log"
        # A closed tab says nothing: the page is only known to be open until then.
        " · open until 11:00:57 unless it asks again"
    )
    assert item.unsealed == {"found": 27, "timeout": 1, "unanswered": 1}


@pytest.mark.parametrize("outcome", ["invalid_id", "not_visible", "not_found"])
def test_a_page_its_answers_stopped_is_not_open_once_sealed(history, outcome):
    # A table's row "Not a meeting ID", looked at once and sealed: the table never asks about
    # it again, yet it was listed as a page still watching its meeting for minutes.
    open_span(
        opened=NOW - timedelta(seconds=5),
        last=NOW - timedelta(seconds=5),
        answered={outcome: 1},
        sealed={outcome: 1},
        via=Via.TABLE,
        meeting_id="m-settled",
        key="tableKey_0123456789abcdef",
        quiet_after=300,
    )

    shown = selectors.open_spans(selectors.EntryFilter(), now=NOW)

    assert [item.span.meeting_id for item in shown] == ["m-planning"]


def test_a_page_its_answers_stopped_with_calls_to_seal_says_it_asks_nothing_more(history):
    open_span(
        opened=NOW - timedelta(seconds=40),
        last=NOW - timedelta(seconds=5),
        answered={"found": 3, "not_visible": 1},
        sealed={"found": 1},
        via=Via.TABLE,
        meeting_id="m-gone",
        key="tableKey_0123456789abcdef",
        quiet_after=300,
    )
    open_span(
        opened=NOW - timedelta(seconds=40),
        last=NOW - timedelta(seconds=5),
        answered={"not_visible": 2},
        sealed={"not_visible": 1},
        via=Via.TABLE,
        meeting_id="m-settled",
        key="tableKey_0123456789abcdef",
        quiet_after=300,
    )

    shown = {
        item.span.meeting_id: item
        for item in selectors.open_spans(selectors.EntryFilter(), now=NOW)
    }

    # Found before it was gone: whether the page asks again is not known from counts alone.
    assert records.open_span_words(shown["m-gone"], zone=UTC).endswith("unless it asks again")
    words = records.open_span_words(shown["m-settled"], zone=UTC)
    assert words.endswith(
        "1 already sealed into the log · its page asks nothing more, to be sealed"
    )


def test_an_open_span_gone_quiet_says_its_calls_were_not_answered(history):
    quiet = records.open_span(history["open"], now=NOW + timedelta(minutes=5))

    words = records.open_span_words(quiet, zone=UTC)

    assert "1 unanswered (no outcome was recorded)" in words
    assert words.endswith("quiet, to be sealed")


def test_a_span_with_many_outcomes_names_the_most_frequent_and_sums_the_rest(history):
    outcomes = {
        "found": 500,
        "timeout": 40,
        "server_error": 30,
        "overloaded": 20,
        "rate_limited": 10,
        "unreachable": 5,
        "bad_response": 3,
    }
    entry = sealed_span(
        first=T, last=T + timedelta(hours=2), outcomes=outcomes, unanswered=4, final=False
    )

    words = records.record_words(entry, zone=UTC)

    assert words == (
        "Watched 10:02:00\u201312:02:00 · 612 refreshes: 500 found, 40 no answer in time, "
        "30 Connvo server error, 20 Connvo overloaded, 18 with 3 other outcomes, "
        "4 unanswered (no outcome was recorded) · the page was still open (continued in a "
        "later record)"
    )


def test_counts_in_the_billions_are_written_in_full(history):
    entry = sealed_span(
        first=T, last=T + timedelta(days=3), outcomes={"found": 10**9, "timeout": 7}
    )

    words = records.record_words(entry, zone=UTC)

    assert "1,000,000,007 refreshes: 1,000,000,000 found, 7 no answer in time" in words
    assert "10 Mar 2026, 10:02:00 \u2013 13 Mar 2026, 10:02:00" in words


# ---- the pages ----


def test_the_log_shows_spans_counted_records_and_what_is_open(auditor_client, history):
    response = auditor_client.get(reverse("audit:list"), {"action": ""})
    page = text(response)

    assert response.status_code == 200
    assert "Open now" in page
    assert "Open since 10:50:00 · 41 lookups so far" in page
    assert "Watched 10:02:00\u201310:47:00 · 270 refreshes: 268 found, 2 no answer in time" in page
    assert "10 lookups: 8 found, 2 not a participant" in page
    assert "CSRF refusal \u00d758 more from 192.0.2.7" in page
    # The old log's one row per refresh stays hidden; the span of the refreshes does not.
    shown = {int(n) for n in re.findall(r'href="/audit/entries/(\d+)/"', response.content.decode())}
    assert history["span"].pk in shown
    assert history["old"][2].pk not in shown
    assert "Live refreshes are hidden one by one" in page


def test_include_live_refreshes_adds_the_old_logs_refresh_rows(auditor_client, history):
    response = auditor_client.get(reverse("audit:list"), {"refreshes": "on"})

    shown = {int(n) for n in re.findall(r'href="/audit/entries/(\d+)/"', response.content.decode())}
    assert {history["span"].pk, history["old"][2].pk} <= shown


@pytest.mark.parametrize(
    ("params", "open_shown"),
    [
        ({"staff": "alice"}, True),
        ({"staff": "bob"}, False),
        ({"deployment": "prod"}, True),
        ({"deployment": "dev"}, False),
        ({"meeting": "m-planning"}, True),
        ({"meeting": MEETING}, False),
        ({"action": "sign_in"}, False),
        ({"via": "refresh"}, True),
        ({"via": "table"}, False),
        ({"outcome": "timeout"}, True),
        ({"outcome": "not_visible"}, False),
    ],
)
def test_open_spans_follow_the_filters_that_apply_to_them(
    auditor_client, history, params, open_shown
):
    page = text(auditor_client.get(reverse("audit:list"), params))

    assert ("Open since" in page) is open_shown


def test_a_span_entrys_page_shows_its_calls_per_outcome(auditor_client, history):
    entry = history["span"]

    response = auditor_client.get(reverse("audit:entry", args=[entry.pk]))
    page = text(response)

    assert response.status_code == 200
    assert "A page's live refreshes, sealed" in page
    assert "Watched 10:02:00\u201310:47:00 · 270 refreshes" in page
    # A part sealed as one record whatever its outcomes (before 8 December 2026).
    assert "most of its calls:" in page and "of the part's" not in page
    assert re.search(r"Found \(found\) 268", page)
    assert re.search(r"No answer in time \(Connvo failed\) 2", page)
    assert "req_first_0001" in page and "req_last_0270" in page
    assert "the last of its page" in page


def test_a_span_entrys_page_says_when_it_was_watched_and_when_it_was_sealed(
    auditor_client, history
):
    # Its `at` is its seal (by whichever request came by), which the page called "When".
    response = auditor_client.get(reverse("audit:entry", args=[history["span"].pk]))
    page = text(response)

    assert "Watched 10 Mar 2026, 10:02:00 \u2013 10 Mar 2026, 10:47:00" in page
    assert "Sealed into the log Tue 10 Mar 2026, 10:47:30" in page
    assert " When " not in page
    assert "Console request ID — (it stands for many requests)" in page


def test_a_counted_records_page_says_when_its_repeats_were(auditor_client, history):
    response = auditor_client.get(reverse("audit:entry", args=[history["csrf"].pk]))
    page = text(response)

    assert "Refused 10 Mar 2026, 10:02:00 \u2013 10 Mar 2026, 10:02:59" in page
    assert "Sealed into the log Tue 10 Mar 2026, 10:03:04" in page


def test_the_admin_list_says_when_a_span_was_watched_and_sealed(admin_client, history):
    page = admin_client.get("/admin/audit/auditentry/").content.decode()

    assert "10:02:00\u201310:47:00 (sealed 10 Mar 2026, 10:47:30)" in page
    assert "Lookup (live refresh): 270 calls of one page" in page
    assert "Permission denied \u00d758 more" in page  # the CSRF flood's counted record


def test_a_counted_records_page_shows_what_was_tried(auditor_client, history):
    response = auditor_client.get(reverse("audit:entry", args=[history["csrf"].pk]))
    page = text(response)

    assert "Repeated requests, counted" in page
    assert "Requests 58" in page
    assert "alice , bob" in page or "alice, bob" in page
    assert "(12 different, the minute&#x27;s first included)" in page


def test_the_meeting_page_counts_calls(auditor_client, history):
    response = auditor_client.get(reverse("audit:meeting", args=[MEETING]))

    place = response.context["deployments"][0]
    (viewer,) = response.context["viewers"]
    # The old page lookup and the first look; 270 span calls and the old refresh row.
    assert (place.deployment, place.lookups, place.refreshes) == ("prod", 2, 271)
    assert (viewer.lookups, viewer.found, viewer.refreshes) == (2, 2, 271)


def test_the_staff_page_counts_calls(auditor_client, history):
    response = auditor_client.get(reverse("audit:staff", args=["alice"]))

    summary = response.context["staff_summary"]
    # Page lookups: 2 old + the first look + the table's 10 calls + 5 counted over the limit.
    assert (summary.lookups, summary.not_visible, summary.refreshes) == (18, 3, 271)
    assert "Open since 10:50:00" in text(response)


def test_the_overview_counts_calls_and_refreshes_only_when_asked(auditor_client, history):
    plain = auditor_client.get(reverse("audit:list"), {"action": "lookup"}).context["overview"]
    with_refreshes = auditor_client.get(
        reverse("audit:list"), {"action": "lookup", "refreshes": "on"}
    ).context["overview"]

    by_outcome = {item.outcome: item.lookups for item in plain.outcomes}
    assert plain.lookups == 18
    assert by_outcome == {"found": 10, "not_visible": 3, "lookup_limit": 5}
    assert with_refreshes.lookups == 18 + 271
    assert {item.outcome: item.lookups for item in with_refreshes.outcomes}["timeout"] == 2


def test_the_overview_of_a_staff_member_reads_the_same_figures_from_their_entries(
    auditor_client, history
):
    overview = auditor_client.get(
        reverse("audit:staff", args=["alice"]), {"action": "lookup"}
    ).context["overview"]

    assert overview.lookups == 18
    assert {item.outcome: item.lookups for item in overview.outcomes} == {
        "found": 10,
        "not_visible": 3,
        "lookup_limit": 5,
    }
    assert {meeting: n for _, meeting, n in overview.top_meetings} == {
        "m-retro": 10,
        "m-standup": 2,
        "m-private": 1,
    }


def test_the_summaries_count_a_span_per_outcome_and_unanswered_apart(history):
    sealed_span(
        first=T, last=T + timedelta(minutes=1), outcomes={"found": 3}, unanswered=2, via="table"
    )
    rollup.catch_up()

    rows = ActivityHour.objects.filter(action="lookup", via="table").values_list(
        "outcome", "entries"
    )
    assert dict(rows) == {"found": 8 + 3, "not_visible": 2, "unanswered": 2}
    day = StaffDay.objects.get(actor_username="alice", day=T.date())
    assert (day.lookups, day.refreshes) == (18 + 5, 271)


def test_forgetting_a_purged_span_takes_its_calls_out_of_the_summaries(history):
    rollup.catch_up()
    first_id = AuditEntry.objects.order_by("id").first().pk
    rollup.forget(after_id=first_id - 1, through_id=history["span"].pk)

    day = StaffDay.objects.get(actor_username="alice", day=T.date())
    # What remains: the table span (10), the counted record (5); no refreshes.
    assert (day.lookups, day.refreshes) == (15, 0)


# ---- the flags and audit_insights ----


def test_a_flag_counts_a_tables_calls_and_insights_names_the_records(settings, history):
    settings.AUDIT_FLAG_NOT_VISIBLE_MIN = 20
    big = sealed_span(
        first=NOW - timedelta(hours=3),
        last=NOW - timedelta(hours=2),
        outcomes={"not_visible": 90, "found": 10},
        via=Via.TABLE,
        meeting_id="m-many",
        key="tableKey_bbbbbbbbbbbbbbbb",
    )
    rollup.catch_up()

    flags = insights.find_flags(now=NOW)

    (flag,) = [f for f in flags if f.kind == "not_visible"]
    assert flag.staff == "alice"
    assert flag.figures["not_visible"] == 90 + 2 + 1 + 0  # the table spans and the old lookup
    out = io.StringIO()
    call_command("audit_insights", "--now", NOW.isoformat(), stdout=out)
    assert records.record_words(big, zone=UTC) in out.getvalue()
    lines = io.StringIO()
    call_command("audit_insights", "--now", NOW.isoformat(), "--json", stdout=lines)
    documents = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert any(records.record_words(big, zone=UTC) in d["records"] for d in documents)


# ---- the exports ----


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_jsonl_gives_every_record_its_calls_and_open_spans_first(auditor_client, history):
    response = auditor_client.get(reverse("audit:export", args=["jsonl"]), {"refreshes": "on"})
    documents = [json.loads(line) for line in body(response).splitlines()]

    first = documents[0]
    assert first["sealed"] is False and first["id"] is None and first["mac"] is None
    assert first["calls"] == 41 - 12
    assert first["tally"]["kind"] == "open_span"
    assert first["tally"]["outcomes"] == {"found": 27, "timeout": 1}
    assert first["tally"]["unanswered"] == 1
    assert first["summary"].startswith("Open since 10:50:00")
    by_id = {d["id"]: d for d in documents[1:]}
    assert all(d["sealed"] for d in documents[1:])
    assert by_id[history["span"].pk]["calls"] == 270
    assert by_id[history["span"].pk]["tally"]["outcomes"] == {"found": 268, "timeout": 2}
    assert by_id[history["old"][0].pk]["calls"] == 1
    assert by_id[history["old"][0].pk]["encoding"] == 1
    assert by_id[history["csrf"].pk]["calls"] == 0
    assert by_id[history["csrf"].pk]["repeats"] == 58
    assert by_id[history["first_look"].pk]["encoding"] == 2
    # Every Connvo call on record, once: the chain's and the open span's not yet sealed.
    assert sum(d["calls"] for d in documents) == 3 + 1 + 270 + 10 + (41 - 12)


def test_csv_has_calls_and_repeats_columns_after_the_chained_ones(auditor_client, history):
    response = auditor_client.get(reverse("audit:export", args=["csv"]), {"staff": "alice"})
    rows = list(csv.DictReader(io.StringIO(body(response))))

    header = next(csv.reader(io.StringIO(body(auditor_client.get("/audit/export.csv")))))
    assert header.index("mac") < header.index("calls") < header.index("repeats")
    assert rows[0]["sealed"] == "no" and rows[0]["id"] == ""
    by_id = {row["id"]: row for row in rows[1:]}
    limit = by_id[str(history["limit"].pk)]
    assert (limit["calls"], limit["repeats"]) == ("0", "5")
    assert json.loads(by_id[str(history["table"].pk)]["tally"])["outcomes"]["found"] == 8


@pytest.mark.parametrize(
    "url",
    [
        reverse("audit:list"),
        reverse("audit:meeting", args=[MEETING]),
        reverse("audit:staff", args=["alice"]),
        reverse("audit:export", args=["csv"]),
    ],
)
def test_the_pages_seal_what_is_due_before_reading(monkeypatch, auditor_client, history, url):
    due = open_span(
        opened=NOW - timedelta(minutes=20),
        last=NOW - timedelta(seconds=5),
        answered={"found": 7},
        key="dueKey_0123456789abcdefgh",
        meeting_id=MEETING,
    )
    sealed_minutes = []
    monkeypatch.setattr("audit.repeats.seal_past", lambda: sealed_minutes.append(1) or 0)

    with time_machine.travel(NOW, tick=False):
        response = auditor_client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)

    due.refresh_from_db()
    assert due.sealed_calls == 7
    (part,) = AuditEntry.objects.filter(tally__span="dueKey_0123456789abcdefgh")
    assert (part.calls, part.tally["outcomes"], part.tally["final"]) == (7, {"found": 7}, False)
    assert sealed_minutes == [1]


def test_a_page_shows_when_sealing_fails(monkeypatch, auditor_client, history):
    def broken():
        raise DatabaseError("no")

    monkeypatch.setattr("audit.repeats.seal_past", broken)

    response = auditor_client.get(reverse("audit:list"))

    assert response.status_code == 200
    assert Span.objects.count() == 1


def pushed_page(agent, meeting_id: str, *, opened: datetime, held_until: datetime) -> None:
    """A page on push as the push relay leaves it (meetings/relay.py): its first look, a full
    entry (so every call is sealed), then its spans held open every minute while Connvo sends
    nothing, up to `held_until`."""
    with time_machine.travel(opened, tick=False):
        counted = spans.count_calls(
            key="",
            origin=Origin(user=agent, username=agent.username),
            via=Via.REFRESH,
            meetings=[("prod", meeting_id)],
            quiet_after=PUSHED_QUIET,
        )
        answered = spans.Answered(deployment="prod", meeting_id=meeting_id, outcome="found")
        spans.record_answers(counted, [answered], sealed=True)
    moment = opened
    while moment < held_until:
        moment += timedelta(seconds=HOLD_OPEN_EVERY)
        with time_machine.travel(moment, tick=False):
            spans.hold_open(key=counted.key, actor_id=agent.pk, quiet_for=PUSHED_QUIET)


def test_a_page_on_push_stays_open_now_however_long_connvo_sends_nothing(
    monkeypatch, auditor_client, agent
):
    """A pushed page asks Connvo nothing while the meeting does not change: its span's last call
    is its first look, 45 minutes ago, and its stream has held it open every minute since. It is
    open: the log's "Open now" and the exports list it. A page whose stream stopped holding it
    open 37 minutes ago is quiet, and neither lists it (its seal is made to fail, so it is still
    there to be left out)."""
    pushed_page(agent, "m-pushed", opened=NOW - timedelta(minutes=45), held_until=NOW)
    pushed_page(
        agent,
        "m-closed",
        opened=NOW - timedelta(minutes=40),
        held_until=NOW - timedelta(minutes=40),
    )

    def broken():
        raise DatabaseError("no")

    monkeypatch.setattr("audit.spans.seal_what_is_due", broken)

    page = text(auditor_client.get(reverse("audit:list")))
    export = body(auditor_client.get(reverse("audit:export", args=["jsonl"])))
    documents = [json.loads(line) for line in export.splitlines()]

    assert Span.objects.count() == 2
    assert "Open since 10:15:00 · 1 lookup so far: 1 found · last 10:15:00" in page
    assert page.count("Open since") == 1
    assert [(d["meeting_id"], d["sealed"]) for d in documents if not d["sealed"]] == [
        ("m-pushed", False)
    ]


def test_the_databases_weight_is_the_same_as_pythons(db):
    cases = [
        (Action.LOOKUP, None, None),
        (Action.LOOKUP, 0, None),
        (Action.LOOKUP, 1, None),
        (Action.LOOKUP, 7, None),
        (Action.LOOKUP, 0, 5),
        (Action.SIGN_IN, None, None),
        (Action.SIGN_IN_FAILED, 0, 58),
        (Action.SIGN_IN_FAILED, None, 3),
        (Action.PERMISSION_DENIED, 0, 0),
    ]
    written = {
        append_at(T, action=action, calls=calls, repeats=repeats).pk: (action, calls, repeats)
        for action, calls, repeats in cases
    }

    in_sql = dict(
        AuditEntry.objects.filter(pk__in=written).annotate(w=records.WEIGHT).values_list("pk", "w")
    )

    assert in_sql == {
        pk: records.weight(action=action, calls=calls, repeats=repeats)
        for pk, (action, calls, repeats) in written.items()
    }
    assert sorted(in_sql.values()) == [0, 1, 1, 1, 1, 3, 5, 7, 58]
