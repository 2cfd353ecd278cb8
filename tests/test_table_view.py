"""The triage table: many meetings of one deployment at once, looked up concurrently, each lookup
audited and counted, live as one refresh of the whole table."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.db import DatabaseError
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit import repeats
from audit.models import AuditEntry, Span, Via
from meetings import ratelimit, triage
from meetings.lookups import Answer
from meetings.models import StaffToken
from meetings.triage import GROUPS, settled_in
from tests.conftest import examples
from tests.pages import group_of, hidden, shown_rows, text_of

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def table_url(fake, *labels: str, deployment: str = "dev", **params) -> str:
    ids = ",".join(fake.meeting_id(label) for label in labels)
    query = f"ids={ids}" + ("&" + urlencode(params) if params else "")
    return f"{reverse('meetings:table', args=[deployment])}?{query}"


def row(html: str, fake, label: str) -> str:
    """The rendered <tr> of one meeting."""
    meeting_id = fake.meeting_id(label)
    for match in re.finditer(r"<tr id=\"row-\d+\".*?</tr>", html, re.S):
        if meeting_id in match.group(0):
            return match.group(0)
    raise AssertionError(f"no row for {label}")


def poller(html: str) -> dict:
    tag = re.search(r'<div id="live-poller"[^>]*>', html).group(0)
    vals = re.search(r"hx-vals='([^']*)'", tag)
    trigger = re.search(r'hx-trigger="every (\d+)s', tag)
    return {
        "status": re.search(r'data-status="(\w+)"', tag).group(1),
        "interval": int(trigger.group(1)) if trigger else None,
        "vals": json.loads(vals.group(1)) if vals else None,
    }


def refresh(client, url: str, vals: dict):
    return client.get(f"{url}&{urlencode(vals)}", **HTMX)


# --- From the lookup box ----------------------------------------------------------------------


def test_two_ids_go_to_the_table_at_a_url_that_holds_them(agent_client, agent_token, fake_connvo):
    standup, planning = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("planning")

    response = agent_client.get(
        reverse("meetings:lookup"), {"q": f"{standup}\n{planning}\n{standup}", "deployment": "dev"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"/table/dev/?ids={standup},{planning}"
    assert fake_connvo.call_count == 0  # the table page asks, once per meeting


def test_a_blob_with_one_id_still_opens_the_meeting_page(agent_client, fake_connvo):
    standup = fake_connvo.meeting_id("standup")

    response = agent_client.get(
        reverse("meetings:lookup"),
        {"q": f"[10:32] ERROR join failed meeting={standup} code=4", "deployment": "dev"},
    )

    assert response["Location"] == reverse("meetings:detail", args=["dev", standup])


def test_what_looks_like_a_mistyped_id_is_listed_on_the_table_with_why(
    agent_client, agent_token, fake_connvo
):
    pasted = " ".join(
        [
            fake_connvo.meeting_id("standup"),
            fake_connvo.meeting_id("retro"),
            "JD7F3S4H7YVXQRW0C8H5K3X2KN6R1M9A",
        ]
    )

    response = agent_client.get(
        reverse("meetings:lookup"), {"q": pasted, "deployment": "dev"}, follow=True
    )

    html = response.content.decode()
    assert "2 meetings" in html
    warning = re.search(r'<li class="message message--warning">(.*?)</li>', html, re.S).group(1)
    # The word once, then why: not the word quoted again inside its reason.
    assert warning.count("JD7F3S4H7YVXQRW0C8H5K3X2KN6R1M9A") == 1
    assert "capital letters" in warning


def test_a_pasted_log_excerpt_gives_one_row_per_meeting_and_one_quiet_line(
    agent_client, agent_token, fake_connvo
):
    standup, planning = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("planning")
    excerpt = (
        f"10:32:01 ERROR join failed meeting={standup} request_id=req_8a7b6c5d4e3f2a1b0c9d8e7f\n"
        f"10:32:04 WARN reconnect meetingId={planning} trace=9f8e7d6c5b4a39281706f5e4d3c2b1a0 "
        f"retry of {standup}"
    )

    response = agent_client.post(
        reverse("meetings:lookup"), {"q": excerpt, "deployment": "dev"}, follow=True
    )

    html = response.content.decode()
    assert re.findall(r'<tr id="row-(\d+)"', html) == ["0", "1"]
    assert "2 meetings" in html and 'data-group="invalid_id"' not in html
    assert "message--warning" not in html
    quiet = re.findall(r'<li class="message message--quiet info">(.*?)</details>', html, re.S)
    assert len(quiet) == 1
    summary = re.search(r"<summary>(.*?)</summary>", quiet[0]).group(1)
    assert summary == "2 other tokens ignored · 1 ID pasted more than once, shown once"
    assert "<code>trace=9f8e7d6c5b4a39281706f5e4d3c2b1a0</code>" in quiet[0]
    assert "<code>request_id=req_8a7b6c5d4e3f2a1b0c9d8e7f</code>" in quiet[0]
    assert fake_connvo.call_count == 2


def test_ignored_tokens_are_listed_escaped(agent_client, agent_token, fake_connvo):
    standup, planning = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("planning")
    pasted = f"{standup} {planning} x=<img/src=1/onerror=alert(1)>aaaaaaaaaaaaaaaaaaaaaa"

    html = agent_client.get(
        reverse("meetings:lookup"), {"q": pasted, "deployment": "dev"}, follow=True
    ).content.decode()

    assert "<img" not in html
    assert "&lt;img/src=1/onerror=alert(1)&gt;aaaa" in html


def test_more_than_the_maximum_is_refused_not_truncated(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_TABLE_MAX_MEETINGS = 3
    labels = ("standup", "planning", "retro", "private")
    pasted = " ".join(fake_connvo.meeting_id(label) for label in labels)

    from_box = agent_client.get(reverse("meetings:lookup"), {"q": pasted, "deployment": "dev"})
    from_url = agent_client.get(table_url(fake_connvo, *labels))

    for response in (from_box, from_url):
        assert response.status_code == 400
        assert "That is 4 different meeting IDs; a table holds at most 3" in (
            response.content.decode()
        )
    assert fake_connvo.call_count == 0


def test_an_address_of_entries_none_an_id_names_each_not_the_list_as_one(agent_client, fake_connvo):
    response = agent_client.get(f"{reverse('meetings:table', args=['dev'])}?ids=foo,bar")

    page = response.content.decode()
    assert response.status_code == 400
    assert (
        "None of this table&#x27;s IDs is a Connvo meeting ID: “foo”, “bar”. A meeting ID" in page
    )
    assert "foo,bar”" not in page


# --- The table --------------------------------------------------------------------------------


def test_rows_show_each_meeting_or_why_not(agent_client, agent_token, fake_connvo):
    response = agent_client.get(table_url(fake_connvo, "standup", "planning", "private", "retro"))

    html = response.content.decode()
    assert response.status_code == 200
    standup = row(html, fake_connvo, "standup")
    assert "Support Team Daily Standup" in standup
    assert "badge--active" in standup and "badge--participant" in standup
    assert re.search(r'data-cell="participants"[^>]*>5<', standup)
    private = row(html, fake_connvo, "private")
    assert "Not a participant" in private
    detail = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("private")])
    assert f'href="{detail}"' in private
    assert "1 active · 1 scheduled · 1 concluded · 1 not a participant" in re.sub(
        r"<[^>]+>", "", html
    )


def test_every_meeting_is_asked_once_and_audited_via_table(agent_client, agent_token, fake_connvo):
    agent_client.get(table_url(fake_connvo, "standup", "planning", "private"))

    assert fake_connvo.call_count == 3
    entries = AuditEntry.objects.order_by("id")
    assert [(e.via, e.meeting_id, e.outcome) for e in entries] == [
        (Via.TABLE, fake_connvo.meeting_id("standup"), "found"),
        (Via.TABLE, fake_connvo.meeting_id("planning"), "found"),
        (Via.TABLE, fake_connvo.meeting_id("private"), "not_visible"),
    ]


def test_rows_over_the_lookup_limit_are_not_asked_and_say_so(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_LOOKUPS_PER_MINUTE = 2

    html = agent_client.get(
        table_url(fake_connvo, "standup", "planning", "retro", "onboarding")
    ).content.decode()

    assert fake_connvo.call_count == 2
    for label in ("retro", "onboarding"):
        assert "Not asked: lookup limit" in row(html, fake_connvo, label)
    assert "2 not asked (your lookup limit)" in html
    # The first refusal of the minute is an entry; the second is counted (audit/repeats.py).
    assert AuditEntry.objects.filter(outcome="lookup_limit").count() == 1
    assert repeats.requests_on_record(outcome="lookup_limit") == 2


def test_no_token_fails_every_row_without_calling_connvo(agent_client, fake_connvo):
    html = agent_client.get(table_url(fake_connvo, "standup", "planning")).content.decode()

    assert fake_connvo.call_count == 0
    assert html.count("No token saved") == 2
    assert "2 need your token or account" in html


def test_the_filter_names_each_group_as_the_summary_does(agent_client, agent_token, fake_connvo):
    page = agent_client.get(table_url(fake_connvo, "standup", "planning")).content.decode()

    assert '<option value="invalid_id">Not a meeting ID</option>' in page
    assert '<option value="not_visible">Not a participant</option>' in page


def test_filter_and_sort(agent_client, agent_token, fake_connvo):
    labels = ("planning", "standup", "private", "onboarding")

    only_hidden = agent_client.get(table_url(fake_connvo, *labels, show="not_visible"))
    by_people = agent_client.get(table_url(fake_connvo, *labels, sort="participants"))

    html = only_hidden.content.decode()
    # Every row is drawn, those outside the filter hidden: a refresh may bring them into it.
    assert html.count('<tr id="row-') == 4
    (shown,) = shown_rows(html)
    assert fake_connvo.meeting_id("private") in shown
    # The summary still counts the whole table.
    assert "4 meetings" in html and "2 active" in html
    order = re.findall(r'<tr id="row-(\d+)"', by_people.content.decode())
    assert order[-1] == "2"  # the failed row last; the others by participants, highest first
    counts = [
        int(n)
        for n in re.findall(r'data-cell="participants"[^>]*>(\d+)<', by_people.content.decode())
    ]
    assert counts == sorted(counts, reverse=True)


def test_a_filtered_table_hides_a_meeting_that_leaves_its_filter_and_shows_one_that_enters_it(
    agent_client, agent_token, fake_connvo
):
    """Show: active. One meeting ends and another starts: the next refresh redraws both, the
    ended one hidden (and settled: not asked again), the started one shown where it stands."""
    url = table_url(fake_connvo, "standup", "planning", show="active")
    page = agent_client.get(url).content.decode()
    assert [group_of(r) for r in shown_rows(page)] == ["active"]
    assert hidden(row(page, fake_connvo, "planning"))
    fake_connvo.update_meeting("standup", state="concluded")
    fake_connvo.update_meeting("planning", state="active")

    response = refresh(agent_client, url, poller(page)["vals"])

    html = response.content.decode()
    ended, started = row(html, fake_connvo, "standup"), row(html, fake_connvo, "planning")
    assert hidden(ended) and group_of(ended) == "concluded"
    assert not hidden(started) and group_of(started) == "active"
    assert 'hx-swap-oob="true"' in ended and 'hx-swap-oob="true"' in started
    assert "0c" in poller(html)["vals"]["done"]
    # Something is still shown: the note that nothing is stays hidden.
    (note,) = re.findall(r'<tr id="table-no-match".*?</tr>', html, re.S)
    assert hidden(note)


def test_a_filtered_table_says_when_nothing_is_in_its_filter_until_something_is(
    agent_client, agent_token, fake_connvo
):
    url = table_url(fake_connvo, "planning", "retro", show="active", sort="participants")
    page = agent_client.get(url).content.decode()
    assert shown_rows(page) == [re.search(r'<tr id="table-no-match".*?</tr>', page, re.S)[0]]
    assert text_of(shown_rows(page)[0]) == (
        "No meeting here is “Active” now; one that becomes so appears here. Show everything"
    )
    everything = re.search(r'id="table-no-match".*?href="([^"]+)"', page, re.S)[1]
    assert "show=" not in everything and "sort=participants" in everything.replace("&amp;", "&")
    fake_connvo.update_meeting("planning", state="active")

    html = refresh(agent_client, url, poller(page)["vals"]).content.decode()

    (note,) = re.findall(r'<tr id="table-no-match".*?</tr>', html, re.S)
    assert hidden(note) and 'hx-swap-oob="true"' in note
    assert not hidden(row(html, fake_connvo, "planning"))


def test_the_export_of_a_filtered_sorted_table_holds_its_rows_in_its_order(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.remove_participant("private", "agent")
    labels = ("planning", "standup", "private", "onboarding", "retro")
    url = table_url(fake_connvo, *labels, show="active", sort="participants")
    page = agent_client.get(url).content.decode()
    csv_url = re.search(r'<a href="([^"]+format=csv)"', page)[1].replace("&amp;", "&")

    exported = list(csv.DictReader(io.StringIO(agent_client.get(csv_url).content.decode())))

    on_page = [re.search(r"<code[^>]*>(\w+)</code>", r)[1] for r in shown_rows(page)]
    assert [r["meeting_id"] for r in exported] == on_page
    assert {r["state"] for r in exported} == {"active"} and len(on_page) >= 2
    counts = [int(r["participants"]) for r in exported]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize(
    ("asked", "said"),
    [
        ({"sort": "duration"}, "a sort order the console does not have (“duration”)"),
        ({"show": "archived"}, "a filter the console does not have (“archived”)"),
    ],
)
def test_a_table_address_with_a_view_the_console_does_not_have_shows_the_table_without_it(
    asked, said, agent_client, agent_token, fake_connvo
):
    """A bookmarked or pasted address outlives a renamed sort order or filter: the table is
    shown as it comes, and says what it did not understand (it was refused whole, with Django's
    "Select a valid choice")."""
    response = agent_client.get(table_url(fake_connvo, "standup", "planning", **asked))

    assert response.status_code == 200
    page = response.content.decode()
    assert said in text_of(page)
    assert len(shown_rows(page)) == 2
    assert fake_connvo.call_count == 2


@given(sort=st.text(max_size=50), show=st.text(max_size=50))
@hypothesis_settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_sort_or_filter_in_a_table_address_shows_the_table(
    sort, show, agent_client, agent_token, fake_connvo
):
    response = agent_client.get(
        reverse("meetings:table", args=["dev"]),
        {"ids": fake_connvo.meeting_id("standup"), "sort": sort, "show": show},
    )
    assert response.status_code == 200


def test_unknown_deployment_is_404(agent_client, fake_connvo):
    assert (
        agent_client.get(table_url(fake_connvo, "standup", "retro", deployment="x")).status_code
        == 404
    )


def test_outsider_is_refused(outsider_client, fake_connvo):
    assert outsider_client.get(table_url(fake_connvo, "standup", "retro")).status_code == 403
    assert fake_connvo.call_count == 0


def test_csv_export_is_safe_for_spreadsheets(agent_client, agent_token, fake_connvo):
    fake_connvo.update_meeting("standup", title='=HYPERLINK("http://evil.example","x")')

    response = agent_client.get(table_url(fake_connvo, "standup", "private", format="csv"))

    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["meeting_id"] for r in rows] == [
        fake_connvo.meeting_id("standup"),
        fake_connvo.meeting_id("private"),
    ]
    assert rows[0]["title"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows[0]["participants"] == "5" and rows[0]["outcome"] == "found"
    assert rows[1]["outcome"] == "not_visible"
    assert rows[1]["outcome_label"] == "Not a participant"
    assert rows[1]["message"].startswith("This meeting exists, but Connvo shows a meeting only")
    assert AuditEntry.objects.filter(via=Via.TABLE).count() == 2


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_an_update_time_at_the_calendars_end_shows_a_dash_and_the_csv_the_number(
    zone, agent_client, agent_token, fake_connvo
):
    # 31 Dec 9999, 23:59:59 UTC: in a zone east of UTC, a date in year 10000.
    fake_connvo.update_meeting("standup", updatedAt=253402300799000)
    fake_connvo.update_meeting("planning", updatedAt=-62135596800000)
    agent_client.cookies["console_tz"] = zone
    url = table_url(fake_connvo, "standup", "planning")

    page = agent_client.get(url)
    exported = agent_client.get(url + "&format=csv")

    assert page.status_code == 200
    assert "updated at is 253402300799000, a date beyond the calendar" in page.content.decode()
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [r["updated_at"] for r in rows] == ["253402300799000", "'-62135596800000"]


# --- Live -------------------------------------------------------------------------------------


def live_line(html: str) -> str:
    """The live poller's opening tag, its attributes in the order written, values elided."""
    tag = re.search(r'<div id="live-poller"[^>]*>', html).group(0)
    return re.sub(r"=(\"[^\"]*\"|'[^']*')", "", tag)


