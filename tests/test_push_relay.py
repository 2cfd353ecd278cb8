"""The host's push relay (meetings/relay.py): pushed answers recorded where a push worker's death
cannot lose them. What crosses its socket comes back as it was; a page's stream through a relay
shows what it would show without one, each answer on record first; and a push worker stopped and
then killed by `kill -9` with a change in flight leaves every answer Connvo sent on record, its
pages' spans sealed at once, while the other worker's pages go on (issue #24)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.db.models import F
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from audit import spans
from audit.models import AuditEntry, Span
from connvo_admin.outcomes import LookupFailed
from fakeconnvo import FakeConnvo
from meetings import relay, sync
from meetings.lookups import AuditUnavailable
from meetings.ratelimit import LookupLimitReached
from tests.conftest import PASSWORD, run_async
from tests.production import (
    Gunicorn,
    Relay,
    collect_static,
    manage,
    production_env,
    scratch_database,
    set_up,
    shell,
    signed_in,
)
from tests.push_streams import follow, relay_in_a_thread

# --- What crosses the socket ---------------------------------------------------------------------


def every_kind_of_failure() -> list[type[LookupFailed]]:
    """Every failure the console raises (those with an outcome: not their abstract bases)."""
    found, waiting = [], [LookupFailed]
    while waiting:
        for kind in waiting.pop().__subclasses__():
            waiting.append(kind)
            if hasattr(kind, "outcome"):
                found.append(kind)
    return found


def made(kind: type[LookupFailed], message: str, detail: str) -> LookupFailed:
    """A failure of `kind` as the code that raises it makes one."""
    if kind is AuditUnavailable:
        return kind()
    if kind is LookupLimitReached:
        return kind(message, retry_after=17, detail=detail)
    if kind.__name__ == "SchemaMismatch":
        return kind(message, field_name="participantCount", detail=detail)
    return kind(message, request_id="req-1", http_status=503, latency_ms=12, detail=detail)


@pytest.mark.parametrize("kind", every_kind_of_failure(), ids=lambda kind: kind.__name__)
@given(message=st.text(max_size=200), detail=st.text(max_size=200))
def test_every_kind_of_failure_crosses_the_relay_as_it_was(kind, message, detail):
    failure = made(kind, message, detail)

    kind_sent, again = relay._unframe(relay._frame(relay.FAILED, failure)[relay._LENGTH.size :])

    assert kind_sent == relay.FAILED
    assert type(again) is kind
    assert str(again) == str(failure)
    assert vars(again) == vars(failure)
    assert again.outcome == failure.outcome and again.label == failure.label


@given(
    user_id=st.integers(min_value=1, max_value=2**62),
    client_ip=st.none() | st.ip_addresses().map(str),
    user_agent=st.text(max_size=512),
    span=st.text(max_size=64),
    meetings=st.lists(st.tuples(st.integers(0, 500), st.text(max_size=40), st.text(max_size=40))),
    hold_every=st.floats(min_value=1, max_value=3600),
)
def test_what_a_page_follows_crosses_the_relay_as_it_was(
    user_id, client_ip, user_agent, span, meetings, hold_every
):
    following = relay.Following(
        user_id=user_id,
        client_ip=client_ip,
        user_agent=user_agent,
        span=span,
        via="table",
        meetings=tuple(meetings),
        hold_every=hold_every,
    )

    line = following.as_line()

    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert relay.Following.from_line(line) == following


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_a_line_that_is_not_a_stream_to_follow_is_refused_as_such(line):
    # Only what the relay catches (it closes that connection and goes on), or a stream to follow.
    with contextlib.suppress(ValueError, TypeError, KeyError):
        assert isinstance(relay.Following.from_line(line), relay.Following)


# --- A page's stream through a relay, in this process --------------------------------------------


@pytest.fixture
def through_a_relay(settings, tmp_path) -> Iterator[str]:
    settings.CONNVO_PUSH_RELAY = str(tmp_path / "relay.sock")
    with relay_in_a_thread(settings.CONNVO_PUSH_RELAY):
        yield settings.CONNVO_PUSH_RELAY


def open_span(key: str) -> bool:
    """Whether the page's span has calls not sealed into the chain yet."""
    return Span.objects.filter(key=key, calls__gt=F("sealed_calls")).exists()


