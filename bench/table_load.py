"""Time a triage table's live refresh next to a single meeting's, against the fake Connvo.

    .venv/bin/python bench/table_load.py                       # SQLite in a temporary file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/i13 .venv/bin/python bench/table_load.py

Seeds a fake deployment with --rows active meetings the agent takes part in, then times, through
Django's test client (session, permission, audit entries and rendering included):

- a single meeting page's live refresh, changed (rendered) and unchanged (204);
- the --rows table's live refresh, every row asked, changed and unchanged;
- the same table with one row's Connvo call slower than the read timeout;
- the table with CONNVO_TABLE_CONCURRENCY=1, to show what the pool is for.

The fake runs in a process of its own. "Near" runs answer at once; "far" runs make every Connvo
answer take --latency, as a Connvo across a network does. Prints p50/p95 and the Connvo calls each
request made. Prints figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live_load import poller_values
from tests.production import production_env

# Production mode (DEBUG off) with secrets of its own, as bench/live_load.py runs the console;
# anything set in the environment (DATABASE_URL, say) wins. The test client stands in for the
# TLS proxy (`secure=True`), and the cache is the process's own memory.
_scratch = tempfile.mkdtemp(prefix="table_load_")
for _name, _value in production_env(
    ALLOWED_HOSTS="testserver",
    LOG_LEVEL="WARNING",
    DATABASE_URL=f"sqlite:///{_scratch}/table_bench.sqlite3",
    STATIC_ROOT=_scratch,  # pages render without collectstatic (STORAGES below)
    CACHE_URL="locmemcache://",
).items():
    os.environ.setdefault(_name, _value)

import django  # noqa: E402
import requests  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import reverse  # noqa: E402

from fakeconnvo import FakeConnvo  # noqa: E402
from fakeconnvo import world as fake_world  # noqa: E402
from meetings import pasted_tokens  # noqa: E402

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TRIGGER": "live-poller"}


def serve_fake(rows: int, pipe) -> None:
    """The fake Connvo, in a process of its own so that its work does not compete with the
    console's for the GIL. Seeds `rows` copies of the stand-up (active, the agent joined); the
    fake has no API to create meetings, so they are built the way its world seeds its own."""
    fake = FakeConnvo().start()
    world = fake._world
    now_ms = int(time.time() * 1000)
    seed = next(s for s in fake_world._seeds(now_ms) if s.label == "standup")
    ids = []
    with fake._lock:
        for n in range(rows):
            record = world._build(
                dataclasses.replace(seed, label=f"bench-{n}", title=f"Incident room {n}"), now_ms
            )
            world.meetings[record.id] = record
            world.meeting_labels[record.label] = record.id
            ids.append(record.id)
    pipe.send((fake.url, ids, fake.token_for("agent")))
    pipe.recv()  # until the bench is done
    fake.stop()


class RemoteFake:
    """Drives the fake in the other process through its /_fake/ control endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def clear_calls(self) -> None:
        self.http.delete(f"{self.url}/_fake/calls").raise_for_status()

    @property
    def call_count(self) -> int:
        return self.http.get(f"{self.url}/_fake/calls").json()["callCount"]

    def misbehave(self, kind: str, **options) -> None:
        self.http.post(f"{self.url}/_fake/misbehave", json={"kind": kind, **options})

    def reset(self) -> None:
        self.http.post(f"{self.url}/_fake/reset", json={"calls": True})


def timed(request, runs: int, fake: RemoteFake, before=None) -> dict:
    times, calls, statuses = [], [], set()
    for _ in range(runs):
        if before:
            before()
        fake.clear_calls()
        started = time.perf_counter()
        response = request()
        times.append((time.perf_counter() - started) * 1000)
        calls.append(fake.call_count)
        statuses.add(response.status_code)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[max(0, round(len(times) * 0.95) - 1)],
        "calls": statistics.median(calls),
        "status": "/".join(str(s) for s in sorted(statuses)),
    }


