"""Open meeting pages live by push beside the same pages polling (issue #24), in one run on
PostgreSQL + Redis: the servers' CPU, Connvo's calls, the push side's memory per subscription,
how soon a change reaches a page, and the answers on record against the answers Connvo sent,
across a `kill -9` of a push worker too.

    .venv/bin/python bench/push_load.py                 # 1,000 pages of 200 agents, 5-6 min
    .venv/bin/python bench/push_load.py --no-relay      # the same, the push workers recording
    .venv/bin/python bench/push_load.py --help          # pages, agents, seconds, changes...

Starts what bench/live_load.py starts (its `console_and_proxy()`: the fakes in a process of their
own, a PostgreSQL database and Redis keys of its own, the console under `gunicorn -c
gunicorn.conf.py` in production mode), and the push server beside it under `gunicorn -c
gunicorn-push.conf.py` (uvicorn's worker, the console's environment: docs/deploy.md 3b) with the
host's push relay (`manage.py push_relay`, meetings/relay.py), which holds the Connvo WebSockets
and records each pushed answer before a push worker draws it. The relay listens on a socket in the
run's temporary directory, named by CONNVO_PUSH_RELAY in the environment all three get.
--no-relay runs the push server without it (CONNVO_PUSH_RELAY=""), the push workers recording
each answer themselves as before the relay, so that the two can be compared. The push server's
and the relay's logs are kept in that directory, which the bench prints at the end. The pages talk
to each server directly, as nginx would route them (no nginx here). Then:

1. signs in --agents agents (the sign-in page, a few at a time) and opens --pages meeting pages by
   GET, as a browser does, reading each page's poller values and its stream's URL (`sse-connect`,
   the page's span key in it). Page k shows the fake's live meeting k mod 5 as agent
   (k div 5) mod --agents: with the default 200 agents no agent has two pages on one meeting, so
   each page's subscription is a query of its own at Connvo (see "shared queries" below);
2. polling: every page refreshed every --interval seconds for --seconds (open loop), as its poller
   does (bench/audit_volume.py's `refresh_pages`). The default interval is a real page's 10 s, so
   time is not compressed: 1,000 pages make 100 refreshes a second, as 1,000 real ones do. A
   shorter --interval compresses time by 10 / interval (more refreshes per page, same seconds);
3. push: every page opens its stream (`GET /live/...`, --open-batch at a time, each batch waiting
   for its pages' first pushed fragment) from one asyncio process; then --seconds with nothing
   changing. CPU, calls at the fake and the push side's RSS, threads and fds as in step 2 (the
   push workers' and the relay's: the relay does the recording, so its share is counted as push);
4. --changes changes at the fake (`POST /_fake/meetings/<label>`, a new participantCount), one
   meeting after another: for each, the time from sending the change to each of that meeting's
   pages receiving its `metrics` event;
5. `kill -9` of one push worker right after a change: its pages see their stream drop and do
   what the browser does (`hold`): one refresh at once and the poll timer until a stream brings
   a fragment again (static/js/console.js), a reconnection after the `retry:` the server gave
   (1-5 s), and htmx's back-off after a refused stream; the time until each has its new stream's
   first fragment; then each meeting changes once more. (With the relay, it is the relay that
   sees the worker's connections close: it ends their subscriptions and seals their spans.)
6. the Connvo answers on record (`audit.spans.calls_on_record()`) against what the fake received
   (getMeeting over HTTP + answers sent over its sync WebSockets), before and after the kill;
   PostgreSQL's connections at their peak in each phase (pg_stat_activity, sampled 10 times a
   second), and what the push server's and the relay's logs say of answers they could not
   record.

Most of the set-up is signing in the agents: each sign-in checks a PBKDF2 hash (~0.8 s of CPU).

Shared queries: in one push worker, one agent's pages on one meeting share one subscription (one
answer from Connvo) while each page's span counts that answer; pages = agents x 5 or fewer keep
every (agent, meeting) to one page, so that recorded == sent is an exact check. With fewer agents
the bench says how many pages share.

The machine's load (`uptime`) is printed at the start and the end. Prints figures only; nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.audit_volume import (  # noqa: E402
    Page,
    git_revision,
    gunicorn_entrance,
    htmx_headers,
    open_page,
    refresh,
    refresh_pages,
)
from bench.live_load import (  # noqa: E402
    Client,
    Server,
    calls_recorded,
    console_and_proxy,
    percentile,
    process_cpu_seconds,
    process_status,
    sign_in,
)
from tests.production import Relay  # noqa: E402

# The fake's meetings that the agent sees and that are still live (a page of each polls).
LIVE_MEETINGS = ("standup", "onboarding", "planning", "minimal", "all-hands")
REAL_INTERVAL = 10  # CONNVO_POLL_INTERVAL's default


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000, help="open meeting pages (1000)")
    parser.add_argument(
        "--agents", type=int, default=200, help="agents the pages belong to (200: see docstring)"
    )
    parser.add_argument(
        "--seconds", type=float, default=30, help="the polling run and the quiet push run (30)"
    )
    parser.add_argument(
        "--interval", type=float, default=REAL_INTERVAL, help="seconds between a page's polls (10)"
    )
    parser.add_argument("--changes", type=int, default=10, help="changes at the fake (10)")
    parser.add_argument("--open-batch", type=int, default=25, help="streams opened at a time (25)")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 step")
    parser.add_argument(
        "--no-relay",
        action="store_true",
        help='no push relay: CONNVO_PUSH_RELAY="", the push workers record each answer',
    )
    parser.add_argument("--workers", default="2", help="the console's GUNICORN_WORKERS (2)")
    parser.add_argument("--threads", default="", help="GUNICORN_THREADS (the conf's)")
    parser.add_argument("--push-workers", default="2", help="GUNICORN_PUSH_WORKERS (2)")
    parser.add_argument("--db-prefix", default="bench_push", help="database name prefix")
    return parser.parse_args()


# --- what the processes use --------------------------------------------------------------------


@dataclass
class Usage:
    """CPU seconds of the console's and the push server's workers, of the push relay (0 without
    one) and of the fakes' process, getMeeting calls over HTTP and answers sent over sync
    WebSockets at the fake."""

    console_cpu: float
    push_cpu: float
    relay_cpu: float
    fake_cpu: float
    bench_cpu: float
    http_calls: int
    answers_sent: int
    at: float

    def minus(self, before: Usage) -> Usage:
        return Usage(
            *(getattr(self, name) - getattr(before, name) for name in Usage.__dataclass_fields__)
        )

    @property
    def push_side_cpu(self) -> float:
        """The push workers' and the relay's CPU together: with a relay, the recording is its."""
        return self.push_cpu + self.relay_cpu


@dataclass
class PushSide:
    """The push server and, unless --no-relay, the host's push relay beside it."""

    server: Server
    relay: Relay | None

    @property
    def port(self) -> int:
        return self.server.port

    def worker_pids(self) -> list[int]:
        return self.server.worker_pids()

    def relay_cpu_seconds(self) -> float:
        return process_cpu_seconds(self.relay.process.pid) if self.relay else 0.0

    def processes(self) -> list[dict]:
        """Each push worker's RSS (MB), threads and open file descriptors, then the relay's
        (marked `relay`)."""
        found = workers(self.server)
        if self.relay is not None:
            pid = self.relay.process.pid
            found.append({"pid": pid, "relay": True, **process_status(pid)})
        return found

    def logs(self) -> str:
        relay = self.relay.log_path.read_text() if self.relay else ""
        return self.server.log_path.read_text() + relay