def test_the_table_s_live_line_is_the_meeting_page_s_with_its_rows(
    agent_client, agent_token, fake_connvo
):
    """One poller for every live page (templates/meetings/_live_poller.html): the table's says
    how long ago it was confirmed as the meeting page's does (data-ago, which an unchanged
    refresh moves), and carries what its rows show, once, for polling and for falling back from
    push alike."""
    meeting = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    page = agent_client.get(meeting).content.decode()
    table = agent_client.get(table_url(fake_connvo, "standup", "retro")).content.decode()

    for html in (page, table):
        assert re.search(r'<time class="js-checked" datetime="[^"]+" data-ago title=', html)
    assert live_line(table).replace(" data-refresh-vals", "") == live_line(page)
    tag = re.search(r'<div id="live-poller"[^>]*>', table).group(0)
    polled = json.loads(re.search(r"hx-vals='([^']*)'", tag).group(1))
    fallback = json.loads(re.search(r"data-refresh-vals='([^']*)'", tag).group(1))
    assert fallback == {"done": "1c", "known": "0a", "turn": "0"}
    assert {name: polled[name] for name in fallback} == fallback


def test_unchanged_table_answers_204_and_settled_rows_are_not_asked(
    agent_client, agent_token, fake_connvo
):
    url = table_url(fake_connvo, "standup", "planning", "retro", "private")
    state = poller(agent_client.get(url).content.decode())
    assert state["status"] == "live"
    assert state["vals"]["done"] == "2c.3v"  # retro concluded, private not visible

    response = refresh(agent_client, url, state["vals"])

    assert response.status_code == 204
    assert fake_connvo.call_count == 4 + 2  # only standup and planning were asked again
    # The first look is the table's four entries; the refresh is counted in the page's spans,
    # one per meeting, not chained one entry each.
    assert AuditEntry.objects.filter(via=Via.TABLE).count() == AuditEntry.objects.count() == 4
    refreshed = Span.objects.filter(key=state["vals"]["span"], calls=2, sealed_calls=1)
    assert sorted(refreshed.values_list("meeting_id", flat=True)) == sorted(
        fake_connvo.meeting_id(label) for label in ("standup", "planning")
    )


