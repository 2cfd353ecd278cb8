"""What Convex's official Python client (`convex`) costs per instance in one process: threads,
memory and sockets of N ConvexClients each holding one getMeeting subscription, and how long a
change takes to reach all of them, against the fake deployment in another process.

    .venv/bin/python bench/convex_client_cost.py [N ...]     # default: 50 200

Also shows what a blocking wait does to the process's other threads: the client's `next()` holds
the GIL while it waits for the network. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from convex import ConvexClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live_load import process_status  # noqa: E402
from fakeconnvo.process import FakeProcess  # noqa: E402

GET_MEETING = "meetings/queries:getMeeting"


def process_figures() -> dict[str, float]:
    """This process's RSS (MB), threads and file descriptors (bench/live_load.py's figures)."""
    return process_status(os.getpid())


class Fake(FakeProcess):
    def __init__(self) -> None:
        super().__init__()
        self.meeting_id = self.control("GET", "world")["meetings"]["planning"]
        self.agent_token = self.token("agent")


async def next_all(subscriptions: list[Any]) -> list[Any]:
    return await asyncio.wait_for(
        asyncio.gather(*(subscription.__anext__() for subscription in subscriptions)), 120
    )


def measure(fake: Fake, count: int) -> None:
    fake.control("POST", "reset", {"calls": True, "world": True})
    gc.collect()
    before = process_figures()
    started = time.perf_counter()
    clients, subscriptions = [], []
    for _ in range(count):
        client = ConvexClient(fake.url)
        client.set_auth(fake.agent_token)
        subscriptions.append(client.subscribe(GET_MEETING, {"meetingId": fake.meeting_id}))
        clients.append(client)
    made = time.perf_counter()
    first = asyncio.run(next_all(subscriptions))
    answered = time.perf_counter()
    during = process_figures()

    changed_at = time.perf_counter()
    fake.control("POST", "meetings/planning", {"participantCount": 77})
    pushed = asyncio.run(next_all(subscriptions))
    arrived = time.perf_counter()
    sync = fake.control("GET", "sync")
    received = sum(1 for value in first + pushed if value is not None)

    del clients, subscriptions, first, pushed
    gc.collect()
    time.sleep(0.5)
    after = process_figures()

    def per(key: str) -> float:
        return (during[key] - before[key]) / count

    print(f"{count} clients, one subscription each:")
    print(
        f"  threads {before['threads']} -> {during['threads']} ({per('threads'):.2f} per client),"
        f" after dropping them {after['threads']}"
    )
    print(
        f"  RSS {before['rss_mb']:.1f} -> {during['rss_mb']:.1f} MiB "
        f"({per('rss_mb') * 1024:.0f} KiB per client), after dropping them "
        f"{after['rss_mb']:.1f} MiB"
    )
    print(f"  file descriptors {before['fds']} -> {during['fds']} ({per('fds'):.2f} per client)")
    print(
        f"  construct+auth+subscribe {made - started:.2f} s; first answers "
        f"{answered - made:.2f} s; a change reached all {count} in "
        f"{(arrived - changed_at) * 1000:.0f} ms"
    )
    print(
        f"  answers received {received}; the fake counted sent {sync['answersSent']}, "
        f"pushed {sync['answersPushed']} over {len(sync['connections'])} connections"
    )
    fake.control("POST", "sync/drop")


def blocking_wait_holds_the_gil(fake: Fake, seconds: int = 2) -> None:
    """A thread counting while the main thread blocks in the client's `next()`, which waits
    for a change that does not come; SIGALRM ends the wait (the client checks signals)."""
    client = ConvexClient(fake.url)
    client.set_auth(fake.agent_token)
    subscription = client.subscribe(GET_MEETING, {"meetingId": fake.meeting_id})
    next(subscription)  # the first answer; the next one waits
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    threading.Thread(target=tick, daemon=True).start()
    time.sleep(seconds)
    free = ticks
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    ticks = 0
    try:
        next(subscription)
    except Interrupted:
        pass
    finally:
        signal.signal(signal.SIGALRM, previous)
        stop.set()
    print(
        f"another thread ticked {free} times in {seconds} s while the main thread slept, "
        f"{ticks} times while it blocked {seconds} s in subscription.__next__()"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "counts", nargs="*", type=int, default=[50, 200], help="clients at a time (50 200)"
    )
    counts = parser.parse_args().counts
    fake = Fake()
    try:
        print(f"convex client against {fake.url} (fake in pid {fake.process.pid})")
        print(f"process at start: {process_figures()}")
        for count in counts:
            measure(fake, count)
        blocking_wait_holds_the_gil(fake)
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