def print_row(name: str, figures: dict) -> None:
    print(
        f"{name:<52} p50 {figures['p50']:8.1f} ms   p95 {figures['p95']:8.1f} ms   "
        f"Connvo calls {figures['calls']:>4.0f}   HTTP {figures['status']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--read-timeout", type=float, default=1.0)
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds Connvo takes in the 'far' runs"
    )
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_fake, args=(args.rows, theirs), daemon=True
    )
    server.start()
    url, ids, token = ours.recv()
    fake = RemoteFake(url)
    overrides = override_settings(
        CONNVO_DEPLOYMENTS={"dev": url},
        CONNVO_DEFAULT_DEPLOYMENT="dev",
        CONNVO_PRODUCTION_DEPLOYMENTS=[],
        CONNVO_LOOKUPS_PER_MINUTE=10**9,
        CONNVO_TABLE_MAX_MEETINGS=max(args.rows, 2),
        CONNVO_TABLE_CONCURRENCY=args.concurrency,
        CONNVO_READ_TIMEOUT=args.read_timeout,
        CONNVO_RETRIES=0,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        # Pages render without `collectstatic` having run.
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    )
    overrides.enable()
    try:
        user, _ = User.objects.get_or_create(username="bench-agent")
        group, _ = Group.objects.get_or_create(name="Support")
        group.permissions.add(Permission.objects.get(codename="lookup_meeting"))
        user.groups.add(group)
        pasted_tokens.store_token(user=user, deployment_name="dev", raw_token=token)
        client = Client()
        client.force_login(user)

        page = reverse("meetings:detail", args=["dev", ids[0]])
        table = f"{reverse('meetings:table', args=['dev'])}?ids={','.join(ids)}"
        # What each page's poller sends (its hx-vals, read from the page: what it shows, the
        # interval it polls at, and whatever else it carries), so that an unchanged refresh can
        # answer 204. "" as `seen` makes a changed one.
        single_vals = poller_values(client.get(page, secure=True).content)
        table_vals = poller_values(client.get(table, secure=True).content)
        single_seen, table_seen = single_vals.get("seen", ""), table_vals.get("seen", "")

        def single(seen: str):
            return client.get(page, single_vals | {"seen": seen}, secure=True, **HTMX)

        def whole_table(seen: str):
            query = urlencode(table_vals | {"seen": seen})
            return client.get(f"{table}&{query}", secure=True, **HTMX)

        print(
            f"{args.rows}-row table, concurrency {args.concurrency}, {args.runs} runs each, "
            f"database {connection.vendor}"
        )
        print("Connvo near (the fake answers in about a millisecond):")
        print_row("  single meeting refresh, changed", timed(lambda: single(""), args.runs, fake))
        print_row(
            "  single meeting refresh, unchanged (204)",
            timed(lambda: single(single_seen), args.runs, fake),
        )
        print_row(
            f"  {args.rows}-row table refresh, changed",
            timed(lambda: whole_table(""), args.runs, fake),
        )
        print_row(
            f"  {args.rows}-row table refresh, unchanged (204)",
            timed(lambda: whole_table(table_seen), args.runs, fake),
        )
        with override_settings(CONNVO_TABLE_CONCURRENCY=1):
            print_row(
                f"  {args.rows}-row table, unchanged, concurrency 1",
                timed(lambda: whole_table(table_seen), args.runs, fake),
            )
        slow = args.read_timeout * 3
        print_row(
            f"  {args.rows}-row table, one call {slow:g} s (read timeout {args.read_timeout:g} s)",
            timed(
                lambda: whole_table(table_seen),
                max(3, args.runs // 5),
                fake,
                before=lambda: fake.misbehave("slow", delay=slow, times=1),
            ),
        )
        fake.misbehave("slow", delay=args.latency)
        print(f"Connvo far (every answer takes {args.latency * 1000:g} ms):")
        runs = max(5, args.runs // 3)
        print_row(
            "  single meeting refresh, unchanged", timed(lambda: single(single_seen), runs, fake)
        )
        print_row(
            f"  {args.rows}-row table refresh, unchanged",
            timed(lambda: whole_table(table_seen), runs, fake),
        )
        with override_settings(CONNVO_TABLE_CONCURRENCY=1):
            print_row(
                f"  {args.rows}-row table, unchanged, concurrency 1",
                timed(lambda: whole_table(table_seen), max(3, runs // 3), fake),
            )
        fake.reset()
    finally:
        overrides.disable()
        ours.send("stop")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
