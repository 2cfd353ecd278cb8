"""connvo_admin/asgi.py's OpeningsAtOnce: a push worker lets only a few streams at a time through
the part of a request that holds a database connection of its own (the session and user read),
so that every page of a restarted push server reconnecting at once cannot exhaust PostgreSQL's
connections; once a stream's first bytes are out it no longer counts, so thousands stay open."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.urls import reverse

from connvo_admin.asgi import OpeningsAtOnce, application
from tests.conftest import run_async

WAIT = 10  # seconds the scenario may take before the test gives up (not a timing assertion)


class Streams:
    """An ASGI app whose requests each take a moment before their first bytes (as the session and
    user read do), then stay open until `release` is set, as streams do."""

    def __init__(self, fail_first: int = 0, *, sync_work: bool = False) -> None:
        self.sync_work = sync_work
        self.threads: set[int] = set()  # where its thread-sensitive work ran
        self.threads_at_first = 0  # threading.active_count() as the first request came
        self.threads_while_open = 0
        self.opening_on: dict[int, int] = {}  # stream → its thread, while it is opening
        self.openings_sharing_a_thread = 0
        self.opening = 0
        self.most_opening = 0
        self.open = 0
        self.fail_first = fail_first
        self.started = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.started += 1
        number = self.started
        if number == 1:
            self.threads_at_first = threading.active_count()
        self.opening += 1
        self.most_opening = max(self.most_opening, self.opening)
        try:
            await asyncio.sleep(0.005)
            if self.sync_work:
                thread = await self.thread_sensitive_work()
                self.openings_sharing_a_thread += thread in self.opening_on.values()
                self.opening_on[number] = thread
                # More of the opening (the session, the user), longer for some: openings end in
                # another order than they began.
                await asyncio.sleep(0.003 * (number * 7 % 5))
            if number <= self.fail_first:
                raise RuntimeError("the view failed before its first bytes")
        finally:
            self.opening -= 1
            self.opening_on.pop(number, None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        self.open += 1
        self.threads_while_open = max(self.threads_while_open, threading.active_count())
        await self.release.wait()
        if self.sync_work:
            await self.thread_sensitive_work()  # as Django's handler does at a request's end
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def thread_sensitive_work(self) -> int:
        """As Django's ASGI handler does for each request: thread-sensitive sync work (its signals,
        sync middleware) in a ThreadSensitiveContext of its own. Returns the thread it ran on."""
        async with ThreadSensitiveContext():
            thread = await sync_to_async(threading.get_ident)()
        self.threads.add(thread)
        return thread


def serve(app: Streams, gated: OpeningsAtOnce, paths: list[str]) -> Streams:
    """Every path requested at once; returns once all of them have their stream open."""

    async def scenario() -> None:
        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            return {}

        async def send(message: dict[str, Any]) -> None:
            await asyncio.sleep(0)

        async def request(path: str) -> None:
            scope = {"type": "http", "path": path, "method": "GET"}
            with contextlib.suppress(RuntimeError):
                await gated(scope, receive, send)

        async with asyncio.timeout(WAIT):
            tasks = [asyncio.create_task(request(path)) for path in paths]
            while app.open < len(paths) - app.fail_first:
                await asyncio.sleep(0.01)
            app.release.set()
            await asyncio.gather(*tasks)

    run_async(scenario())
    return app


def test_streams_open_a_few_at_a_time_and_then_all_stay_open():
    app = serve(app := Streams(), OpeningsAtOnce(app, limit=3, streams="/live/"), ["/live/x/"] * 40)
    assert app.most_opening == 3
    assert app.open == 40


def test_a_stream_that_fails_before_its_first_bytes_gives_its_turn_back():
    app = Streams(fail_first=5)
    serve(app, OpeningsAtOnce(app, limit=2, streams="/live/"), ["/live/x/"] * 12)
    assert app.most_opening == 2
    assert app.open == 7


def test_streams_share_a_few_threads_for_their_thread_sensitive_work():
    """Not a thread per open stream, idle for as long as the stream is open (Django's default):
    40 open streams, 3 threads."""
    app = Streams(sync_work=True)
    serve(app, OpeningsAtOnce(app, limit=3, streams="/live/"), ["/live/x/"] * 40)
    assert app.open == 40
    assert len(app.threads) == 3
    assert app.threads_while_open <= app.threads_at_first + 3
    # An opening stream has its thread to itself: no waiting behind another's session read.
    assert app.openings_sharing_a_thread == 0
    # Without the gate, each stream's own context starts a thread of its own.
    ungated = Streams(sync_work=True)
    serve(ungated, OpeningsAtOnce(ungated, limit=3, streams="/other/"), ["/live/x/"] * 40)
    assert len(ungated.threads) > 3


def test_other_requests_are_not_held_back():
    app = serve(app := Streams(), OpeningsAtOnce(app, limit=2, streams="/live/"), ["/t/"] * 10)
    assert app.most_opening == 10


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("meetings:push", {"deployment_name": "dev", "meeting_id": "m1"}),
        ("meetings:push_table", {"deployment_name": "dev"}),
        ("meetings:push_watching", {}),
    ],
)
def test_the_push_servers_streams_are_the_ones_held_back(name, kwargs, settings):
    assert isinstance(application, OpeningsAtOnce)
    assert reverse(name, kwargs=kwargs).startswith(application.streams)
    assert not reverse(
        "meetings:detail", kwargs={"deployment_name": "dev", "meeting_id": "m1"}
    ).startswith(application.streams)
    assert application.limit == settings.CONNVO_PUSH_DATABASE_THREADS
