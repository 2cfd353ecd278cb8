"""The meeting page's push stream (meetings/views/push.py): who may open it, each pushed answer on
record in the page's span before it is sent, the fragment it sends, and the fallback to polling.

Connvo's pushes come from a scripted `meetings.sync.watch` in most tests, each one a real lookup of
the fake's meeting (the same typed result the subscription yields); the last ones run the real
subscription against the fake's sync WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings as settings_module
from django.contrib.auth.models import Group
from django.db import DatabaseError
from django.test import AsyncClient, Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts.sessions import ACTIVE_AT
from audit import spans
from audit.models import AuditEntry, Span
from meetings import connvo, sync
from meetings.deployments import get_deployment
from meetings.views import push
from tests.conftest import run_async
from tests.push_streams import follow, not_out_of_band, parse

# The stream does its database work in the push worker's own threads (meetings/views/push.py),
# which see only what is committed.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("push_on", "push_database_threads"),
]


def stream_url(fake, label: str = "standup", span: str = "") -> str:
    url = reverse("meetings:push", args=["dev", fake.meeting_id(label)])
    return f"{url}?span={span}" if span else url


def looked_up(fake, token: str, label: str = "standup") -> connvo.Lookup:
    return connvo.get_meeting(
        deployment=get_deployment("dev"), token=token, meeting_id=fake.meeting_id(label)
    )


class Script:
    """Stands in for Connvo's subscription: yields what each step makes, in order (raising
    PushUnavailable), then stays open. Remembers what it was asked for and whether it was
    closed."""

    def __init__(self, *steps) -> None:
        self.steps = list(steps)
        self.calls: list[dict] = []
        self.closed = False

    async def watch(self, *, deployment, token, meeting_id, user_key, leaving=None):
        self.calls.append(
            {"deployment": deployment.name, "meeting_id": meeting_id, "user_key": user_key}
        )
        self.token = await token()
        try:
            for step in self.steps:
                result = await asyncio.to_thread(step) if callable(step) else step
                # A refusal is an answer (yielded); the subscription failing is raised.
                if isinstance(result, sync.PushUnavailable):
                    raise result
                yield result
            # Open until the page closes (and leaves it: meetings/sync.py `watch`).
            await (leaving or asyncio.Event()).wait()
        finally:
            self.closed = True


@pytest.fixture
def script(monkeypatch):
    def install(*steps) -> Script:
        scripted = Script(*steps)
        monkeypatch.setattr(sync, "watch", scripted.watch)
        return scripted

    return install


def read_events(client: AsyncClient, url: str, count: int, headers=None):
    """The response, and its first `count` events (comments included) as (name, data) pairs;
    then the page goes away (the stream is closed, as when the tab is closed)."""

    async def run():
        response = await client.get(url, headers=headers or {})
        if not response.streaming:
            return response, []
        events = []
        buffer = ""
        async with contextlib.aclosing(aiter(response)) as content:
            async for chunk in content:
                buffer += chunk.decode()
                while "\n\n" in buffer and len(events) < count:
                    block, buffer = buffer.split("\n\n", 1)
                    events.append(parse(block))
                if len(events) >= count:
                    break
        return response, events

    return run_async(run())


def page_span(client, fake) -> str:
    """Open the meeting page (a first look) and return the span key its stream carries."""
    html = client.get(reverse("meetings:detail", args=["dev", fake.meeting_id("standup")]))
    match = re.search(r'sse-connect="[^"]*\?span=([A-Za-z0-9_-]+)"', html.content.decode())
    assert match, "the page connects to its push stream"
    return match.group(1)


# --- Who may open it ---------------------------------------------------------------------------


def test_stream_needs_sign_in(fake_connvo, script):
    scripted = script()
    response, _ = read_events(AsyncClient(), stream_url(fake_connvo), 1)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    assert scripted.calls == []


def test_stream_refuses_staff_who_may_not_look_up(outsider, fake_connvo, script):
    scripted = script()
    client = AsyncClient()
    client.force_login(outsider)
    response, _ = read_events(client, stream_url(fake_connvo), 1)
    assert response.status_code == 403
    assert scripted.calls == []


def test_another_site_cannot_open_a_subscription(async_agent, agent_token, fake_connvo, script):
    scripted = script()
    response, _ = read_events(
        async_agent, stream_url(fake_connvo), 1, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403
    assert scripted.calls == []
    assert not Span.objects.exists()


@pytest.mark.parametrize(
    "setting", [{"CONNVO_PUSH": False}, {"CONNVO_POLLING_ONLY_DEPLOYMENTS": ["dev"]}]
)
def test_no_stream_where_push_is_off(
    async_agent, agent_token, fake_connvo, script, settings, setting
):
    for name, value in setting.items():
        setattr(settings, name, value)
    scripted = script()
    response, _ = read_events(async_agent, stream_url(fake_connvo), 1)
    assert response.status_code == 404
    assert scripted.calls == []


def test_a_wsgi_worker_never_holds_a_stream(agent_client, agent_token, fake_connvo, script):
    scripted = script()
    # In a thread of its own, as a WSGI worker's, with no event loop running (in a worker that has
    # run a browser test, Playwright keeps one in this thread).
    with ThreadPoolExecutor(max_workers=1) as wsgi_thread:
        response = wsgi_thread.submit(agent_client.get, stream_url(fake_connvo)).result()
    assert response.status_code == 404
    assert scripted.calls == []


# --- What it sends -----------------------------------------------------------------------------


def test_subscribes_in_the_agents_name_with_their_token(
    agent, async_agent, agent_token, fake_connvo, script
):
    scripted = script(lambda: looked_up(fake_connvo, agent_token))
    response, events = read_events(async_agent, stream_url(fake_connvo), 2)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["X-Accel-Buffering"] == "no"
    # After the stream ends the browser reconnects within a few seconds (polling meanwhile).
    assert events[0][0] == "retry" and 1000 <= int(events[0][1]) <= 5000
    assert scripted.calls == [
        {
            "deployment": "dev",
            "meeting_id": fake_connvo.meeting_id("standup"),
            "user_key": str(agent.pk),
        }
    ]
    assert scripted.token == agent_token
    assert scripted.closed, "closing the page ends the subscription"


def test_pushed_answer_is_on_record_in_the_pages_span_before_it_is_sent(
    agent_client, async_agent, agent_token, fake_connvo, script
):
    key = page_span(agent_client, fake_connvo)
    fake_connvo.update_meeting("standup", participantCount=42)
    script(lambda: looked_up(fake_connvo, agent_token))

    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 2)

    name, fragment = events[1]
    assert name == "metrics"
    assert '<dd data-metric="participants">42</dd>' in fragment
    # The first look's call and the pushed one, in the page's span, or sealed into the chain
    # once the stream has ended (the page went away).
    assert spans.calls_on_record() == 2
    assert set(AuditEntry.objects.values_list("outcome", flat=True)) == {"found"}


def test_fragment_is_the_pages_own_with_polling_off(
    agent_client, async_agent, agent_token, fake_connvo, script
):
    key = page_span(agent_client, fake_connvo)
    script(lambda: looked_up(fake_connvo, agent_token))

    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 2)

    fragment = events[1][1]
    poller = re.search(r'<div id="live-poller"[^>]*>', fragment).group(0)
    assert "hx-get" not in poller and "hx-trigger" not in poller
    # The page's #live-stream takes the event and swaps nothing itself: all of it is out of band.
    assert 'hx-swap-oob="outerHTML"' in poller and "sse-swap" not in poller
    assert not_out_of_band(fragment) == []
    assert 'data-mode="push"' in poller
    assert f'data-span="{key}"' in poller
    # Its links and its fallback refresh go to the meeting page, not to the stream.
    assert f'data-refresh-url="/meetings/dev/{fake_connvo.meeting_id("standup")}/"' in poller
    assert 'id="metric-values"' in fragment and 'hx-swap-oob="innerHTML"' in fragment
    assert ">Live</strong>" in fragment
    assert "polling" not in fragment


@pytest.mark.parametrize(
    "zone, offset", [("Asia/Tokyo", "+09:00"), ("Pacific/Pago_Pago", "-11:00")]
)
def test_a_pushed_fragment_shows_times_in_the_agents_zone(
    async_agent, agent_token, fake_connvo, script, zone, offset
):
    """As the page itself does (meetings/middleware.py): the events are drawn after the view's
    response has left the middleware that set the agent's zone."""
    async_agent.cookies["console_tz"] = zone
    script(lambda: looked_up(fake_connvo, agent_token))

    _, events = read_events(async_agent, stream_url(fake_connvo), 2)

    checked = re.search(r'<time class="js-checked" datetime="([^"]+)"', events[1][1]).group(1)
    assert checked.endswith(offset)