def test_changed_row_is_sent_alone_as_an_out_of_band_swap(agent_client, agent_token, fake_connvo):
    url = table_url(fake_connvo, "standup", "planning", "retro")
    state = poller(agent_client.get(url).content.decode())
    fake_connvo.update_meeting("standup", participantCount=9)

    response = refresh(agent_client, url, state["vals"])

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert re.search(r'<template>\s*<tr id="row-0"[^>]*hx-swap-oob="true"', html)
    assert re.search(r'data-cell="participants"[^>]*>9<', html)
    assert 'id="row-2"' not in html  # concluded: not asked, not redrawn
    assert 'id="table-summary"' in html and "1 concluded" in html
    assert poller(html)["vals"]["seen"] != state["vals"]["seen"]


def test_table_stops_polling_when_every_row_is_settled(agent_client, agent_token, fake_connvo):
    url = table_url(fake_connvo, "standup", "retro")
    state = poller(agent_client.get(url).content.decode())
    fake_connvo.update_meeting("standup", state="concluded")

    response = refresh(agent_client, url, state["vals"])

    assert response.status_code == 286
    assert poller(response.content.decode())["interval"] is None
    assert "live updates have stopped" in response.content.decode()
    assert "2 concluded" in response.content.decode()


def test_table_of_finished_meetings_does_not_poll_at_all(agent_client, agent_token, fake_connvo):
    html = agent_client.get(table_url(fake_connvo, "retro", "interview")).content.decode()

    assert poller(html)["interval"] is None