def page_stream(client, fake) -> tuple[str, str]:
    """Open the meeting page (a first look): its stream's URL and its span key."""
    html = client.get(reverse("meetings:detail", args=["dev", fake.meeting_id("standup")]))
    match = re.search(r'sse-connect="([^"]*\?span=([A-Za-z0-9_-]+))"', html.content.decode())
    assert match, "the page connects to its push stream"
    return match.group(1).replace("&amp;", "&"), match.group(2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("push_on", "push_database_threads")
def test_a_page_through_the_relay_is_sent_each_change_after_it_is_on_record(
    through_a_relay, agent_client, async_agent, agent_token, fake_connvo
):
    url, key = page_stream(agent_client, fake_connvo)
    on_record_when_sent = []

    def change() -> None:
        fake_connvo.update_meeting("standup", participantCount=42)

    def shown(name: str, data: str) -> bool:
        if name == "metrics" and '<dd data-metric="participants">42</dd>' in data:
            # Read as the page is sent it (in a thread: this is the stream's event loop).
            with ThreadPoolExecutor(max_workers=1) as database:
                on_record_when_sent.append(database.submit(spans.calls_on_record).result())
            return True
        return False

    events = follow(async_agent, url, lambda: None, (change, shown))

    assert [name for name, _ in events] == ["metrics", "metrics"]
    # The first look's call, then Connvo's two answers (the subscription's first, the change):
    # the change was on record before the page was sent it.
    assert on_record_when_sent == [1 + fake_connvo.answers_sent] == [3]
    # The page went away: the relay ended its subscription and sealed its span at once.
    wait_for(lambda: not open_span(key), "the relay did not seal the closed page's span")
    assert sum(e.calls for e in AuditEntry.objects.filter(tally__span=key)) == 2
    assert spans.calls_on_record() == 1 + fake_connvo.answers_sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("push_on", "push_database_threads")
def test_a_page_whose_relay_is_not_there_falls_back_to_polling(
    settings, tmp_path, agent_client, async_agent, agent_token, fake_connvo
):
    settings.CONNVO_PUSH_RELAY = str(tmp_path / "nobody-listens.sock")
    url, _ = page_stream(agent_client, fake_connvo)

    events = follow(async_agent, url, lambda: None)

    assert events == [
        (
            "fallback",
            "Live updates stopped: the console's push relay could not be reached. The page now "
            "checks for changes at regular intervals instead.",
        )
    ]
    assert fake_connvo.answers_sent == 0  # nothing was subscribed to


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("push_on", "push_database_threads")
def test_a_page_leaving_the_relay_ends_its_read_at_once_and_its_span_is_sealed(
    through_a_relay, agent, agent_client, agent_token, fake_connvo
):
    """A page that goes away while its stream waits for Connvo's next answer: leaving closes the
    connection (the read under way ends), and the relay, seeing that, leaves the subscription
    and seals the span. Not after a read timeout: Connvo may say nothing for hours."""
    _, key = page_stream(agent_client, fake_connvo)
    following = relay.Following(
        user_id=agent.pk,
        client_ip="127.0.0.1",
        user_agent="test",
        span=key,
        via="refresh",
        meetings=((0, "dev", fake_connvo.meeting_id("standup")),),
        hold_every=60,
    )

    async def scenario() -> type[BaseException] | None:
        answers = relay.follow(following)
        assert isinstance(answers, relay.FromRelay)
        (first,) = await anext(answers)
        assert first[1].meeting is not None
        waiting = asyncio.ensure_future(anext(answers))  # nothing more is coming
        await asyncio.sleep(0.2)
        answers.leave()
        try:
            async with asyncio.timeout(10):  # a bound, not a measurement
                await waiting
        except sync.PushUnavailable as ended:
            return type(ended)
        finally:
            await answers.aclose()
        return None

    assert run_async(scenario()) is sync.PushUnavailable
    wait_for(lambda: not open_span(key), "the relay did not seal the span of the page that left")
    assert spans.calls_on_record() == 1 + fake_connvo.answers_sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("push_on", "push_database_threads")
def test_a_relay_that_stops_sends_its_pages_to_polling(
    settings, tmp_path, agent_client, async_agent, agent_token, fake_connvo
):
    settings.CONNVO_PUSH_RELAY = str(tmp_path / "relay.sock")
    url, key = page_stream(agent_client, fake_connvo)
    stopped = contextlib.ExitStack()
    stopped.enter_context(relay_in_a_thread(settings.CONNVO_PUSH_RELAY))

    events = follow(async_agent, url, lambda: None, stopped.close)

    assert [name for name, _ in events] == ["metrics", "fallback"]
    # What Connvo sent (the first answer) is on record, and the stopping relay sealed it.
    assert sum(e.calls for e in AuditEntry.objects.filter(tally__span=key)) == 1
    assert fake_connvo.answers_sent == 1


# --- kill -9 of a push worker, with a real relay and a real push server --------------------------

PAGES_EACH = 4  # pages opened on each of the push server's two workers


@pytest.fixture
def own_database(tmp_path) -> Iterator[str]:
    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        with scratch_database("console_push_relay") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'console.sqlite3'}"


