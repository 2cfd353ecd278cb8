"""Reading the push server's Server-Sent Events in tests (meetings/views/push.py): one block
parsed, a stream followed step by step. Shared by test_push_view.py (meeting pages) and
test_push_tables.py (tables and the watch list)."""

from __future__ import annotations

import asyncio
import contextlib

from django.test import AsyncClient

from tests.conftest import run_async

# Streams a test module keeps as the views open them (test_push_tables.py's `streams_kept`),
# closed by `follow` when the page goes away, as the push server closes them.
OPENED: list = []


async def close_streams() -> None:
    while OPENED:
        await OPENED.pop().aclose()


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


def follow(client: AsyncClient, url: str, *steps, until=None):
    """Open the stream; run each step (in a thread: it may change the fake), then read the next
    named event; after the last step, read until an event satisfies `until` (or the stream says
    fallback or end). Returns those events; then the page goes away (the stream is closed)."""

    async def run():
        response = await client.get(url)
        assert response.status_code == 200
        events, buffer = [], ""
        async with contextlib.aclosing(aiter(response)) as content:
            for number, step in enumerate(steps, start=1):
                # A step may name what it waits for: (action, predicate).
                step, wanted = step if isinstance(step, tuple) else (step, None)
                await asyncio.to_thread(step)
                if wanted is None:
                    wanted = until if until and number == len(steps) else lambda name, data: True
                while True:
                    while "\n\n" not in buffer:
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