def test_unchanged_answers_are_recorded_but_not_sent(
    agent_client, async_agent, agent_token, fake_connvo, script
):
    key = page_span(agent_client, fake_connvo)

    def changed():
        fake_connvo.update_meeting("standup", participantCount=7)
        return looked_up(fake_connvo, agent_token)

    same = lambda: looked_up(fake_connvo, agent_token)  # noqa: E731
    script(same, same, changed)

    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 3)

    assert [name for name, _ in events] == ["retry", "metrics", "metrics"]
    assert '<dd data-metric="participants">7</dd>' in events[2][1]
    assert spans.calls_on_record() == 1 + 3


def test_answer_that_cannot_be_recorded_is_not_sent_and_the_page_polls(
    agent_client, async_agent, agent_token, fake_connvo, script, monkeypatch
):
    key = page_span(agent_client, fake_connvo)
    script(lambda: looked_up(fake_connvo, agent_token))

    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(spans, "record_answers", broken)
    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 3)

    assert [name for name, _ in events] == ["retry", "retry", "fallback"]
    assert events[2] == (
        "fallback",
        "Live updates by push stopped: The lookup could not be recorded. The page now checks for "
        "changes at regular intervals instead.",
    )


def test_push_unavailable_tells_the_page_to_poll(
    agent_client, async_agent, agent_token, fake_connvo, script
):
    key = page_span(agent_client, fake_connvo)
    scripted = script(
        lambda: looked_up(fake_connvo, agent_token),
        sync.PushUnavailable("The connection to Connvo's live updates dropped."),
    )

    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 4)

    # The page tries push again soon: the stream had brought an answer, so this is a first
    # failure.
    assert [name for name, _ in events] == ["retry", "metrics", "retry", "fallback"]
    assert events[3][1] == "The connection to Connvo's live updates dropped."  # its own words
    assert 1000 <= int(events[2][1]) <= 5000
    assert scripted.closed


