"""What the console's own sync client (meetings/sync.py) costs in one process: N agents each
watching one meeting (N WebSockets, one subscription each), against the fake Connvo in another
process. Memory, file descriptors, threads and CPU seconds: while all wait idle, and while a
change is pushed to all of them.

    .venv/bin/python bench/push_client_cost.py                 # 1,000 agents, 30 s idle
    .venv/bin/python bench/push_client_cost.py --agents 200 --idle 10

The fake pings every connection every 15 s, as Convex does. Prints figures; asserts nothing.
(bench/convex_client_cost.py measures the official `convex` client the same way.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live_load import process_cpu_seconds, process_status  # noqa: E402
from fakeconnvo.process import FakeProcess  # noqa: E402


def process_figures() -> dict[str, float]:
    """This process's RSS (MB), threads, file descriptors and CPU seconds."""
    return {**process_status(os.getpid()), "cpu_s": time.process_time()}


class Fake(FakeProcess):
    """The fake in a process of its own, with the meeting and the agent's token the bench uses."""

    def __init__(self) -> None:
        super().__init__(timeout=60, log=False)
        self.meeting_id = self.control("GET", "world")["meetings"]["planning"]
        self.agent_token = self.token("agent")

    def cpu_s(self) -> float:
        return process_cpu_seconds(self.process.pid)


def setup_django(fake: Fake) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "connvo_admin.settings",
            "DEBUG": "true",
            "DATABASE_URL": "sqlite:///:memory:",
            "CONNVO_DEPLOYMENTS": f"bench={fake.url}",
            "CONNVO_DEFAULT_DEPLOYMENT": "bench",
        }
    )
    import django

    django.setup()


async def run(fake: Fake, agents: int, idle: float, batch: int) -> None:
    from meetings import connvo, sync
    from meetings.deployments import get_deployment

    deployment = get_deployment("bench")

    async def token() -> str:
        return fake.agent_token

    received = [0] * agents
    stopped: list[str] = []
    progress = asyncio.Condition()

    async def page(index: int) -> None:
        try:
            async for result in sync.watch(
                deployment=deployment,
                token=token,
                meeting_id=fake.meeting_id,
                user_key=f"agent{index:04}",
            ):
                assert isinstance(result, connvo.Lookup), result
                received[index] += 1
                async with progress:
                    progress.notify_all()
        except sync.PushUnavailable as exc:
            stopped.append(exc.detail)
            async with progress:
                progress.notify_all()

    async def until(check: Any) -> None:
        async with progress:
            await asyncio.wait_for(progress.wait_for(check), 120)

    gc.collect()
    before = process_figures()
    started = time.perf_counter()
    tasks = []
    for first in range(0, agents, batch):
        for index in range(first, min(first + batch, agents)):
            tasks.append(asyncio.create_task(page(index)))
        opened = len(tasks)
        await until(lambda: sum(1 for r in received if r) + len(stopped) >= opened)  # noqa: B023
    subscribed = time.perf_counter()
    gc.collect()
    during = process_figures()
    fake_cpu = fake.cpu_s()

    await asyncio.sleep(idle)
    after_idle = process_figures()
    fake_cpu_idle = fake.cpu_s() - fake_cpu

    changed_at = time.perf_counter()
    cpu_before_change = time.process_time()
    await asyncio.to_thread(fake.control, "POST", "meetings/planning", {"participantCount": 77})
    await until(lambda: sum(1 for r in received if r >= 2) + len(stopped) >= agents)
    arrived = time.perf_counter()
    cpu_change = time.process_time() - cpu_before_change
    pushed = process_figures()
    counted = sync.figures()
    faked = fake.control("GET", "sync")

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.monotonic() + 30
    while sync.figures().connections_open and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    gc.collect()
    after = process_figures()
    left = sync.figures()

    def per(key: str, factor: float = 1) -> str:
        return f"{(during[key] - before[key]) / agents * factor:.2f}"

    print(f"{agents} agents, one WebSocket and one subscription each")
    print(
        f"  subscribed all in {subscribed - started:.2f} s (in batches of {batch}); "
        f"failed: {len(stopped)} {sorted(set(stopped))[:3]}"
    )
    print(
        f"  RSS {before['rss_mb']:.1f} -> {during['rss_mb']:.1f} MiB "
        f"({per('rss_mb', 1024)} KiB per subscription); after closing all "
        f"{after['rss_mb']:.1f} MiB, {after['fds']:.0f} fds, {left.connections_open} sockets "
        f"open, {len(left.connections)} connections kept"
    )
    print(f"  file descriptors {before['fds']} -> {during['fds']} ({per('fds')} per subscription)")
    print(f"  threads {before['threads']} -> {during['threads']}")
    print(
        f"  idle {idle:g} s: {after_idle['cpu_s'] - during['cpu_s']:.2f} CPU s in this process "
        f"({(after_idle['cpu_s'] - during['cpu_s']) / idle * 100:.1f} % of a core), RSS "
        f"{after_idle['rss_mb']:.1f} MiB; the fake {fake_cpu_idle:.2f} CPU s"
    )
    print(
        f"  a change pushed to all {agents}: every page had it {(arrived - changed_at) * 1000:.0f} "
        f"ms after the change was asked for; {cpu_change:.2f} CPU s here; RSS "
        f"{pushed['rss_mb']:.1f} MiB"
    )
    print(
        f"  answers received {counted.answers_received} over {counted.connections_opened} "
        f"connections; the fake sent {faked['answersSent']} (pushed {faked['answersPushed']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds to sit idle")
    # The fake's listening backlog is the standard library's 5: bigger bursts of connections
    # overflow it and wait for TCP's retransmission, past the connect timeout.
    parser.add_argument("--batch", type=int, default=5, help="subscriptions opened at a time")
    options = parser.parse_args()
    fake = Fake()
    try:
        print(f"meetings/sync.py against {fake.url} (fake in pid {fake.process.pid})")
        setup_django(fake)
        # What every figure below starts from: Django and the client imported, nothing open.
        from meetings import sync  # noqa: F401

        asyncio.run(run(fake, options.agents, options.idle, options.batch))
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