class Stream:
    """A page's push stream, read in a thread: its events as they come, and whether it ended.
    Closing it shuts its connection down, as a closed tab does."""

    def __init__(self, base_url: str, path: str, cookies: str) -> None:
        self.events: list[tuple[str, str]] = []
        self.ended = threading.Event()
        address = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        self.connection.request("GET", path, headers={"Cookie": cookies})
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read(500)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name, data = "message", []
        try:
            while line := self.response.readline():
                line = line.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    self.events.append((name, "\n".join(data)))
                    name, data = "message", []
        except (http.client.HTTPException, OSError, ValueError):
            pass  # the worker died, or the page closed it
        finally:
            self.ended.set()

    def showed(self, text: str) -> bool:
        return any(name == "metrics" and text in data for name, data in self.events)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.sock.shutdown(socket.SHUT_RDWR)


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


ON_RECORD = "from audit import spans; print(spans.calls_on_record())"
OPEN_SPANS = (
    "from django.db.models import F; from audit.models import Span; "
    "print(Span.objects.filter(calls__gt=F('sealed_calls')).count())"
)


@dataclass
class Host:
    """One host's push side in production mode: the push relay and the push server (two
    workers; it serves the console's pages too, as `make demo` does), the agent signed in."""

    env: dict[str, str]
    fake: FakeConnvo
    push: Gunicorn
    relay: Relay
    cookies: str
    meeting: str
    database: str

    def on_record(self) -> int:
        return int(shell(ON_RECORD, self.env))

    def open_spans(self) -> int:
        return int(shell(OPEN_SPANS, self.env))

    def open_page(self) -> Stream:
        """A meeting page (a first look) and its stream, each on a new connection (a kept-alive
        one may be a stopped worker's)."""
        page = requests.get(self.meeting, headers={"Cookie": self.cookies}, timeout=10).text
        url = re.search(r'sse-connect="([^"]+)"', page).group(1)
        return Stream(self.push.url, url.replace("&amp;", "&"), self.cookies)


@pytest.fixture
def host(own_database, tmp_path, tmp_path_factory) -> Iterator[Host]:
    fake = FakeConnvo().start()
    env = production_env(
        DATABASE_URL=own_database,
        CACHE_KEY_PREFIX=f"push-relay-{secrets.token_hex(6)}",
        STATIC_ROOT=str(collect_static(tmp_path_factory)),
        CONNVO_DEPLOYMENTS=f"dev={fake.url}",
        CONNVO_LOOKUPS_PER_MINUTE="100000",
        CONNVO_PUSH_RELAY=str(tmp_path / "relay.sock"),
        GUNICORN_PUSH_WORKERS="2",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_SSL_REDIRECT="false",
    )
    set_up(env, password=PASSWORD, token=fake.token_for("agent"))
    relay_process = Relay(env, tmp_path)
    push = Gunicorn(env, tmp_path, "push", push=True)
    try:
        relay_process.wait_until_listening()
        push.wait_until_serving()
        wait_for(lambda: len(push.workers()) == 2, "the push server did not start two workers")
        session = signed_in(push, PASSWORD)
        session.close()
        yield Host(
            env=env,
            fake=fake,
            push=push,
            relay=relay_process,
            cookies="; ".join(f"{name}={value}" for name, value in session.cookies.items()),
            meeting=f"{push.url}/meetings/dev/{fake.meeting_id('standup')}/",
            database=own_database,
        )
    finally:
        for worker in push.workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGCONT)
        push.stop()
        relay_process.stop()
        fake.stop()


def pages_on(host: Host, worker: int, others: set[int], count: int) -> list[Stream]:
    """`count` pages whose streams `worker` serves (the other workers are stopped meanwhile)."""
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        return [host.open_page() for _ in range(count)]
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


