"""Reading the push server's Server-Sent Events in tests (meetings/views/push.py): one block
parsed, a stream followed step by step. Shared by test_push_view.py (meeting pages),
test_push_tables.py (tables and the watch list) and test_push_relay.py; and a push relay in a
thread of this process (test_push_relay.py, the browser's push test)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from django.test import AsyncClient

from meetings import relay
from tests.conftest import run_async

# Streams a test module keeps as the views open them (test_push_tables.py's `streams_kept`),
# closed by `follow` when the page goes away, as the push server closes them.
OPENED: list = []


async def close_streams() -> None:
    while OPENED:
        await OPENED.pop().aclose()


class _TopLevel(HTMLParser):
    """The elements at the top of a fragment (those in a top-level <template> included: htmx
    swaps those out of band too), each as (tag, attributes)."""

    VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "source", "col", "area"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.in_template = False
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        if self.depth == 0 and tag == "template":
            self.in_template = True
            return
        if self.depth == 0:
            self.found.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.depth += 1

    def handle_endtag(self, tag):
        if self.depth == 0 and tag == "template":
            self.in_template = False
        elif tag not in self.VOID:
            self.depth -= 1


def not_out_of_band(fragment: str) -> list[str]:
    """The top-level elements of a pushed fragment that are not swapped out of band. The page's
    #live-stream takes the event with hx-swap="none": such an element would be dropped. A
    `<title>` is not swapped: htmx makes it the tab's title, whatever the swap (as
    tests/browser/test_live_push.py's pushed new title shows)."""
    parser = _TopLevel()
    parser.feed(fragment)
    return [
        f"<{tag} id={attrs.get('id')!r}>"
        for tag, attrs in parser.found
        if "hx-swap-oob" not in attrs and tag != "title"
    ]


def parse(block: str) -> tuple[str, str]:
    if block.startswith(":"):
        return ("comment", block[1:].strip())
    name, data = "message", []
    for line in block.split("\n"):
        field, _, value = line.partition(": ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "retry":
            name, data = "retry", [value]
    return name, "\n".join(data)


def follow(client: AsyncClient, url: str, *steps, until=None, within: float = 60):
    """Open the stream; run each step (in a thread: it may change the fake), then read the next
        named event; after the last step, read until an event satisfies `until` (or the stream says
        fallback or end). Returns those events; then the page goes away (the stream is closed). A
        step whose event has not come `within` seconds after it (heartbeats aside) fails the test
    instead of hanging it."""

    async def run():
        response = await client.get(url)
        assert response.status_code == 200
        events, buffer = [], ""
        async with contextlib.aclosing(aiter(response)) as content:
            for number, step in enumerate(steps, start=1):
                # A step may name what it waits for: (action, predicate).
                step, wanted = step if isinstance(step, tuple) else (step, None)
                await asyncio.to_thread(step)
                deadline = asyncio.get_running_loop().time() + within
                if wanted is None:
                    wanted = until if until and number == len(steps) else lambda name, data: True
                while True:
                    while "\n\n" not in buffer:
                        async with asyncio.timeout_at(deadline):
                            buffer += (await anext(content)).decode()
                    block, buffer = buffer.split("\n\n", 1)
                    name, data = parse(block)
                    if name in ("retry", "comment"):
                        continue
                    if wanted(name, data) or name in ("fallback", "end"):
                        events.append((name, data))
                        break
        await close_streams()
        return events

    return run_async(run())


@contextlib.contextmanager
def relay_in_a_thread(path: str) -> Iterator[None]:
    """The relay's server on `path`, on an event loop of its own (a relay process's, in one
    thread); stopped afterwards, as SIGTERM stops `manage.py push_relay`."""
    loop = asyncio.new_event_loop()
    ready, stopping = asyncio.Event(), asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(relay.serve(path, ready=ready, stopping=stopping),),
        name="push-relay",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not ready.is_set():
        assert thread.is_alive() and time.monotonic() < deadline, "the relay did not listen"
        time.sleep(0.01)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        loop.close()
    assert not Path(path).exists(), "the relay removes its socket when it stops"