class Fake:
    """The `fast` fake's control endpoints (/_fake/), over HTTP like any other client."""

    def __init__(self, fake, url: str) -> None:
        self.fake = fake  # live_load's Fake: the process, and its getMeeting count
        self.url = url
        self.http = requests.Session()

    def control(self, method: str, route: str, body: dict | None = None) -> dict:
        response = self.http.request(method, f"{self.url}/_fake/{route}", json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def change(self, label: str, participants: int) -> None:
        self.control("POST", f"meetings/{label}", {"participantCount": participants})


def usage(console: Server, push: PushSide, fake: Fake) -> Usage:
    sync = fake.control("GET", "sync")
    return Usage(
        console_cpu=console.cpu_seconds(),
        push_cpu=push.server.cpu_seconds(),
        relay_cpu=push.relay_cpu_seconds(),
        fake_cpu=process_cpu_seconds(fake.fake.process.pid),
        bench_cpu=time.process_time(),
        http_calls=fake.fake.call_count(),
        answers_sent=sync["answersSent"],
        at=time.monotonic(),
    )


def workers(server: Server) -> list[dict]:
    """Each worker's RSS (MB), threads and open file descriptors."""
    found = []
    for pid in server.worker_pids():
        found.append({"pid": pid, **process_status(pid)})
    return found


class Connections:
    """Samples PostgreSQL's connections (pg_stat_activity) ten times a second: the bench
    database's and the server's, each phase's peak (`phase` names the one running)."""

    def __init__(self, database_url: str) -> None:
        import psycopg

        self.name = database_url.rsplit("/", 1)[1]
        self.db = psycopg.connect(database_url, autocommit=True)
        self.phase = "setup"
        self.peaks: dict[str, tuple[int, int]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        query = "SELECT count(*) FILTER (WHERE datname = %s), count(*) FROM pg_stat_activity"
        while not self.stop.wait(0.1):
            mine, everyone = self.db.execute(query, (self.name,)).fetchone()
            peak = self.peaks.get(self.phase, (0, 0))
            self.peaks[self.phase] = (max(peak[0], mine), max(peak[1], everyone))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.db.close()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: S607


# --- a page's stream, as EventSource reads it ---------------------------------------------------


class StreamEnded(Exception):
    """The stream ended or dropped (or was refused): the page falls back and reconnects."""


@dataclass(eq=False)
class Stream:
    """One open page's Server-Sent Events stream, across its reconnections."""

    page: Page
    meeting: str
    events: list[tuple[float, int, str, str]] = field(default_factory=list)  # at, conn, name, data
    connection: int = 0  # how many times it connected
    retry_ms: int = 3000
    heartbeats: int = 0
    is_open: bool = False
    refused: Counter = field(default_factory=Counter)  # HTTP statuses other than 200
    ends: Counter = field(default_factory=Counter)  # how each connection ended
    fallbacks: list[tuple[object, float]] = field(default_factory=list)  # (status, seconds)
    polls: Counter = field(default_factory=Counter)  # the poll timer's refreshes, by status
    dropped_at: float | None = None  # when it last fell from push to polling
    pushed: bool = False  # the page shows a pushed fragment (its poll timer is off)
    poller: asyncio.Task | None = None

    def metrics_after(self, moment: float, *, connection: int | None = None) -> float | None:
        """When the first fragment after `moment` arrived (on that connection), or None."""
        for at, conn, name, _ in self.events:
            if name == "metrics" and at > moment and connection in (None, conn):
                return at
        return None


def _read_events(stream: Stream, block: bytes) -> None:
    name, data = "", []
    for line in block.decode().split("\n"):
        if line.startswith(":"):
            stream.heartbeats += 1
        elif line.startswith("retry:"):
            stream.retry_ms = int(line[6:].strip())
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if name:
        stream.events.append((time.perf_counter(), stream.connection, name, "\n".join(data)))
        if name == "metrics":
            stream.pushed = True


async def read_stream(stream: Stream, port: int) -> None:
    """One connection of the stream, until it ends; raises StreamEnded however it ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    cookie = "; ".join(f"{k}={v}" for k, v in stream.page.cookies.items())
    writer.write(
        (
            f"GET {stream.page.push} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "X-Forwarded-Proto: https\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
            # What a browser's EventSource sends for the console's own page.
            f"Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    stream.connection += 1
    try:
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 200:
            stream.refused[status] += 1
            raise StreamEnded(f"HTTP {status}")
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        stream.is_open = True
        buffer = b""
        while True:
            if chunked:
                size_line = await reader.readline()
                if not size_line:
                    raise StreamEnded("dropped")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    raise StreamEnded("ended")
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    raise StreamEnded("ended")
            buffer += data
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                _read_events(stream, block)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
        raise StreamEnded("dropped") from error
    finally:
        stream.is_open = False
        writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await writer.wait_closed()


def fallback_refresh(stream: Stream, port: int) -> object:
    """What static/js/console.js does when its stream fails: one refresh at once, without `seen`
    (the answer is the whole polling fragment)."""
    values = {key: value for key, value in stream.page.vals.items() if key != "seen"}
    values["failures"] = 0
    client = Client(port, cookies=dict(stream.page.cookies))
    try:
        status, _, _ = client.request(
            "GET", f"{stream.page.path}?{urlencode(values)}", headers=htmx_headers(stream.page.path)
        )
    except OSError:
        status = "error"
    return status


async def hold(stream: Stream, push_port: int, console_port: int, interval: float) -> None:
    """The page holds its stream as the browser and static/js/console.js do, until the meeting
    ends: when a stream that brought fragments fails, one refresh at once, then the page polls
    every `interval` until a stream brings a fragment again. The browser's EventSource reconnects
    after the server's `retry:`; a refused stream (not 200) closes it, and htmx's SSE extension
    tries again after 0.5, 1, 2, 4 ... 64 s, starting over once one opens."""
    refusals = 0
    while True:
        try:
            await read_stream(stream, push_port)
        except StreamEnded as ended:
            stream.ends[str(ended)] += 1
            refusals = refusals + 1 if str(ended).startswith("HTTP") else 0
        if stream.events and stream.events[-1][2] == "end":
            return
        if stream.pushed:
            stream.pushed = False
            stream.dropped_at = started = time.perf_counter()
            status = await asyncio.to_thread(fallback_refresh, stream, console_port)
            stream.fallbacks.append((status, time.perf_counter() - started))
            stream.poller = asyncio.create_task(poll_until_pushed(stream, console_port, interval))
        delay = min(2 ** (refusals - 1), 128) * 0.5 if refusals else stream.retry_ms / 1000
        await asyncio.sleep(delay)


async def poll_until_pushed(stream: Stream, port: int, interval: float) -> None:
    """The fallback fragment's poll timer, until the stream brings a fragment again."""
    client = Client(port)
    while True:
        await asyncio.sleep(interval)
        if stream.pushed:
            return
        try:
            status, *_ = await asyncio.to_thread(refresh, client, stream.page)
        except OSError:
            status = "error"
        stream.polls[status] += 1


async def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    # The push server's and the relay's logs, and the relay's socket; kept after the run.
    scratch = Path(tempfile.mkdtemp(prefix="push_load_"))
    relay_path = "" if args.no_relay else str(scratch / "relay.sock")
    if len(relay_path.encode()) > 107:
        raise SystemExit(f"the relay's socket path is too long for a Unix socket: {relay_path}")
    settings = {
        "CONNVO_PUSH": "true",
        "GUNICORN_PUSH_WORKERS": args.push_workers,
        "CONNVO_PUSH_RELAY": relay_path,
    }
    with console_and_proxy(args, name="push_load", settings=settings) as (fake, facts, console, _):
        relay = Relay(console.env, scratch) if relay_path else None
        server = None
        try:
            if relay is not None:
                try:
                    relay.wait_until_listening()
                except AssertionError as error:
                    raise SystemExit(str(error)) from None
            server = Server(console.env, scratch, "push", None, push=True)
            server.wait()
            run(args, Fake(fake, facts["fast"]), console, PushSide(server, relay))
        finally:
            # The push workers first, as on a host that shuts down: the relay sees their streams
            # end before it is stopped itself.
            if server is not None:
                server.stop()
            if relay is not None:
                relay.stop()
            logs = (
                "the push server's log" if relay is None else "the push server's and relay's logs"
            )
            print(f"# {logs}: {scratch}")


def run(args, fake: Fake, console: Server, push: PushSide) -> None:
    from django.db import connection

    started = time.monotonic()
    print(
        f"# push_load at {git_revision()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"PostgreSQL + Redis, console {args.workers} workers x {args.threads or 'conf'} threads, "
        f"push server {args.push_workers} uvicorn workers, "
        + (
            "no push relay (--no-relay: the push workers record each answer)"
            if push.relay is None
            else f"push relay on {push.relay.path}"
        )
        + f", {os.cpu_count()} CPUs\n"
        f"# uptime at start: {uptime()}"
    )
    with ThreadPoolExecutor(4) as pool:
        agents = list(pool.map(lambda i: sign_in(console.port, f"agent{i}"), range(args.agents)))
    world = fake.control("GET", "world")["meetings"]
    meetings = [LIVE_MEETINGS[k % len(LIVE_MEETINGS)] for k in range(args.pages)]

    def open_one(k: int) -> Page:
        agent = agents[(k // len(LIVE_MEETINGS)) % len(agents)]
        return open_page(
            Client(console.port, agent.cookies), f"/meetings/fast/{world[meetings[k]]}/"
        )

    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(open_one, range(args.pages)))
    pairs = Counter(
        ((k // len(LIVE_MEETINGS)) % len(agents), meetings[k]) for k in range(args.pages)
    )
    shared = sum(n for n in pairs.values() if n > 1)
    without_push = sum(1 for page in pages if not page.push)
    print(
        f"signed in {len(agents)} agents, opened {len(pages)} pages on {len(LIVE_MEETINGS)} "
        f"meetings in {time.monotonic() - started:.0f} s; pages sharing an (agent, meeting) "
        f"with another page: {shared}; pages without a push stream: {without_push}"
    )
    if without_push:
        raise SystemExit("the meeting pages have no push stream: is CONNVO_PUSH on?")

    # 2. Polling.
    scale = REAL_INTERVAL / args.interval
    connections = Connections(console.env["DATABASE_URL"])
    connections.phase = "polling"
    before = usage(console, push, fake)
    polled = refresh_pages(gunicorn_entrance(console), pages, args.interval, args.seconds)
    time.sleep(1)  # the last refreshes' answers
    polling = usage(console, push, fake).minus(before)
    polling_rss = workers(console)
    polling_rss_push = push.processes()

    # 3-6. Push.
    connections.phase = "between"
    try:
        pushed = asyncio.run(push_run(args, pages, meetings, fake, console, push, connections))
    finally:
        connections.close()
    recorded_after, counted_how = calls_recorded()
    connection.close()
    log = push.logs()
    pushed["log"] = {
        "answers not recorded (database error)": log.count("could not be counted"),
        "streams answered 503": log.count('/ 503"'),
        "PostgreSQL: too many clients": log.count("too many clients"),
    }
    if push.relay is not None:
        pushed["log"]["streams failed in the relay"] = log.count("failed in the push relay")
    pushed["relay"] = push.relay is not None
    pushed["connections"] = connections.peaks

    report(
        args,
        scale=scale,
        polled=polled,
        polling=polling,
        polling_rss=(polling_rss, polling_rss_push),
        pushed=pushed,
        recorded=(recorded_after, counted_how),
    )
    print(f"\n(run took {time.monotonic() - started:.0f} s after start-up)")
    print(f"# uptime at end: {uptime()}")


async def push_run(
    args, pages, meetings, fake: Fake, console: Server, push: PushSide, connections: Connections
) -> dict:
    out: dict = {}
    streams = [Stream(page, meeting) for page, meeting in zip(pages, meetings, strict=True)]
    tasks: list[asyncio.Task] = []
    out["idle_workers"] = push.processes()
    base = await asyncio.to_thread(usage, console, push, fake)
    recorded_base, _ = await asyncio.to_thread(calls_recorded)
    out["base"], out["recorded_base"] = base, recorded_base

    # 3. Open the streams, a batch at a time, each batch until its pages have a first fragment.
    connections.phase = "opening streams"
    opened_at: list[float] = []
    idle_fds = {w["pid"]: w.get("fds", 0) for w in out["idle_workers"]}
    for start in range(0, len(streams), args.open_batch):
        batch = streams[start : start + args.open_batch]
        began = time.perf_counter()
        for stream in batch:
            tasks.append(asyncio.create_task(hold(stream, push.port, console.port, args.interval)))
        await wait_for(lambda b=batch: all(s.events or s.ends for s in b), 60)
        for stream in batch:
            first = stream.metrics_after(began)
            if first is not None:
                opened_at.append(first - began)
        if "warm_workers" not in out:
            # The baseline for memory per subscription: once every worker serves streams (its
            # first one imports and connects what a stream needs, once).
            now = push.processes()
            serving = [w for w in now if not w.get("relay")]
            if all(w.get("fds", 0) > idle_fds.get(w["pid"], 0) + 1 for w in serving):
                out["warm_workers"], out["warm_streams"] = now, start + len(batch)
    out["opened"] = sum(1 for s in streams if s.is_open)
    out["open_times"] = opened_at
    out["open_usage"] = (await asyncio.to_thread(usage, console, push, fake)).minus(base)
    out["subscribed_workers"] = push.processes()
    sync = await asyncio.to_thread(fake.control, "GET", "sync")
    live = [c for c in sync["connections"] if c["open"]]
    out["sync_connections"] = (len(live), sum(len(c["subscriptions"]) for c in live))

    # Quiet: nothing changes.
    connections.phase = "push, quiet"
    quiet_from = await asyncio.to_thread(usage, console, push, fake)
    await asyncio.sleep(args.seconds)
    quiet_to = await asyncio.to_thread(usage, console, push, fake)
    out["quiet"] = quiet_to.minus(quiet_from)
    out["quiet_workers"] = push.processes()
    out["heartbeats"] = sum(s.heartbeats for s in streams)

    # 4. Changes, one meeting after another.
    connections.phase = "changes"
    participants = iter(range(100, 1_000_000))
    latencies: list[float] = []
    missed = 0
    change_from = quiet_to

    async def change(label: str) -> tuple[list[float], int]:
        mine = [s for s in streams if s.meeting == label]
        sent = time.perf_counter()
        await asyncio.to_thread(fake.change, label, next(participants))
        await wait_for(lambda: all(s.metrics_after(sent) for s in mine), 15)
        got = [s.metrics_after(sent) for s in mine]
        return [at - sent for at in got if at is not None], sum(1 for at in got if at is None)

    for k in range(args.changes):
        times, lost = await change(LIVE_MEETINGS[k % len(LIVE_MEETINGS)])
        latencies += times
        missed += lost
        await asyncio.sleep(0.3)
    out["latencies"], out["missed"] = latencies, missed
    await asyncio.sleep(1)
    changed_to = await asyncio.to_thread(usage, console, push, fake)
    out["changes_usage"] = changed_to.minus(change_from)
    out["fragments"] = [d for s in streams for _, _, name, d in s.events if name == "metrics"]
    recorded_mid, _ = await asyncio.to_thread(calls_recorded)
    out["recorded_mid"], out["mid"] = recorded_mid, changed_to

    # 5. kill -9 of a push worker right after a change.
    if not args.no_kill:
        connections.phase = "kill -9 and recovery"
        victim = push.worker_pids()[0]
        label = LIVE_MEETINGS[args.changes % len(LIVE_MEETINGS)]
        connections_at = {id(s): s.connection for s in streams}
        sent = time.perf_counter()
        await asyncio.to_thread(fake.change, label, next(participants))
        os.kill(victim, signal.SIGKILL)
        killed = time.perf_counter()
        await asyncio.sleep(1)
        dropped = [s for s in streams if s.dropped_at and s.dropped_at > killed - 0.5]
        # Back when each has its new stream's first fragment.
        await wait_for(
            lambda: all(
                any(c > connections_at[id(s)] and n == "metrics" for _, c, n, _ in s.events)
                for s in dropped
            ),
            60,
        )
        back = []
        for s in dropped:
            again = next(
                (at for at, c, n, _ in s.events if c > connections_at[id(s)] and n == "metrics"),
                None,
            )
            if again is not None:
                back.append(again - s.dropped_at)
        out["kill"] = {
            "victim": victim,
            "dropped": len(dropped),
            "dropped_on_the_change": sum(1 for s in dropped if s.meeting == label),
            "missed_the_change": sum(
                1
                for s in dropped
                if s.meeting == label
                and s.metrics_after(sent, connection=connections_at[id(s)]) is None
            ),
            "resumed": len(back),
            "back": back,
            "fallbacks": Counter(status for s in dropped for status, _ in s.fallbacks),
            "said_fallback": sum(
                1
                for s in dropped
                for _, c, n, _ in s.events
                if n == "fallback" and c > connections_at[id(s)]
            ),
            "fallback_times": [t for s in dropped for _, t in s.fallbacks],
            "ends": sum((s.ends for s in dropped), Counter()),
            "workers_after": push.processes(),
            "open_after": sum(1 for s in streams if s.is_open),
        }
        await asyncio.sleep(1)
        connections.phase = "changes after the kill"
        after: list[float] = []
        lost_after = 0
        for label in LIVE_MEETINGS:
            times, lost = await change(label)
            after += times
            lost_after += lost
            await asyncio.sleep(0.3)
        out["kill"]["latencies"], out["kill"]["missed"] = after, lost_after
        await asyncio.sleep(2)
    out["end"] = await asyncio.to_thread(usage, console, push, fake)
    out["refused"] = sum((s.refused for s in streams), Counter())
    out["polls"] = sum((s.polls for s in streams), Counter())
    out["streams"] = streams

    tasks += [s.poller for s in streams if s.poller is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


# --- the figures -------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |")


def mb(found: list[dict], key: str = "rss_mb") -> float:
    return sum(w.get(key, 0) for w in found)


def describe_workers(found: list[dict]) -> str:
    return ", ".join(
        ("relay " if w.get("relay") else "")
        + f"{w.get('rss_mb', 0):.0f} MB / {w.get('threads', 0)} threads / {w.get('fds', 0)} fds"
        for w in found
    )


def relay_mb(found: list[dict]) -> float:
    return sum(w.get("rss_mb", 0) for w in found if w.get("relay"))


def report(args, *, scale, polled, polling: Usage, polling_rss, pushed: dict, recorded) -> None:
    pages, seconds = args.pages, args.seconds
    quiet: Usage = pushed["quiet"]
    relay = pushed["relay"]
    # What the push side is: with a relay, its CPU and memory are counted with the workers'.
    push_side = "push workers + relay" if relay else "push workers"
    answered = sum(n for status, n in polled.statuses.items() if status in (200, 204))
    compressed = (
        "real time (a page's own 10 s)"
        if scale == 1
        else f"time compressed {scale:g}x (every {args.interval:g} s instead of 10)"
    )
    print(
        f"\n## Polling: {pages} pages, each every {args.interval:g} s, {compressed}, {seconds:g} s"
    )
    print(
        f"{len(polled.latencies):,} refreshes ({answered / seconds:,.1f}/s answered), statuses "
        f"{dict(polled.statuses)}; from sending p50 {ms(percentile(polled.from_send, 0.5))}, "
        f"p99 {ms(percentile(polled.from_send, 0.99))}; the bench sent late by p99 "
        f"{ms(percentile(polled.send_lags, 0.99))}"
    )
    console_rss, push_rss = polling_rss
    print(f"console workers: {describe_workers(console_rss)}")

    print(f"\n## Push: {pages} streams held by one asyncio process")
    times = pushed["open_times"]
    print(
        f"opened {pushed['opened']} of {pages} (batches of {args.open_batch}); first fragment "
        f"p50 {ms(percentile(times, 0.5))}, p99 {ms(percentile(times, 0.99))} after its batch "
        f"started; refused: {dict(pushed['refused']) or 'none'}; at the fake: "
        f"{pushed['sync_connections'][0]} sync WebSockets open, "
        f"{pushed['sync_connections'][1]} subscriptions"
    )
    o: Usage = pushed["open_usage"]
    print(
        f"opening them cost: console {o.console_cpu:.1f} CPU s, push server {o.push_cpu:.1f} CPU s"
        + (f" + relay {o.relay_cpu:.1f} CPU s" if relay else "")
        + f" ({o.push_side_cpu / max(pages, 1) * 1000:.1f} ms a page), {o.answers_sent} first "
        f"answers sent over the WebSockets, {o.http_calls} getMeeting calls"
    )
    idle, first, full = (
        pushed["idle_workers"],
        pushed.get("warm_workers", pushed["idle_workers"]),
        pushed["subscribed_workers"],
    )
    opened = pushed["opened"]
    warm = pushed.get("warm_streams", 0)
    per_1000 = (mb(full) - mb(first)) / max(opened - warm, 1) * 1000
    relay_per_1000 = (relay_mb(full) - relay_mb(first)) / max(opened - warm, 1) * 1000
    print(
        f"{push_side} idle: {describe_workers(idle)}\n"
        f"  after the first {warm} streams (every worker serving): {describe_workers(first)}\n"
        f"  with {opened} streams: {describe_workers(full)}\n"
        f"  after {seconds:g} s quiet: {describe_workers(pushed['quiet_workers'])}\n"
        f"  RSS per 1,000 subscriptions (all workers{' and the relay' if relay else ''}, from "
        f"{warm} streams to {opened}): {per_1000:,.0f} MB"
        + (f" (the relay's share {relay_per_1000:,.0f} MB)" if relay else "")
        + f"; from idle: {(mb(full) - mb(idle)) / max(opened, 1) * 1000:,.0f} MB"
    )

    print("\n## Side by side\n")
    row("", f"polling ({seconds:g} s)", f"push, quiet ({seconds:g} s)", "ratio")
    row("---", "---:", "---:", "---:")
    poll_cpu = polling.console_cpu + polling.push_side_cpu
    push_cpu = quiet.console_cpu + quiet.push_side_cpu
    row(
        "console CPU s (gthread workers)",
        f"{polling.console_cpu:.2f}",
        f"{quiet.console_cpu:.2f}",
        "",
    )
    row(
        "push server CPU s (uvicorn workers)",
        f"{polling.push_cpu:.2f}",
        f"{quiet.push_cpu:.2f}",
        "",
    )
    if relay:
        row(
            "push relay CPU s (holds the WebSockets, records the answers)",
            f"{polling.relay_cpu:.2f}",
            f"{quiet.relay_cpu:.2f}",
            "",
        )
    row(
        "**console + push server + relay CPU s**" if relay else "**console + push server CPU s**",
        f"**{poll_cpu:.2f}** ({poll_cpu / seconds * 100:.0f} % of a core)",
        f"**{push_cpu:.2f}** ({push_cpu / seconds * 100:.1f} % of a core)",
        f"**{poll_cpu / push_cpu:,.0f} x**" if push_cpu > 0 else "∞",
    )
    row(
        "**Connvo: getMeeting calls/s at the fake**",
        f"**{polling.http_calls / seconds:.1f}**",
        f"**{quiet.http_calls / seconds:.2f}**",
        "",
    )
    row(
        "answers sent over sync WebSockets",
        f"{polling.answers_sent}",
        f"{quiet.answers_sent}",
        "",
    )
    row("the fake's CPU s", f"{polling.fake_cpu:.2f}", f"{quiet.fake_cpu:.2f}", "")
    row("the bench's own CPU s", f"{polling.bench_cpu:.2f}", f"{quiet.bench_cpu:.2f}", "")
    of_relay = (lambda found: f" (relay {relay_mb(found):.0f})") if relay else (lambda _: "")
    row(
        "worker RSS, MB (sum)" + (", the relay counted as push" if relay else ""),
        f"console {mb(console_rss):.0f}, push {mb(push_rss):.0f}{of_relay(push_rss)}",
        f"console {mb(console_rss):.0f} (as left), push {mb(pushed['quiet_workers']):.0f}"
        f"{of_relay(pushed['quiet_workers'])}",
        "",
    )
    print(
        f"\nheartbeat comments received while quiet: {pushed['heartbeats']:,}; pushed fragments "
        f"that would poll (hx-get on #live-poller): "
        f"{sum(1 for d in pushed['fragments'] if 'hx-get=' in d)} of {len(pushed['fragments'])}"
    )

    lat = pushed["latencies"]
    c: Usage = pushed["changes_usage"]
    print(f"\n## {args.changes} changes at the fake, one meeting at a time")
    print(
        f"change → the page's `metrics` event, {len(lat):,} page deliveries: "
        f"p50 {ms(percentile(lat, 0.5))}, **p99 {ms(percentile(lat, 0.99))}**, "
        f"max {ms(max(lat, default=float('nan')))}; pages that got nothing within 15 s: "
        f"{pushed['missed']}"
    )
    print(
        f"their cost: push server {c.push_cpu:.2f}"
        + (f" + relay {c.relay_cpu:.2f}" if relay else "")
        + f" CPU s for {c.answers_sent} answers "
        f"({c.push_side_cpu / max(c.answers_sent, 1) * 1000:.1f} ms an answer: recorded, "
        f"rendered, sent), console {c.console_cpu:.2f} CPU s, {c.http_calls} getMeeting calls"
    )

    after, how = recorded
    base: Usage = pushed["base"]
    mid: Usage = pushed["mid"]
    end: Usage = pushed["end"]
    rec_mid = pushed["recorded_mid"] - pushed["recorded_base"]
    sent_mid = (mid.http_calls - base.http_calls) + (mid.answers_sent - base.answers_sent)
    print(f"\n## On record ({how}) against what Connvo sent, from the push run's start")
    row("", "Connvo sent (HTTP calls + sync answers)", "on record", "")
    row("---", "---:", "---:", "---")
    row(
        "open, quiet, changes",
        f"{sent_mid:,} ({mid.http_calls - base.http_calls} + "
        f"{mid.answers_sent - base.answers_sent})",
        f"{rec_mid:,}",
        "**equal**" if rec_mid == sent_mid else f"**NOT EQUAL** ({rec_mid - sent_mid:+})",
    )
    rec_all = after - pushed["recorded_base"]
    sent_all = (end.http_calls - base.http_calls) + (end.answers_sent - base.answers_sent)
    row(
        "… and the kill, recovery, changes after" if "kill" in pushed else "… to the end",
        f"{sent_all:,} ({end.http_calls - base.http_calls} + "
        f"{end.answers_sent - base.answers_sent})",
        f"{rec_all:,}",
        "**equal**" if rec_all == sent_all else f"**NOT EQUAL** ({rec_all - sent_all:+})",
    )
    print(f"(everything since the database was made: {after:,} on record)")
    if "kill" in pushed and rec_all != sent_all:
        k = pushed["kill"]
        why = (
            "the relay records an answer before the worker has it, but the answers still waiting "
            "for the relay's database threads when it saw the worker's connection close were "
            "dropped with their subscriptions (docs/performance.md, 'a push relay')"
            if relay
            else "an answer the worker received but had not yet recorded when it was killed was "
            "never shown"
        )
        print(
            f"the difference after the kill, {sent_all - rec_all:+} sent but not on record, "
            f"against {k['missed_the_change']} pages on the killed worker that never showed the "
            f"change made just before it: {why}"
        )

    print("\npeak PostgreSQL connections (the bench's database / the whole server, shared):")
    for phase, (mine, everyone) in pushed["connections"].items():
        print(f"  {phase}: {mine} / {everyone}")
    logs = "push server's and relay's logs" if relay else "push server's log"
    print(f"{logs}: " + ", ".join(f"{k} {n}" for k, n in pushed["log"].items()))

    if "kill" in pushed:
        k = pushed["kill"]
        print(f"\n## kill -9 of push worker {k['victim']} right after a change")
        print(
            f"streams dropped: {k['dropped']} (how they ended: {dict(k['ends'])}); of them on the "
            f"changed meeting: {k['dropped_on_the_change']}, which never got that change on the "
            f"killed worker: {k['missed_the_change']}"
        )
        print(
            f"fallback refreshes: {dict(k['fallbacks'])}, "
            f"p50 {ms(percentile(k['fallback_times'], 0.5))}, "
            f"max {ms(max(k['fallback_times'], default=float('nan')))}"
        )
        print(
            f"back on push (new stream's first fragment): {k['resumed']} of {k['dropped']}, "
            f"p50 {ms(percentile(k['back'], 0.5))}, max {ms(max(k['back'], default=float('nan')))} "
            f"after the drop; streams open afterwards: {k['open_after']}"
        )
        print(
            f"`fallback` events the server sent on the new streams: {k['said_fallback']}; "
            f"refreshes of the pages' poll timers while not back on push: "
            f"{dict(pushed['polls']) or 'none'}"
        )
        print(f"{push_side} after: {describe_workers(k['workers_after'])}")
        lat = k["latencies"]
        print(
            f"a change on each meeting afterwards: p50 {ms(percentile(lat, 0.5))}, p99 "
            f"{ms(percentile(lat, 0.99))}, max {ms(max(lat, default=float('nan')))}; "
            f"missed: {k['missed']}"
        )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