def test_connvo_failing_backs_off_like_the_meeting_page(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLL_INTERVAL = 10
    settings.CONNVO_POLL_MAX_INTERVAL = 60
    url = table_url(fake_connvo, "standup", "planning")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    fake_connvo.misbehave("status", status=500)

    intervals = []
    for _ in range(3):
        state = poller(refresh(agent_client, url, vals).content.decode())
        intervals.append(state["interval"])
        vals = state["vals"]
    assert intervals == [20, 40, 60]

    fake_connvo.reset_behaviour()
    state = poller(refresh(agent_client, url, vals).content.decode())
    assert (state["status"], state["interval"], state["vals"]["failures"]) == ("live", 10, 0)


def test_a_big_table_refreshes_within_half_the_lookup_limit(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_LOOKUPS_PER_MINUTE = 60
    settings.CONNVO_POLL_INTERVAL = 10
    labels = ("standup", "planning", "onboarding", "minimal", "all-hands")

    state = poller(agent_client.get(table_url(fake_connvo, *labels)).content.decode())

    # 5 rows asked 6 times a minute would be all 30 lookups half the limit allows: 10 s still fits.
    assert state["interval"] == 10
    settings.CONNVO_LOOKUPS_PER_MINUTE = 20
    state = poller(agent_client.get(table_url(fake_connvo, *labels)).content.decode())
    assert state["interval"] == 30  # 5 rows every 30 s = 10 a minute, half of 20


def test_tampered_refresh_state_is_ignored(agent_client, agent_token, fake_connvo):
    url = table_url(fake_connvo, "standup", "planning")

    response = refresh(agent_client, url, {"seen": "<x>", "failures": "lots", "done": "99c.0z.<"})

    assert response.status_code == 200
    assert fake_connvo.call_count == 2
    assert "<x>" not in response.content.decode()


@given(st.text(max_size=200), st.integers(min_value=0, max_value=120))
def test_any_settled_rows_text_gives_only_settled_rows_of_the_table(text, size):
    settled = settled_in(text, size)

    assert all(0 <= index < size for index in settled)
    assert all(group.settled for group in settled.values())


@given(st.dictionaries(st.integers(0, 99), st.sampled_from([g for g in GROUPS if g.settled])))
def test_settled_rows_survive_the_round_trip(rows):
    text = ".".join(f"{i}{g.code}" for i, g in sorted(rows.items()))

    assert settled_in(text, 100) == rows


def test_one_slow_row_times_out_alone(agent_client, agent_token, fake_connvo, settings):
    settings.CONNVO_READ_TIMEOUT = 0.5
    fake_connvo.misbehave("slow", delay=3, times=1)

    html = agent_client.get(
        table_url(fake_connvo, "standup", "planning", "onboarding")
    ).content.decode()

    assert html.count("No answer in time") == 1
    assert (
        html.count('class="triage__row triage__row--active"')
        + html.count('triage__row--scheduled"')
        == 2
    )
    assert AuditEntry.objects.filter(outcome="timeout", via=Via.TABLE).count() == 1


# --- A refresh that fails for some rows -------------------------------------------------------


def summary_text(html: str) -> str:
    summary = re.search(r'<p id="table-summary".*?</p>', html, re.S).group(0)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", summary)).strip()


def test_a_table_refused_by_the_lookup_limit_waits_until_it_would_pass(
    agent, agent_client, agent_token, fake_connvo, settings, time_machine
):
    settings.CONNVO_POLL_INTERVAL = 10
    settings.CONNVO_LOOKUPS_PER_MINUTE = 8
    time_machine.move_to(datetime.now(UTC), tick=False)  # the sign-in stays fresh
    url = table_url(fake_connvo, "standup", "planning")
    vals = poller(agent_client.get(url).content.decode())["vals"]  # opens the minute
    for _ in range(6):  # the agent's other pages use the rest of it
        ratelimit.count_lookup(user=agent)
    time_machine.shift(5)

    state = poller(refresh(agent_client, url, vals).content.decode())

    # Neither the back-off (20 s) nor the table's own pace (30 s): the limit passes in 55.
    assert (state["status"], state["interval"]) == ("failing", 55)


def test_connvo_failing_keeps_each_shown_rows_values_marked_not_refreshed(
    agent_client, agent_token, fake_connvo
):
    url = table_url(fake_connvo, "standup", "planning", "retro")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    assert vals["known"] == "0a.1s"
    fake_connvo.misbehave("status", status=500)

    response = refresh(agent_client, url, vals)

    html = response.content.decode()
    assert response.status_code == 200
    # The rows are not redrawn (the page keeps their title, badges and figures): only their tag.
    assert "<tr" not in html
    for index in (0, 1):
        tag = re.search(rf'<span id="row-{index}-status"[^>]*>.*?</span></span>', html, re.S)
        assert tag, f"row {index} is not marked"
        assert "data-stale" in tag.group(0) and 'hx-swap-oob="true"' in tag.group(0)
        assert "Not refreshed" in tag.group(0)
    # Counted as what they last showed; the failure said once, for all of them.
    assert re.fullmatch(
        r"1 active · 1 scheduled · 1 concluded — 2 not refreshed at \d\d:\d\d:\d\d: "
        r"Connvo server error",
        summary_text(html),
    )
    assert html.count("Connvo server error") == 1
    assert "Connvo failed" not in html
    state = poller(html)
    assert state["status"] == "failing"
    assert state["vals"]["known"] == "0a.1s"  # still what the page shows


def test_a_stale_row_is_redrawn_with_fresh_values_when_connvo_recovers(
    agent_client, agent_token, fake_connvo
):
    url = table_url(fake_connvo, "standup", "planning")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    fake_connvo.misbehave("status", status=500)
    vals = poller(refresh(agent_client, url, vals).content.decode())["vals"]
    fake_connvo.reset_behaviour()
    fake_connvo.update_meeting("standup", participantCount=11)

    html = refresh(agent_client, url, vals).content.decode()

    assert re.search(r'data-cell="participants"[^>]*>11<', row(html, fake_connvo, "standup"))
    assert "data-stale" not in html
    assert summary_text(html) == "1 active · 1 scheduled"
    assert poller(html)["status"] == "live"


def test_a_row_that_never_showed_a_meeting_shows_the_failure(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.misbehave("status", status=500)
    url = table_url(fake_connvo, "standup", "planning")
    first = agent_client.get(url).content.decode()
    vals = poller(first)["vals"]
    assert vals["known"] == "0f.1f"

    html = refresh(agent_client, url, vals).content.decode()

    assert "Connvo server error" in row(html, fake_connvo, "standup")
    assert "data-stale" not in html
    assert summary_text(html) == "2 could not be looked up"


def test_an_outcome_only_a_person_can_change_still_replaces_the_row(
    agent_client, agent, agent_token, fake_connvo
):
    url = table_url(fake_connvo, "standup", "planning")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    StaffToken.objects.filter(user=agent).delete()

    html = refresh(agent_client, url, vals).content.decode()

    assert "No token saved" in row(html, fake_connvo, "standup")
    assert "data-stale" not in html
    assert summary_text(html) == "2 need your token or account"


@pytest.mark.usefixtures("workos")
def test_rows_without_a_connected_account_say_so_not_token(agent_client, fake_connvo):
    """On a deployment whose agents connect their Connvo account (WorkOS), a row with no
    credential names the account, as the meeting page's heading does; no token is asked for."""
    html = agent_client.get(table_url(fake_connvo, "standup", "planning")).content.decode()

    assert "Account not connected" in row(html, fake_connvo, "standup")
    assert "No token saved" not in html
    assert summary_text(html) == "2 need your token or account"


def test_rows_over_the_lookup_limit_keep_their_values_and_the_rest_refreshes(
    agent_client, agent_token, fake_connvo, settings
):
    url = table_url(fake_connvo, "standup", "planning", "onboarding")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    settings.CONNVO_LOOKUPS_PER_MINUTE = 2
    fake_connvo.update_meeting("standup", participantCount=12)
    cache.clear()  # a new minute: two lookups allowed, the third row is not asked

    html = refresh(agent_client, url, vals).content.decode()

    assert re.search(r'data-cell="participants"[^>]*>12<', row(html, fake_connvo, "standup"))
    assert 'id="row-2"' not in html and 'id="row-2-status"' in html
    assert re.fullmatch(
        r"2 active · 1 scheduled — 1 not refreshed at \d\d:\d\d:\d\d: Not asked: lookup limit",
        summary_text(html),
    )
    assert poller(html)["status"] == "live"


def test_while_rows_stay_not_refreshed_each_refresh_is_redrawn_not_answered_204(
    agent_client, agent_token, fake_connvo, settings
):
    """A 204 would leave the page saying the rows were not refreshed at an earlier time."""
    url = table_url(fake_connvo, "standup", "planning", "onboarding")
    vals = poller(agent_client.get(url).content.decode())["vals"]
    settings.CONNVO_LOOKUPS_PER_MINUTE = 2
    cache.clear()
    vals = poller(refresh(agent_client, url, vals).content.decode())["vals"]
    cache.clear()

    response = refresh(agent_client, url, vals)

    assert response.status_code == 200
    assert "1 not refreshed at" in summary_text(response.content.decode())


def test_the_audit_log_failing_during_a_refresh_keeps_the_rows_and_the_summary(
    agent_client, agent_token, fake_connvo, monkeypatch
):
    url = table_url(fake_connvo, "standup", "planning")
    vals = poller(agent_client.get(url).content.decode())["vals"]

    def unavailable(*args, **kwargs):
        raise DatabaseError("the audit table is locked")

    monkeypatch.setattr("audit.spans.record_answers", unavailable)
    html = refresh(agent_client, url, vals).content.decode()

    assert "<tr" not in html and html.count("data-stale") == 2
    assert re.fullmatch(
        r"1 active · 1 scheduled — 2 not refreshed at \d\d:\d\d:\d\d: Not recorded",
        summary_text(html),
    )
    assert "could not record this lookup in the audit log" in html


def test_a_missing_figure_says_why_in_text_not_only_on_hover(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.update_meeting("standup", averageRating=None)

    html = agent_client.get(table_url(fake_connvo, "standup", "planning")).content.decode()

    rating = re.search(r'data-cell="rating"[^>]*>(.*?)</td>', row(html, fake_connvo, "standup"))
    assert re.sub(r"<[^>]+>", "", rating.group(1)) == "—No one has rated this meeting yet"
    assert '<span aria-hidden="true">—</span>' in rating.group(1)


def test_the_live_status_and_pause_come_before_the_table(agent_client, agent_token, fake_connvo):
    html = agent_client.get(table_url(fake_connvo, "standup", "planning")).content.decode()

    assert html.index('id="live-poller"') < html.index("<table")
    assert html.index("Pause live updates") < html.index("<table")


def asked_at_connvo(fake) -> set[str]:
    return {call.json["args"]["meetingId"] for call in fake.calls if call.json}


@pytest.mark.django_db
def test_rows_a_table_could_not_ask_under_the_limit_are_asked_once_the_window_has_passed(
    agent_client, agent_token, fake_connvo, settings
):
    """A table with more live rows than CONNVO_LOOKUPS_PER_MINUTE (the default 100 against 60):
    its first look leaves the rows past the limit "Not asked: lookup limit", as documented. But
    every refresh asks all its rows at once, in the table's order, so the same first rows use up
    each new window of the limit and the same last rows are refused again, for as long as the
    page is open: they never show their meeting (and the refresh even answers 204, unchanged)."""
    settings.CONNVO_LOOKUPS_PER_MINUTE = 3
    labels = ("standup", "planning", "onboarding", "minimal", "all-hands")  # all five live
    url = table_url(fake_connvo, *labels)

    page = agent_client.get(url).content.decode()
    assert "Not asked: lookup limit" in row(page, fake_connvo, "all-hands")  # as documented
    vals = poller(page)["vals"]

    for _ in range(3):  # three refreshes, each in a new window of the limit
        cache.clear()
        response = agent_client.get(f"{url}&{urlencode(vals)}", **HTMX)
        if response.status_code != 204:
            vals = poller(response.content.decode())["vals"] or vals

    never_asked = {
        label
        for label in ("minimal", "all-hands")
        if fake_connvo.meeting_id(label) not in asked_at_connvo(fake_connvo)
    }
    assert never_asked == set(), f"{sorted(never_asked)} refused at every refresh, never shown"
    # And the rows shown are each the table's own, in its order.
    assert [label for label in labels if row(page, fake_connvo, label)] == list(labels)


@given(
    size=st.integers(min_value=1, max_value=150),
    settled=st.sets(st.integers(min_value=0, max_value=149)),
    limit=st.integers(min_value=1, max_value=200),
    start=st.integers(min_value=0, max_value=149),
)
def test_a_refresh_asks_every_row_in_turn_whatever_the_limit(size, settled, limit, start):
    """Refreshes each asking what the limit lets through, from where the last one stopped:
    every row not settled is asked within as many refreshes as the limit takes to go round."""
    indexes = [i for i in range(size) if i not in settled]
    turn, asked = (start if start < size else 0), set()
    for _ in range(math.ceil(len(indexes) / limit) if indexes else 1):
        order = triage.in_turn(indexes, start=turn)
        assert sorted(order) == indexes
        answers = [
            Answer("dev", str(i), error=None if n < limit else ratelimit.LookupLimitReached("x"))
            for n, i in enumerate(order)
        ]
        turn = triage.turn_in(str(triage.next_turn(order, answers, start=turn, size=size)), size)
        asked |= set(order[:limit])
    assert asked == set(indexes)