def test_a_page_whose_streams_keep_failing_tries_again_later_each_time(
    agent_client, async_agent, agent_token, fake_connvo, script, settings
):
    """Each attempt counts the page's meetings against the lookup limit: while Connvo keeps
    refusing the WebSocket, the page waits twice as long each time, up to a minute; once a
    stream brings an answer again, the next failure is a first one."""
    settings.CONNVO_LOOKUPS_PER_MINUTE = 1000
    key = page_span(agent_client, fake_connvo)
    refused = sync.PushUnavailable("Connvo refused the WebSocket.")

    def retry_after_failing() -> int:
        script(refused)
        _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 3)
        assert [name for name, _ in events] == ["retry", "retry", "fallback"]
        return int(events[1][1])

    waits = [retry_after_failing() for _ in range(7)]
    assert 1000 <= waits[0] <= 5000
    for failures, wait in enumerate(waits[1:], start=2):
        longest = min(60, 5 * 2 ** (failures - 1)) * 1000
        assert longest // 2 <= wait <= longest, (failures, waits)

    # An answer again: the next failure waits as a first one.
    script(lambda: looked_up(fake_connvo, agent_token), refused)
    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 4)
    assert [name for name, _ in events] == ["retry", "metrics", "retry", "fallback"]
    assert 1000 <= int(events[2][1]) <= 5000


def test_ended_meeting_sends_its_last_fragment_and_ends_the_stream(
    agent_client, async_agent, agent_token, fake_connvo, script
):
    key = page_span(agent_client, fake_connvo)

    def concluded():
        fake_connvo.update_meeting("standup", state="concluded")
        return looked_up(fake_connvo, agent_token)

    scripted = script(concluded)

    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 4)

    assert [name for name, _ in events] == ["retry", "metrics", "end"]
    assert "live updates have stopped" in events[1][1]
    poller = re.search(r'<div id="live-poller"[^>]*>', events[1][1]).group(0)
    assert "hx-get" not in poller and 'hx-swap-oob="outerHTML"' in poller
    assert not_out_of_band(events[1][1]) == []
    assert scripted.closed


