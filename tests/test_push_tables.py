"""The triage table and the watch list by push (meetings/views/push.py): one stream per page for all
its rows, against the fake's real sync WebSocket; each row's pushed answer on record in the row's
span before it is sent as the row its polling refresh draws; the page's spans held open while the
stream is, and sealed when it ends; opening a stream counted against the lookup limit."""

from __future__ import annotations

import contextlib
import html
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db.models import F
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone

from audit import spans
from audit.models import AuditEntry, Span, Via
from meetings import pasted_tokens
from meetings.models import WatchedMeeting
from meetings.views import push
from tests.conftest import run_async
from tests.push_streams import OPENED, close_streams, follow, not_out_of_band

# The streams do their database work in the push worker's own threads (meetings/views/push.py),
# which see only what is committed.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("push_on", "push_database_threads"),
]


LABELS = ("standup", "planning", "retro")


def open_table(client, fake, *labels: str) -> tuple[str, str]:
    """Open the table (its first look); return its stream's address and its span key."""
    ids = ",".join(fake.meeting_id(label) for label in labels)
    page = client.get(f"{reverse('meetings:table', args=['dev'])}?ids={ids}").content.decode()
    return stream_of(page)


def stream_of(page: str) -> tuple[str, str]:
    match = re.search(r'<section class="triage"[^>]*sse-connect="([^"]+)"', page)
    assert match, "the page connects to its push stream"
    url = html.unescape(match.group(1))
    return url, re.search(r"[?&]span=([A-Za-z0-9_-]+)", url).group(1)


@pytest.fixture(autouse=True)
def streams_kept(monkeypatch):
    """Each stream the views open, so that a test can close it as the push server does when the
    browser goes away (its `finally` then seals the page's spans)."""
    events = push._Stream.events

    def kept(self):
        stream = events(self)
        OPENED.append(stream)
        return stream

    monkeypatch.setattr(push._Stream, "events", kept)
    yield
    OPENED.clear()


def row_in(fragment: str, fake, label: str) -> str:
    meeting_id = fake.meeting_id(label)
    for match in re.finditer(r'<tr id="row-\d+".*?</tr>', fragment, re.S):
        if meeting_id in match.group(0):
            return match.group(0)
    return ""


def every_row(fake, *labels: str):
    """Waits until every one of these rows has been sent (their first answers)."""
    sent = set()

    def check(name: str, data: str) -> bool:
        sent.update(label for label in labels if row_in(data, fake, label))
        return sent == set(labels)

    return (lambda: None, check)


def has_participants(fake, label: str, count: int):
    return lambda name, data: (
        f'data-cell="participants" data-label="Participants">{count}<'
        in (row_in(data, fake, label))
    )


# --- The page ----------------------------------------------------------------------------------


def test_table_connects_to_one_stream_and_says_it_polls_until_it_is_pushed(
    agent_client, agent_token, fake_connvo
):
    ids = ",".join(fake_connvo.meeting_id(label) for label in LABELS)
    page = agent_client.get(f"{reverse('meetings:table', args=['dev'])}?ids={ids}").content
    page = page.decode()
    url, key = stream_of(page)
    assert url.startswith(f"/live/table/dev/?ids={ids}&")
    assert Span.objects.filter(key=key).count() == len(LABELS)
    stream = re.search(r'<section class="triage".*?<div id="live-stream"[^>]*>', page, re.S)
    assert stream.group(0).endswith('<div id="live-stream" sse-swap="rows" hx-swap="none" hidden>')
    poller = re.search(r'<div id="live-poller"[^>]*>', page).group(0)
    assert "hx-trigger=" in poller and "sse-swap" not in poller and 'data-mode="poll"' in poller
    assert "Live (polling every 10 s)" in page


