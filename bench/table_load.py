"""Time a triage table's live refresh next to a single meeting's, against the fake Connvo.

    .venv/bin/python bench/table_load.py                       # SQLite in a temporary file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/i13 .venv/bin/python bench/table_load.py

Seeds a fake deployment with --rows active meetings the agent takes part in, then times, through
Django's test client (session, permission, audit entries and rendering included):

- a single meeting page's live refresh, changed (rendered) and unchanged (204);
- the --rows table's live refresh, every row asked, changed and unchanged;
- the same table with one row's Connvo call slower than the read timeout;
- the table with CONNVO_TABLE_CONCURRENCY=1, to show what the pool is for.

Prints p50/p95 and the Connvo calls each request made. Prints figures only; nothing here asserts a
time. The fake runs in this process, so its work competes with the console's for the GIL: real
Connvo answers cost the console less than these figures suggest.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/table_bench.sqlite3")

import django

django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import reverse  # noqa: E402

from fakeconnvo import FakeConnvo  # noqa: E402
from fakeconnvo import world as fake_world  # noqa: E402
from meetings import tokens  # noqa: E402

HTMX = {"HTTP_HX_REQUEST": "true"}


def add_meetings(fake: FakeConnvo, count: int) -> list[str]:
    """`count` copies of the seeded stand-up (active, the agent joined), each its own meeting.

    The fake has no API to create meetings, so this builds them the way its world seeds its own."""
    world = fake._world
    now_ms = int(time.time() * 1000)
    seed = next(s for s in fake_world._seeds(now_ms) if s.label == "standup")
    ids = []
    with fake._lock:
        for n in range(count):
            record = world._build(
                dataclasses.replace(seed, label=f"bench-{n}", title=f"Incident room {n}"),
                now_ms,
            )
            world.meetings[record.id] = record
            world.meeting_labels[record.label] = record.id
            ids.append(record.id)
    return ids


def timed(request, runs: int, fake: FakeConnvo, before=None) -> dict:
    times, calls, statuses = [], [], set()
    for _ in range(runs):
        if before:
            before()
        count = fake.call_count
        started = time.perf_counter()
        response = request()
        times.append((time.perf_counter() - started) * 1000)
        calls.append(fake.call_count - count)
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
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    fake = FakeConnvo().start()
    overrides = override_settings(
        CONNVO_DEPLOYMENTS={"dev": fake.url},
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
        tokens.save_token(user=user, deployment="dev", raw_token=fake.token_for("agent"))
        client = Client()
        client.force_login(user)

        ids = add_meetings(fake, args.rows)
        page = reverse("meetings:detail", args=["dev", ids[0]])
        table = f"{reverse('meetings:table', args=['dev'])}?ids={','.join(ids)}"
        # What the pages say they show, so that an unchanged refresh can answer 204.
        single_seen = _seen(client.get(page).content.decode())
        table_seen = _seen(client.get(table).content.decode())

        print(f"{args.rows}-row table, concurrency {args.concurrency}, {args.runs} runs each")
        print_row(
            "single meeting refresh, changed (rendered)",
            timed(lambda: client.get(page, {"seen": "", "failures": 0}, **HTMX), args.runs, fake),
        )
        print_row(
            "single meeting refresh, unchanged (204)",
            timed(
                lambda: client.get(page, {"seen": single_seen, "failures": 0}, **HTMX),
                args.runs,
                fake,
            ),
        )
        refresh = lambda seen: client.get(  # noqa: E731
            f"{table}&{urlencode({'seen': seen, 'failures': 0, 'done': ''})}", **HTMX
        )
        print_row(
            f"{args.rows}-row table refresh, changed", timed(lambda: refresh(""), args.runs, fake)
        )
        print_row(
            f"{args.rows}-row table refresh, unchanged (204)",
            timed(lambda: refresh(table_seen), args.runs, fake),
        )
        slow = args.read_timeout * 3
        print_row(
            f"{args.rows}-row table, one row slower ({slow:g} s) than the read timeout",
            timed(
                lambda: refresh(table_seen),
                max(3, args.runs // 5),
                fake,
                before=lambda: fake.misbehave("slow", delay=slow, times=1),
            ),
        )
        with override_settings(CONNVO_TABLE_CONCURRENCY=1):
            print_row(
                f"{args.rows}-row table refresh, unchanged, concurrency 1",
                timed(lambda: refresh(table_seen), max(3, args.runs // 3), fake),
            )
    finally:
        overrides.disable()
        fake.stop()


def _seen(html: str) -> str:
    return re.search(r'"seen": "(\w*)"', html).group(1)


if __name__ == "__main__":
    main()
