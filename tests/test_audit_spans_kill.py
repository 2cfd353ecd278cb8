"""Calls at Connvo == calls on record, after `kill -9` of workers in the middle of live refreshes
(issue #22: four kills during 3,000 refreshes used to leave 18 calls with no record). A real
gunicorn with several workers on PostgreSQL, a slow fake Connvo, refreshes from many threads;
workers are killed while their calls are in flight, then `audit_seal` seals the quiet spans.

Runs only on PostgreSQL, in a database of its own that the gunicorn processes can see."""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from django.conf import settings

from fakeconnvo import FakeConnvo
from tests.conftest import PASSWORD
from tests.production import (
    Gunicorn,
    collect_static,
    manage,
    production_env,
    scratch_database,
    set_up,
    shell,
    signed_in,
)

pytestmark = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="workers on one database, killed mid-call: run with a postgres:// DATABASE_URL",
)

WORKERS = 3
THREADS = 4
CLIENTS = 12  # refreshing at once: every worker has calls in flight at any moment
KILLS = 4
CONNVO_DELAY = 0.3
ON_RECORD = "from audit import spans; print(spans.calls_on_record())"
UNANSWERED = (
    "from audit.models import AuditEntry; "
    "print(sum(e.tally['unanswered'] for e in AuditEntry.objects.filter(tally__kind='span')))"
)


@pytest.fixture
def own_database() -> Iterator[str]:
    with scratch_database("console_span_kill") as url:
        yield url


def test_workers_killed_mid_call_leave_every_connvo_call_on_record(
    own_database, tmp_path, tmp_path_factory
):
    fake = FakeConnvo().start()
    env = production_env(
        DATABASE_URL=own_database,
        CACHE_KEY_PREFIX=f"span-kill-{secrets.token_hex(6)}",
        STATIC_ROOT=str(collect_static(tmp_path_factory)),
        CONNVO_DEPLOYMENTS=f"dev={fake.url}",
        CONNVO_LOOKUPS_PER_MINUTE="100000",
        # Quick to go quiet (a few seconds), so the test can seal the closed pages' spans.
        CONNVO_POLL_INTERVAL="1",
        CONNVO_CONNECT_TIMEOUT="0.5",
        CONNVO_READ_TIMEOUT="1",
        CONNVO_RETRIES="0",
        GUNICORN_WORKERS=str(WORKERS),
        GUNICORN_THREADS=str(THREADS),
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_SSL_REDIRECT="false",
    )
    set_up(env, password=PASSWORD, token=fake.token_for("agent"))
    host = Gunicorn(env, tmp_path, "console")
    try:
        host.wait_until_serving()
        session = signed_in(host, PASSWORD)
        meeting = f"{host.url}/meetings/dev/{fake.meeting_id('standup')}/"
        fake.misbehave("slow", delay=CONNVO_DELAY)
        stop = threading.Event()
        answered: list[int] = []
        errors: list[str] = []

        def refresh_page() -> None:
            browser = requests.Session()
            browser.cookies.update(session.cookies)
            page = None
            while page is None and not stop.is_set():
                try:  # on a busy machine the first look can outlast the timeout: open it again
                    page = browser.get(meeting, timeout=10).text
                except requests.RequestException:
                    continue
            span = re.search(r'"span": "([\w-]+)"', page or "")
            vals = {"interval": 1, "span": span.group(1) if span else ""}
            while not stop.is_set():
                try:
                    answer = browser.get(
                        meeting, params=vals, headers={"HX-Request": "true"}, timeout=10
                    )
                    answered.append(answer.status_code)
                except requests.RequestException as exc:
                    answered.append(0)  # its worker was killed
                    errors.append(repr(exc)[:200])

        clients = [threading.Thread(target=refresh_page) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        killed = 0

        def served(count: int) -> None:
            """Wait until `count` more refreshes were answered (however busy the machine), so
            that every kill meets calls in flight, and a replaced worker has booted."""
            target = answered.count(200) + count
            deadline = time.monotonic() + 120
            while answered.count(200) < target and time.monotonic() < deadline:
                time.sleep(0.05)

        try:
            for _ in range(KILLS):
                served(2 * CLIENTS)
                os.kill(min(host.workers()), signal.SIGKILL)
                killed += 1
            served(2 * CLIENTS)
        finally:
            stop.set()
            for client in clients:
                client.join(30)
        fake.reset_behaviour()
        assert killed == KILLS
        assert answered.count(200) >= 2 * CLIENTS * (KILLS + 1), Counter(errors).most_common(3)
        assert 0 in answered, "no refresh was in flight when its worker was killed"

        # Every call Connvo received is on record: sealed, or counted in an open span. A worker
        # killed after counting a call and before sending it leaves a count with no call behind it
        # (at most one per thread it had): more on record, never fewer.
        assert fake.call_count <= int(shell(ON_RECORD, env)) <= fake.call_count + KILLS * THREADS

        time.sleep(6)  # every page is now quiet (three intervals, twice the longest call)
        sealed = manage("audit_seal", env=env)
        assert sealed.returncode == 0, sealed.stderr
        on_record = int(shell(ON_RECORD, env))
        unanswered = int(shell(UNANSWERED, env))
        # Calls counted by a worker that died before recording their answers, sealed as
        # unanswered: whether or not each reached Connvo, every answered call did.
        assert 1 <= unanswered <= KILLS * THREADS
        assert on_record - unanswered <= fake.call_count <= on_record
        verified = manage("audit_verify", env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        print(
            f"\n{KILLS} workers killed during {len(answered)} refreshes: {fake.call_count} "
            f"Connvo calls, all on record ({on_record} counted, {unanswered} sealed unanswered)"
        )
    finally:
        host.stop()
        fake.stop()