def test_polling_only_deployment_table_has_no_stream(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLLING_ONLY_DEPLOYMENTS = ["dev"]
    ids = ",".join(fake_connvo.meeting_id(label) for label in LABELS)
    page = agent_client.get(f"{reverse('meetings:table', args=['dev'])}?ids={ids}").content
    assert b"sse-connect" not in page and b"sse-swap" not in page
    assert b"Live (polling every 10 s)" in page


def test_stream_refuses_staff_who_may_not_look_up(outsider, fake_connvo):
    client = AsyncClient()
    client.force_login(outsider)
    ids = fake_connvo.meeting_id("standup")
    response = run_async(client.get(f"/live/table/dev/?ids={ids}"))
    assert response.status_code == 403


# --- Against the fake's sync WebSocket ---------------------------------------------------------


def test_a_change_at_connvo_is_pushed_to_its_row_recorded_in_the_rows_span_and_sent(
    agent_client, async_agent, agent_token, fake_connvo
):
    url, _ = open_table(agent_client, fake_connvo, *LABELS)

    events = follow(
        async_agent,
        url,
        # The subscriptions' first answers put the page on push (retro concluded: not followed).
        every_row(fake_connvo, "standup", "planning"),
        lambda: fake_connvo.update_meeting("planning", participantCount=77),
        until=lambda name, data: name == "rows",
    )
    if not has_participants(fake_connvo, "planning", 77)(*events[-1]):
        pytest.fail("the changed row was not sent")

    fragment = events[0][1]
    poller = re.search(r'<div id="live-poller"[^>]*>', fragment).group(0)
    assert "hx-get" not in poller and "hx-trigger" not in poller
    assert 'hx-swap-oob="outerHTML"' in poller and 'data-mode="push"' in poller
    # The page's #live-stream takes the event and swaps nothing itself: all of it is out of band.
    assert not_out_of_band(fragment) == [] and not_out_of_band(events[-1][1]) == []
    assert ">Live</strong>" in fragment and "polling every" not in fragment
    # The row is the polling refresh's own, swapped out of band.
    assert 'hx-swap-oob="true"' in row_in(events[-1][1], fake_connvo, "planning")
    assert 'id="table-summary"' in events[-1][1]
    # Only the row that changed is sent again.
    assert row_in(events[-1][1], fake_connvo, "standup") == ""


def test_a_filtered_tables_pushed_rows_show_a_meeting_that_enters_its_filter(
    agent_client, async_agent, agent_token, fake_connvo
):
    """Show: active. A scheduled meeting starts: its pushed row is drawn shown (the page has it,
    hidden); one that stays out of the filter is sent hidden."""
    ids = ",".join(fake_connvo.meeting_id(label) for label in ("standup", "planning"))
    table = f"{reverse('meetings:table', args=['dev'])}?ids={ids}&show=active"
    page = agent_client.get(table).content.decode()
    assert re.search(r'<tr id="row-1"[^>]*\shidden', page)
    url, _ = stream_of(page)

    events = follow(
        async_agent,
        url,
        every_row(fake_connvo, "standup", "planning"),
        lambda: fake_connvo.update_meeting("planning", state="active"),
        until=lambda name, data: (
            name == "rows" and 'data-group="active"' in row_in(data, fake_connvo, "planning")
        ),
    )

    first, started = (
        row_in(events[0][1], fake_connvo, "planning"),
        row_in(events[-1][1], fake_connvo, "planning"),
    )
    assert re.match(r"<tr\b[^>]*\shidden", first)
    assert not re.match(r"<tr\b[^>]*\shidden", started) and 'hx-swap-oob="true"' in started
    assert not_out_of_band(events[-1][1]) == []


def test_every_answer_connvo_sent_is_on_record_and_the_spans_are_sealed_when_the_page_closes(
    agent_client, async_agent, agent_token, fake_connvo
):
    url, key = open_table(agent_client, fake_connvo, *LABELS)
    first_look = AuditEntry.objects.count()

    follow(
        async_agent,
        url,
        every_row(fake_connvo, "standup", "planning"),
        lambda: fake_connvo.update_meeting("planning", participantCount=78),
        until=has_participants(fake_connvo, "planning", 78),
    )

    # Closed: each row's pushed answers went into the chain at once, as a closed page's, under
    # the table's span key, counted as the table's refreshes are.
    sealed = list(AuditEntry.objects.filter(tally__span=key, tally__final=True))
    assert sum(entry.calls for entry in sealed) == fake_connvo.answers_sent
    assert {entry.via for entry in sealed} == {Via.TABLE}
    # Two followed rows (retro has concluded): their first answers, and the change.
    assert fake_connvo.answers_sent == 3
    assert AuditEntry.objects.count() == first_look + len(sealed)
    # No call of the table is left outside the chain (retro's span, its first look sealed and
    # nothing pushed, waits for `audit_seal`).
    assert not Span.objects.filter(key=key, calls__gt=F("sealed_calls")).exists()
    # The first look's calls (one per row) and every pushed answer.
    assert spans.calls_on_record() == len(LABELS) + fake_connvo.answers_sent


def test_an_open_stream_holds_its_spans_open_however_long_nothing_changes(
    agent_client, async_agent, agent_token, fake_connvo, settings, monkeypatch
):
    settings.CONNVO_PUSH_HEARTBEAT = 0.05
    monkeypatch.setattr(push, "HOLD_OPEN_EVERY", 0)
    url, key = open_table(agent_client, fake_connvo, "standup", "planning")
    quiet_long_ago = timezone.now() - timedelta(hours=2)

    async def run():
        response = await async_agent.get(url)
        buffer = ""
        async with contextlib.aclosing(aiter(response)) as content:
            # The first answers, then nothing changes for "two hours" (the spans' last call is
            # moved back), then a heartbeat and its hold.
            while "event: rows" not in buffer:
                buffer += (await anext(content)).decode()
            await sync_to_async(Span.objects.filter(key=key).update)(last_at=quiet_long_ago)
            buffer = ""
            while buffer.count(": still live") < 2:
                buffer += (await anext(content)).decode()
            sealed_while_open = await sync_to_async(spans.seal_quiet)()
        await close_streams()
        return sealed_while_open

    sealed_while_open = run_async(run())

    assert [e for e in sealed_while_open if e.tally["span"] == key] == []
    # Closing it sealed the spans: no part was cut off in between.
    sealed = AuditEntry.objects.filter(tally__span=key)
    assert sealed.count() == 2 and all(e.tally["final"] for e in sealed)
    assert sum(e.calls for e in sealed) == fake_connvo.answers_sent == 2


def test_a_dropped_websocket_sends_the_table_to_polling(
    agent_client, async_agent, agent_token, fake_connvo
):
    url, key = open_table(agent_client, fake_connvo, *LABELS)

    events = follow(async_agent, url, lambda: None, fake_connvo.drop_sync_connections)

    assert [name for name, _ in events] == ["rows", "fallback"]
    # What Connvo sent before the drop is on record, sealed as the stream ended.
    sealed = AuditEntry.objects.filter(tally__span=key)
    assert sum(e.calls for e in sealed) == fake_connvo.answers_sent


def test_a_table_whose_meetings_all_ended_ends_its_stream(
    agent_client, async_agent, agent_token, fake_connvo
):
    url, _ = open_table(agent_client, fake_connvo, "standup", "planning")

    def conclude():
        fake_connvo.update_meeting("standup", state="concluded")
        fake_connvo.update_meeting("planning", state="cancelled")

    events = follow(
        async_agent, url, lambda: None, conclude, until=lambda name, data: name == "end"
    )

    assert events[-1][0] == "end"


# --- The watch list ----------------------------------------------------------------------------


def test_watch_list_is_pushed_as_one_stream(
    agent, agent_client, async_agent, agent_token, fake_connvo
):
    for label in ("standup", "planning"):
        WatchedMeeting.objects.create(
            user=agent, deployment="dev", meeting_id=fake_connvo.meeting_id(label)
        )
    page = agent_client.get(reverse("meetings:watching")).content.decode()
    url, key = stream_of(page)
    assert url.startswith("/live/watching/?list=")

    events = follow(
        async_agent,
        url,
        lambda: None,
        lambda: fake_connvo.update_meeting("standup", participantCount=55),
        until=has_participants(fake_connvo, "standup", 55),
    )

    assert events[-1][0] == "rows"
    assert "Unwatch" in row_in(events[-1][1], fake_connvo, "standup")
    assert sum(e.calls for e in AuditEntry.objects.filter(tally__span=key)) == (
        fake_connvo.answers_sent
    )


def test_pushed_watch_list_rows_tag_production_meetings_as_the_page_does(
    agent, agent_client, async_agent, agent_token, fake_connvo, fake_connvo_prod
):
    pasted_tokens.store_token(
        user=agent, deployment_name="prod", raw_token=fake_connvo_prod.token_for("agent")
    )
    fakes = {"dev": fake_connvo, "prod": fake_connvo_prod}
    for deployment, fake in fakes.items():
        WatchedMeeting.objects.create(
            user=agent, deployment=deployment, meeting_id=fake.meeting_id("standup")
        )
    url, _ = stream_of(agent_client.get(reverse("meetings:watching")).content.decode())
    details = {
        d: reverse("meetings:detail", args=[d, f.meeting_id("standup")]) for d, f in fakes.items()
    }
    tags = {}

    def every_row_tagged(name: str, data: str) -> bool:
        for row in re.findall(r'<tr id="row-\d+".*?</tr>', data, re.S):
            for deployment, detail in details.items():
                if f'href="{detail}"' in row:
                    tags[deployment] = re.search(r'<span class="tag[^"]*">\w+</span>', row)[0]
        return tags.keys() == details.keys()

    events = follow(async_agent, url, lambda: None, until=every_row_tagged)

    assert events[-1][0] == "rows"
    assert tags == {
        "dev": '<span class="tag">dev</span>',
        "prod": '<span class="tag tag--prod">prod</span>',
    }


def test_a_watch_list_changed_elsewhere_falls_back_to_its_polling_refresh(
    agent, agent_client, async_agent, agent_token, fake_connvo
):
    WatchedMeeting.objects.create(
        user=agent, deployment="dev", meeting_id=fake_connvo.meeting_id("standup")
    )
    url, _ = stream_of(agent_client.get(reverse("meetings:watching")).content.decode())
    WatchedMeeting.objects.create(
        user=agent, deployment="dev", meeting_id=fake_connvo.meeting_id("planning")
    )

    events = follow(async_agent, url, lambda: None)

    assert events == [("fallback", "The watch list changed since the page was drawn.")]
    assert fake_connvo.answers_sent == 0


# --- The lookup limit --------------------------------------------------------------------------

# What the page's live line says of a stream refused by the limit (push.why_polling).
OVER_THE_LIMIT = (
    "Live updates by push stopped: Too many lookups from your account. The page now checks for "
    "changes at regular intervals instead."
)


def test_a_tables_first_stream_counts_nothing_more_and_pushed_answers_none(
    agent_client, async_agent, agent_token, fake_connvo, settings
):
    # The first look: one per meeting (3), the whole limit. Opening the page's stream right
    # after counts none of them (it follows 2: retro has concluded); pushed answers count none.
    # (Counted again, a table of more rows than half the limit could not be pushed in its first
    # minute: 40 rows were 80 lookups against 60.)
    settings.CONNVO_LOOKUPS_PER_MINUTE = len(LABELS)
    url, _ = open_table(agent_client, fake_connvo, *LABELS)

    events = follow(
        async_agent,
        url,
        every_row(fake_connvo, "standup", "planning"),
        lambda: fake_connvo.update_meeting("planning", participantCount=61),
        until=has_participants(fake_connvo, "planning", 61),
    )
    assert events[-1][0] == "rows"

    # A later stream of the page (as after a drop) counts one per meeting: over the limit now,
    # it is refused before it subscribes to anything.
    sent = fake_connvo.answers_sent
    assert follow(async_agent, url, lambda: None) == [("fallback", OVER_THE_LIMIT)]
    assert fake_connvo.answers_sent == sent


def test_a_meeting_pages_later_streams_count_one_lookup(
    agent_client, async_agent, agent_token, fake_connvo, settings
):
    settings.CONNVO_LOOKUPS_PER_MINUTE = 2
    meeting = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    page = agent_client.get(meeting).content.decode()  # 1
    stream = html.unescape(re.search(r'sse-connect="([^"]+)"', page).group(1))

    assert follow(async_agent, stream, lambda: None)[0][0] == "metrics"  # the first: free
    assert follow(async_agent, stream, lambda: None)[0][0] == "metrics"  # 2
    assert follow(async_agent, stream, lambda: None) == [("fallback", OVER_THE_LIMIT)]  # 3