def test_connvo_refusing_the_meeting_ends_the_stream(
    agent_client, async_agent, agent_token, fake_connvo, script
):
    key = page_span(agent_client, fake_connvo)
    gone = connvo.MeetingNotVisible("You are no longer a participant of this meeting.")
    script(gone)

    _, events = read_events(async_agent, stream_url(fake_connvo, span=key), 4)

    assert [name for name, _ in events] == ["retry", "metrics", "end"]
    assert "Live updates stopped" in events[1][1]
    # The stream ended: its span's pushed answer went into the chain at once, as a closed page's.
    (sealed,) = AuditEntry.objects.filter(tally__span=key)
    assert sealed.tally["outcomes"] == {"not_visible": 1} and sealed.tally["final"] is True
    assert not Span.objects.filter(key=key).exists()
    assert spans.calls_on_record() == 2


def _sign_out(client, agent):
    client.session.delete()  # as signing out on another tab, or on another host


def _deactivate(client, agent):
    agent.is_active = False
    agent.save(update_fields=["is_active"])


def _change_password(client, agent):
    agent.set_password("a new one, set by an administrator")
    agent.save(update_fields=["password"])


def _idle(client, agent):
    session = client.session
    session[ACTIVE_AT] = time.time() - settings_module.SESSION_IDLE_TIMEOUT - 1
    session.save()


@pytest.mark.parametrize("end", [_sign_out, _deactivate, _change_password, _idle])
def test_a_stream_stops_sending_once_the_sign_in_has_ended(
    async_agent, agent, agent_token, fake_connvo, script, settings, monkeypatch, end
):
    """The stream was let in by one request's sign-in check and outlives it: it checks again
    (every minute; at once here) and, once the sign-in has ended, sends nothing more and sends
    the page to polling, whose refresh meets the end and takes the page to the sign-in page."""
    settings.CONNVO_PUSH_HEARTBEAT = 0.05
    monkeypatch.setattr(push, "SIGN_IN_CHECKED_EVERY", 0)
    script(lambda: looked_up(fake_connvo, agent_token))

    events = follow(
        async_agent,
        stream_url(fake_connvo),
        lambda: None,  # the first answer, while signed in
        lambda: end(async_agent, agent),
        until=lambda name, data: False,
    )

    assert [name for name, _ in events] == ["metrics", "fallback"]
    assert events[1] == ("fallback", "")  # nothing to say: the refresh goes to sign in
    # The page's refresh, an htmx request, then meets the end and moves the page to sign in.
    refresh = Client(HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="live-poller")
    refresh.cookies = async_agent.cookies
    response = refresh.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")


def test_a_stream_stops_sending_once_the_agent_may_no_longer_look_meetings_up(
    async_agent, agent, agent_token, fake_connvo, script, settings, monkeypatch
):
    """An agent taken out of the Support group with a meeting page open: a polling page's next
    refresh is refused, but the stream checked only the sign-in, so Connvo's answers about the
    customer's meeting kept reaching the page, recorded in the name of someone who may no
    longer look meetings up, for as long as it stayed open."""
    settings.CONNVO_PUSH_HEARTBEAT = 0.05
    monkeypatch.setattr(push, "SIGN_IN_CHECKED_EVERY", 0)
    script(lambda: looked_up(fake_connvo, agent_token))

    def leave_support():
        agent.groups.remove(Group.objects.get(name="Support"))

    events = follow(
        async_agent,
        stream_url(fake_connvo),
        lambda: None,  # the first answer, while in Support
        leave_support,
        until=lambda name, data: False,
    )

    assert [name for name, _ in events] == ["metrics", "fallback"]
    # The page's refresh is then refused: the page reloads, to the refusal's page.
    page = Client()
    page.cookies = async_agent.cookies
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    refresh = page.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="live-poller")
    assert refresh["HX-Refresh"] == "true"
    assert page.get(url).status_code == 403