def test_a_killed_push_worker_leaves_every_answer_connvo_sent_on_record(host):
    fake = host.fake
    one, other = sorted(host.push.workers())
    killed, kept = (
        pages_on(host, one, {other}, PAGES_EACH),
        pages_on(host, other, {one}, PAGES_EACH),
    )
    streams = killed + kept
    try:
        wait_for(
            lambda: all(s.showed('data-metric="participants"') for s in streams),
            "not every page was sent its first answer",
        )
        assert fake.answers_sent == len(streams)

        # One worker stops (frozen, as a worker stuck or swapped out is), Connvo sends a change
        # to every page, and the relay records all of them, the stopped worker's pages' too.
        os.kill(one, signal.SIGSTOP)
        fake.update_meeting("standup", participantCount=42)
        changed = '<dd data-metric="participants">42</dd>'
        wait_for(lambda: all(s.showed(changed) for s in kept), "the running worker's pages")
        wait_for(lambda: fake.answers_sent == 2 * len(streams), "Connvo's answers to every page")
        calls = fake.call_count + fake.answers_sent
        wait_for(lambda: host.on_record() == calls, "the answers were not on record")
        assert not any(s.showed(changed) for s in killed)

        # Then it is killed: its pages never see the change, which is on record all the same;
        # the relay, seeing their connections close, ends their subscriptions and seals their
        # spans at once (not after they go quiet).
        os.kill(one, signal.SIGKILL)
        wait_for(lambda: all(s.ended.is_set() for s in killed), "the killed worker's streams")
        assert not any(s.showed(changed) for s in killed)
        wait_for(lambda: host.open_spans() == len(kept), "the killed pages' spans")
        assert all(not s.ended.is_set() for s in kept)

        # The other worker's pages go on: another change reaches them, and is on record.
        fake.update_meeting("standup", participantCount=43)
        wait_for(lambda: all(s.showed(">43</dd>") for s in kept), "the second change")
        for stream in kept:
            stream.close()
        wait_for(lambda: host.open_spans() == 0, "the closed pages' spans")
        assert host.on_record() == fake.call_count + fake.answers_sent
        assert fake.answers_sent == 2 * len(streams) + len(kept)
        verified = manage("audit_verify", env=host.env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        for stream in streams:
            stream.close()


@contextlib.contextmanager
def writes_held(database: str) -> Iterator[None]:
    """Every write to the audit spans waits (a slow moment of the database) until the block
    ends: SQLite's write lock, or PostgreSQL's lock on the spans' table."""
    if database.startswith("sqlite"):
        import sqlite3

        holder = sqlite3.connect(database.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        holder = psycopg.connect(database)
        holder.execute("LOCK TABLE audit_span IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        holder.rollback() if not database.startswith("sqlite") else holder.execute("ROLLBACK")
        holder.close()


PAGES_AT_THE_KILL = 12


def test_answers_on_their_way_when_a_push_worker_dies_are_still_recorded(host):
    """The relay has Connvo's answers to a worker's pages and is still recording them (the
    database is slow just then) when the worker is killed: it records each of them, and only
    then ends the pages' subscriptions and seals their spans."""
    fake = host.fake
    one, other = sorted(host.push.workers())
    streams = pages_on(host, one, {other}, PAGES_AT_THE_KILL)
    try:
        wait_for(
            lambda: all(s.showed('data-metric="participants"') for s in streams),
            "not every page was sent its first answer",
        )
        first_answers = fake.answers_sent
        with writes_held(host.database):
            fake.update_meeting("standup", participantCount=42)
            wait_for(lambda: fake.answers_sent == 2 * first_answers, "Connvo's answers")
            os.kill(one, signal.SIGKILL)
            wait_for(lambda: all(s.ended.is_set() for s in streams), "the killed worker's streams")
            time.sleep(0.5)  # the relay has seen every connection close
        wait_for(lambda: host.open_spans() == 0, "the killed pages' spans were not sealed")
        assert host.on_record() == fake.call_count + fake.answers_sent
        assert not any(s.showed("42</dd>") for s in streams)
        verified = manage("audit_verify", env=host.env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        for stream in streams:
            stream.close()


def test_a_relay_stopped_with_answers_on_their_way_records_them_first(host):
    """The relay is stopped (SIGTERM: an upgrade's restart) while it is still recording a change
    Connvo sent to open pages (the database slow just then): it records each of them, seals the
    spans, and only then ends the streams, whose pages fall back to polling."""
    fake = host.fake
    streams = [host.open_page() for _ in range(PAGES_AT_THE_KILL)]
    try:
        wait_for(
            lambda: all(s.showed('data-metric="participants"') for s in streams),
            "not every page was sent its first answer",
        )
        first_answers = fake.answers_sent
        with writes_held(host.database):
            fake.update_meeting("standup", participantCount=42)
            wait_for(lambda: fake.answers_sent == 2 * first_answers, "Connvo's answers")
            host.relay.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the relay is stopping, its streams leaving
        host.relay.process.wait(timeout=30)
        assert "push relay stopped" in host.relay.log_path.read_text()
        wait_for(lambda: all(s.ended.is_set() for s in streams), "the streams did not end")
        assert all(
            [name for name, _ in s.events if name == "fallback"] == ["fallback"] for s in streams
        )
        assert host.open_spans() == 0
        assert host.on_record() == fake.call_count + fake.answers_sent
    finally:
        for stream in streams:
            stream.close()