def test_a_stream_that_stays_signed_in_keeps_sending(
    async_agent, agent, agent_token, fake_connvo, script, settings, monkeypatch
):
    settings.CONNVO_PUSH_HEARTBEAT = 0.05
    monkeypatch.setattr(push, "SIGN_IN_CHECKED_EVERY", 0)
    changed = threading.Event()

    def after_a_while():
        changed.wait()  # the stream checked the sign-in at every heartbeat meanwhile
        return looked_up(fake_connvo, agent_token)

    script(lambda: looked_up(fake_connvo, agent_token), after_a_while)

    def change():
        time.sleep(0.3)
        fake_connvo.update_meeting("standup", participantCount=9)
        changed.set()

    events = follow(async_agent, stream_url(fake_connvo), lambda: None, change)

    assert [name for name, _ in events] == ["metrics", "metrics"]


def test_quiet_stream_sends_a_heartbeat(async_agent, agent_token, fake_connvo, script, settings):
    settings.CONNVO_PUSH_HEARTBEAT = 0.05
    script()  # subscribed, and nothing changes
    _, events = read_events(async_agent, stream_url(fake_connvo), 2)
    assert events[1] == ("comment", "still live")


# --- The page ----------------------------------------------------------------------------------


def test_page_connects_to_its_stream_and_says_it_polls_until_it_is_pushed(
    agent_client, agent_token, fake_connvo
):
    html = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    ).content.decode()
    section = re.search(r'<section id="metrics"[^>]*>', html).group(0)
    assert 'hx-ext="sse"' in section and 'sse-close="end"' in section
    # One element takes the stream's events, in the section, and no swap replaces it.
    stream = re.search(r'<section id="metrics".*?<div id="live-stream"[^>]*>', html, re.S).group(0)
    assert stream.endswith('<div id="live-stream" sse-swap="metrics" hx-swap="none" hidden>')
    poller = re.search(r'<div id="live-poller"[^>]*>', html).group(0)
    assert "hx-trigger=" in poller and "sse-swap" not in poller and "hx-swap-oob" not in poller
    assert "Live (polling every 10 s)" in html


def test_polling_only_deployment_page_has_no_stream(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLLING_ONLY_DEPLOYMENTS = ["dev"]
    html = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    ).content.decode()
    assert "sse-connect" not in html and "sse-swap" not in html
    assert "Live (polling every 10 s)" in html


# --- Against the fake's sync WebSocket (the real subscription) ---------------------------------


def test_a_change_at_connvo_is_pushed_recorded_and_sent(
    agent_client, async_agent, agent_token, fake_connvo
):
    key = page_span(agent_client, fake_connvo)

    events = follow(
        async_agent,
        stream_url(fake_connvo, span=key),
        lambda: None,  # the subscription's first answer
        lambda: fake_connvo.update_meeting("standup", participantCount=31),
    )

    assert [name for name, _ in events] == ["metrics", "metrics"]
    assert '<dd data-metric="participants">31</dd>' in events[1][1]
    # Every answer Connvo sent on the subscription is on record, in the page's span, with its
    # first look (the HTTP call).
    assert fake_connvo.answers_sent == 2
    assert spans.calls_on_record() == 1 + fake_connvo.answers_sent


def test_a_dropped_websocket_sends_the_page_to_polling(
    agent_client, async_agent, agent_token, fake_connvo
):
    key = page_span(agent_client, fake_connvo)

    events = follow(
        async_agent,
        stream_url(fake_connvo, span=key),
        lambda: None,
        fake_connvo.drop_sync_connections,
    )

    assert [name for name, _ in events] == ["metrics", "fallback"]


@given(st.text())
def test_an_event_reaches_the_page_as_it_was_sent(data):
    """Read as the browser reads a stream (lines end at CR LF, CR or LF; one event ends at a blank
    line; its data lines are joined with LF). Splitting with `str.splitlines()` also broke lines
    at U+2028, U+2029 and U+0085, which Connvo's text may hold: a pushed page showed line feeds
    where a polled one showed the text as it was."""
    lines = re.split(r"\r\n|\r|\n", push._event("metrics", data))

    assert lines[0] == "event: metrics" and lines[-2:] == ["", ""]
    body = lines[1:-2]
    assert all(line.startswith("data: ") for line in body)
    assert "\n".join(line.removeprefix("data: ") for line in body) == re.sub(r"\r\n|\r", "\n", data)
