"""The documented deployment, run: docs/deploy/'s nginx site (TLS, a self-signed certificate) in
front of `gunicorn -c gunicorn.conf.py` in production mode, on a private PostgreSQL cluster and
the shared Redis. Through nginx: sign-in, a token, a lookup, a live refresh, static files, the
health checks, the HTTPS redirect, the client's address and one request id across three logs.
Then under a steady load of live refreshes: a graceful reload (SIGHUP, as `systemctl reload`), a
worker killed with SIGKILL, and a database restart.

The private cluster (initdb/pg_ctl from Debian's PostgreSQL) is there so that the machine's own
PostgreSQL is never restarted. Runs on PostgreSQL only; `make nginx` installs nginx."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from fakeconnvo import FakeConnvo
from tests.conftest import PASSWORD
from tests.deploy_templates import NGINX, Nginx, self_signed_certificate
from tests.production import (
    TEST_REDIS,
    Gunicorn,
    Relay,
    children,
    collect_static,
    free_port,
    manage,
    production_env,
    set_up,
)

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))

pytestmark = [
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="the deployment runs on PostgreSQL: run with a postgres:// DATABASE_URL",
    ),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make nginx)"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
    pytest.mark.skipif(not PG_BIN, reason="PostgreSQL's initdb/pg_ctl are not installed"),
    # With pytest-xdist, all on one worker: one stack (module-scoped), not two under load.
    pytest.mark.xdist_group("deployment"),
]

HOST = "console.intranet.example"
WORKERS = 2
THREADS = 4
# The open-loop load: refreshes per second, and for how long.
RATE = 20
DURATION = 6.0
CONNVO_DELAY = 0.3
SHOWS_MEETING = 'id="metric-values"'
# What an agent sees while the database is away: the page, or the live block's failing state;
# or, when the database went away between reading the session and writing the audit entry, the
# meeting page's "not recorded, so not shown".
DATABASE_UNAVAILABLE_PAGE = "The console&#x27;s database is unavailable; nothing was changed."
DATABASE_UNAVAILABLE = "the console&#x27;s database is unavailable"
NOT_RECORDED_PAGE = "could not record this lookup in the audit log, so it will not show the meeting"
NOT_RECORDED = "the lookup could not be recorded"


# --- The pieces: a private PostgreSQL (the certificate and nginx: tests/deploy_templates.py) ---


class PrivatePostgreSQL:
    """A cluster of this test's own (trust authentication, loopback, its own port), which it may
    stop and start. PostgreSQL refuses to run as root: as root, it runs as `postgres`."""

    def __init__(self) -> None:
        self.bin = Path(PG_BIN[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="console-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/console"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(  # noqa: S603 (the test's own command line)
            [*self._as_owner, str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=60"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        subprocess.run(  # noqa: S603
            [
                *self._as_owner,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Stack:
    env: dict[str, str]
    database: PrivatePostgreSQL
    gunicorn: Gunicorn
    push: Gunicorn
    nginx: Nginx
    fake: FakeConnvo
    certificate: Path
    meeting_path: str
    cookies: dict[str, str]

    def browser(self, source: str | None = None) -> requests.Session:
        """A browser signed in as the agent (from `source`, another loopback address)."""
        session = https_session(self.certificate)
        if source:
            session.mount("https://", SourceAddressAdapter(source))
        for name, value in self.cookies.items():
            session.cookies.set(name, value)
        return session

    def audit(self, query: str, *params) -> list[tuple]:
        with psycopg.connect(self.database.url) as db:
            return db.execute(query, params).fetchall()

    def lookup_rows(self) -> int:
        return self.audit("SELECT count(*) FROM audit_auditentry WHERE action = 'lookup'")[0][0]

    def calls_on_record(self) -> int:
        """`audit.spans.calls_on_record()`: the chain's calls and every open span's unsealed
        ones (a live refresh is counted in its page's span, not chained one entry each)."""
        result = manage(
            "shell", "-c", "from audit import spans; print(spans.calls_on_record())", env=self.env
        )
        assert result.returncode == 0, result.stderr
        return int(result.stdout.strip().splitlines()[-1])

    def verify_chain(self) -> None:
        verified = manage("audit_verify", env=self.env)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    def workers(self) -> set[int]:
        return children(self.gunicorn.process.pid)


class SourceAddressAdapter(HTTPAdapter):
    def __init__(self, address: str, **kwargs) -> None:
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def https_session(certificate: Path) -> requests.Session:
    session = requests.Session()
    # Only this certificate is trusted: no REQUESTS_CA_BUNDLE, no proxy from the environment.
    session.trust_env = False
    session.verify = str(certificate)
    # The name the certificate and ALLOWED_HOSTS know; CSRF compares the Referer with it.
    session.headers.update({"Host": HOST, "Referer": f"https://{HOST}/"})
    return session


def csrf_token(page: requests.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("deployment")
    database = PrivatePostgreSQL()
    prefix = f"deployment-{secrets.token_hex(6)}"
    fake = FakeConnvo().start()
    started: list = []
    try:
        database.start()
        admin = psycopg.connect(database.url.replace("/console", "/postgres"), autocommit=True)
        admin.execute("CREATE DATABASE console")
        admin.close()
        env = production_env(
            DATABASE_URL=database.url,
            CONN_MAX_AGE="60",
            CACHE_KEY_PREFIX=prefix,
            STATIC_ROOT=str(collect_static(tmp_path_factory)),
            CONNVO_DEPLOYMENTS=f"dev={fake.url}",
            CONNVO_LOOKUPS_PER_MINUTE="100000",
            GUNICORN_WORKERS=str(WORKERS),
            GUNICORN_THREADS=str(THREADS),
            # The push relay's socket (docs/deploy.md 3c), here rather than in /run.
            CONNVO_PUSH_RELAY=str(directory / "relay.sock"),
        )
        set_up(env, password=PASSWORD, token=fake.token_for("agent"))

        relay = Relay(env, directory)
        started.append(relay)
        gunicorn = Gunicorn(env, directory, "gunicorn")
        started.append(gunicorn)
        push = Gunicorn(env, directory, "push", push=True)
        started.append(push)
        relay.wait_until_listening()
        gunicorn.wait_until_serving()
        push.wait_until_serving()
        certificate = self_signed_certificate(directory, HOST)
        nginx = Nginx(
            directory, f"127.0.0.1:{gunicorn.port}", f"127.0.0.1:{push.port}", certificate
        )
        started.append(nginx)
        nginx.wait_until_serving()

        session = https_session(certificate[0])
        page = session.get(f"{nginx.https}/accounts/login/", timeout=10)
        signed_in = session.post(
            f"{nginx.https}/accounts/login/",
            data={
                "username": "agent",
                "password": PASSWORD,
                "csrfmiddlewaretoken": csrf_token(page),
            },
            allow_redirects=False,
            timeout=10,
        )
        assert signed_in.status_code == 302, signed_in.text
        yield Stack(
            env=env,
            database=database,
            gunicorn=gunicorn,
            push=push,
            nginx=nginx,
            fake=fake,
            certificate=certificate[0],
            meeting_path=f"/meetings/dev/{fake.meeting_id('standup')}/",
            cookies=session.cookies.get_dict(),
        )
    finally:
        for process in reversed(started):
            process.stop()
        fake.stop()
        database.remove()
        client = redis.Redis.from_url(TEST_REDIS)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)


# --- Through nginx, one request at a time --------------------------------------------------------


def test_an_agent_works_through_nginx_over_https(stack):
    browser = stack.browser()
    https = stack.nginx.https

    start = browser.get(f"{https}/", timeout=10)
    assert start.status_code == 200
    assert "Sign out" in start.text
    assert start.headers["Strict-Transport-Security"].startswith("max-age=31536000")

    # Save a token through the page.
    tokens_page = browser.get(f"{https}/tokens/", timeout=10)
    saved = browser.post(
        f"{https}/tokens/dev/save/",
        data={
            "dev-deployment": "dev",
            "dev-token": stack.fake.token_for("agent"),
            "csrfmiddlewaretoken": csrf_token(tokens_page),
        },
        timeout=10,
    )
    assert saved.status_code == 200, saved.text
    assert "Token for dev saved" in saved.text

    # Look a meeting up, then one live refresh.
    meeting = browser.get(f"{https}{stack.meeting_path}", timeout=10)
    assert meeting.status_code == 200
    assert "Support Team Daily Standup" in meeting.text
    refresh = browser.get(
        f"{https}{stack.meeting_path}",
        params={"failures": 0, "seen": ""},
        headers={"HX-Request": "true"},
        timeout=10,
    )
    assert refresh.status_code == 200
    assert SHOWS_MEETING in refresh.text and 'data-status="live"' in refresh.text

    # Static files: collectstatic's hashed names, cached for a year.
    static_paths = set(re.findall(r'"(/static/[^"]+\.[0-9a-f]{12}\.(?:css|js))"', meeting.text))
    assert static_paths
    for path in static_paths:
        static = browser.get(f"{https}{path}", timeout=10)
        assert static.status_code == 200
        max_age = int(re.search(r"max-age=(\d+)", static.headers["Cache-Control"]).group(1))
        assert max_age >= 365 * 24 * 3600


def test_a_meeting_page_is_live_by_push_through_nginx(stack):
    """The page's stream goes through nginx to the push server, whose worker follows the meeting
    through the host's push relay, and each event arrives as it is sent (nginx buffering would
    hold it back until the stream ends, which it never does)."""
    browser = stack.browser()
    page = browser.get(f"{stack.nginx.https}{stack.meeting_path}", timeout=10)
    stream_path = re.search(r'sse-connect="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert stream_path.startswith("/live/meetings/dev/")
    key = re.search(r"span=([A-Za-z0-9_-]+)", stream_path).group(1)

    with browser.get(f"{stack.nginx.https}{stream_path}", stream=True, timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        assert _next_event(lines)[0] == "metrics"  # the first answer, on (re)connecting
        stack.fake.update_meeting("standup", participantCount=77)
        name, data = _next_event(lines)
        assert name == "metrics"
        assert '<dd data-metric="participants">77</dd>' in data
    # Both pushed answers are on record in the page's span: counted in it while it is open, or
    # in the chain once the push relay has sealed it for the closed stream (which deletes the
    # span; that may have happened by now or not). One statement: one snapshot of both.
    ((pushed,),) = stack.audit(
        "SELECT (SELECT coalesce(sum(calls - sealed_calls), 0) FROM audit_span WHERE key = %s)"
        " + (SELECT coalesce(sum(calls), 0) FROM audit_auditentry WHERE tally->>'span' = %s)",
        key,
        key,
    )
    assert pushed == 2


def _next_event(lines) -> tuple[str, str]:
    """The next named event of a Server-Sent Events stream (comments and `retry` skipped)."""
    name, data = "", []
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
        elif line == "" and name:
            return name, "\n".join(data)
    raise AssertionError("the stream ended")


def test_health_checks_answer_over_both_schemes_and_plain_http_is_redirected(stack):
    browser = stack.browser()
    for base in (stack.nginx.http, stack.nginx.https):
        assert browser.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
        ready = browser.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"

    plain = browser.get(f"{stack.nginx.http}/tokens/?x=1", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://{HOST}/tokens/?x=1"


def test_the_client_address_is_the_one_nginx_saw_and_one_id_joins_three_logs(stack):
    # From another loopback address, so that nginx's address and the client's differ.
    browser = stack.browser(source="127.0.0.2")
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "forged-request-id-0001"}
    page = browser.get(f"{stack.nginx.https}{stack.meeting_path}", headers=forged, timeout=10)
    assert page.status_code == 200
    request_id = page.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id, not the forged one

    [(client_ip,)] = stack.audit(
        "SELECT client_ip FROM audit_auditentry WHERE request_id = %s", request_id
    )
    assert str(client_ip) == "127.0.0.2"

    [nginx_line] = [line for line in stack.nginx.access_lines() if line["request_id"] == request_id]
    assert nginx_line["remote_addr"] == "127.0.0.2"
    assert nginx_line["path"] == stack.meeting_path and nginx_line["status"] == 200
    deadline = time.monotonic() + 5  # gunicorn's access line is written after the response
    while time.monotonic() < deadline:
        logged = [
            json.loads(line) for line in stack.gunicorn.logs().splitlines() if request_id in line
        ]
        if any(line["logger"] == "gunicorn.access" for line in logged):
            break
        time.sleep(0.1)
    by_logger = {line["logger"]: line for line in logged}
    assert by_logger["gunicorn.access"]["status"] == 200
    assert by_logger["console.request"]["client_ip"] == "127.0.0.2"
    assert by_logger["console.request"]["user"] == "agent"
    assert "203.0.113.9" not in stack.gunicorn.logs()
    assert "forged-request-id-0001" not in stack.gunicorn.logs()


# --- Under load -----------------------------------------------------------------------------------


@dataclass
class Answer:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    body: str
    request_id: str
    full_page: bool

    @property
    def shows_meeting(self) -> bool:
        return self.status == 200 and SHOWS_MEETING in self.body

    def in_flight_at(self, moment: float) -> bool:
        return self.started <= moment <= self.ended


def open_loop(
    stack: Stack, events: list[tuple[float, Callable[[], None]]], full_page_every: int = 0
) -> list[Answer]:
    """RATE refreshes a second for DURATION seconds, each sent on schedule whatever became of
    the ones before (open loop), while `events` run at their offsets. Every `full_page_every`th
    request loads the whole page instead."""
    local = threading.local()
    answers: list[Answer] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        if not hasattr(local, "browser"):
            local.browser = stack.browser()
        full_page = bool(full_page_every) and index % full_page_every == 0
        started = time.monotonic()
        try:
            response = local.browser.get(
                f"{stack.nginx.https}{stack.meeting_path}",
                params=None if full_page else {"failures": 0, "seen": ""},
                headers={} if full_page else {"HX-Request": "true"},
                timeout=30,
            )
            request_id = response.headers.get("X-Request-ID", "")
            answer = Answer(
                started,
                time.monotonic(),
                response.status_code,
                response.text,
                request_id,
                full_page,
            )
        except requests.RequestException as exc:
            answer = Answer(started, time.monotonic(), None, repr(exc), "", full_page)
        with lock:
            answers.append(answer)

    pending = sorted(events, key=lambda event: event[0])
    begin = time.monotonic()
    with ThreadPoolExecutor(max_workers=48) as pool:
        for index in range(int(RATE * DURATION)):
            due = begin + index / RATE
            while pending and begin + pending[0][0] <= due:
                pending.pop(0)[1]()
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(one, index)
        for _, event in pending:
            event()
    return answers


@pytest.fixture
def slow_connvo(stack) -> Iterator[None]:
    """Connvo takes a while, so that several lookups are in flight at any moment."""
    stack.fake.misbehave("slow", delay=CONNVO_DELAY)
    yield
    stack.fake.reset_behaviour()


def test_a_graceful_reload_under_load_fails_nothing(stack, slow_connvo):
    calls, recorded = stack.fake.call_count, stack.calls_on_record()
    old_workers = stack.workers()

    answers = open_loop(stack, [(2.0, lambda: os.kill(stack.gunicorn.process.pid, signal.SIGHUP))])

    assert len(answers) == RATE * DURATION
    failed = [a for a in answers if not a.shows_meeting]
    assert failed == [], [(a.status, a.body[:200]) for a in failed]
    assert stack.fake.call_count - calls == len(answers)
    assert stack.calls_on_record() - recorded == len(answers)
    stack.verify_chain()
    # It did reload: none of the workers that served before the reload are left.
    assert not old_workers & stack.workers()
    slowest = max(a.ended - a.started for a in answers)
    print(f"\nreload: {len(failed)} of {len(answers)} requests failed, slowest {slowest:.1f} s")


def test_a_killed_worker_fails_only_what_it_was_serving(stack, slow_connvo):
    calls, recorded = stack.fake.call_count, stack.calls_on_record()
    killed: dict[str, float | int] = {}

    def kill_a_worker() -> None:
        victim = min(stack.workers())
        os.kill(victim, signal.SIGKILL)
        killed.update(pid=victim, at=time.monotonic())

    answers = open_loop(stack, [(2.0, kill_a_worker)])

    failed = [a for a in answers if not a.shows_meeting]
    in_flight = [a for a in answers if a.in_flight_at(killed["at"])]
    # Only requests in flight at the moment of the kill may fail: nginx's 502, or the connection
    # closed mid-answer when the worker died after sending the headers.
    assert all(a.in_flight_at(killed["at"]) for a in failed), failed
    assert {a.status for a in failed} <= {502, None}

    # gunicorn replaced it.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(stack.workers()) < WORKERS:
        time.sleep(0.2)
    workers = stack.workers()
    assert len(workers) == WORKERS and killed["pid"] not in workers
    replaced_after = time.monotonic() - killed["at"]  # an upper bound: checked after the load

    # Every call Connvo received is on record, those of the killed worker included (counted in
    # their span before they were made). A call the killed worker had counted and not yet sent
    # is on record with no call behind it (at most one per thread): more on record, never fewer.
    # Calls beyond those shown died with the worker: nginx sends a GET again when a kept-alive
    # connection to gunicorn breaks, so a lookup in flight can reach Connvo twice.
    shown = [a for a in answers if a.shows_meeting]
    new_calls = stack.fake.call_count - calls
    assert new_calls <= stack.calls_on_record() - recorded <= new_calls + THREADS
    assert len(shown) <= new_calls
    assert new_calls - len(shown) <= len(in_flight)
    stack.verify_chain()
    print(
        f"\nworker killed: {len(failed)} of {len(answers)} requests failed, {len(in_flight)} were "
        f"in flight; {new_calls - len(shown)} Connvo calls not shown, all on record; "
        f"{WORKERS} workers again {replaced_after:.1f} s after the kill"
    )


def test_a_database_restart_under_load_says_so_and_recovers_by_itself(stack):
    calls, rows, recorded = stack.fake.call_count, stack.lookup_rows(), stack.calls_on_record()
    moments: dict[str, float] = {}
    readiness: list[int] = []

    def stop_database() -> None:
        stack.database.stop()
        moments["stopped"] = time.monotonic()
        readiness.append(stack.browser().get(f"{stack.nginx.https}/readyz", timeout=10).status_code)

    def start_database() -> None:
        stack.database.start()
        moments["started"] = time.monotonic()

    answers = open_loop(stack, [(1.5, stop_database), (4.0, start_database)], full_page_every=5)

    assert readiness == [503]
    during = [a for a in answers if not a.shows_meeting]
    assert during, "the restart went unnoticed: nothing was sent while it was down"
    for answer in during:
        if answer.full_page:
            # The page: a clear 503, never the generic 500.
            assert answer.status == 503, (answer.status, answer.body[:300])
            assert DATABASE_UNAVAILABLE_PAGE in answer.body or NOT_RECORDED_PAGE in answer.body
        else:
            # The live block: its failing state, so the page keeps polling, more slowly.
            assert answer.status == 200, (answer.status, answer.body[:300])
            assert 'data-status="failing"' in answer.body
            said = answer.body.lower()  # "Could not refresh at 14:02:11: The console's database…"
            assert DATABASE_UNAVAILABLE in said or NOT_RECORDED in said

    # Recovered by itself (no gunicorn restart): the last second's requests all succeeded.
    last_second = [a for a in answers if a.started >= answers[-1].started - 1]
    assert last_second and all(a.shows_meeting for a in last_second)
    recovered_at = min(
        a.started for a in answers if a.shows_meeting and a.started > moments["started"]
    )
    print(
        f"\ndatabase restart: {len(during)} of {len(answers)} answered 'unavailable' "
        f"(down {moments['started'] - moments['stopped']:.1f} s), back "
        f"{recovered_at - moments['started']:.2f} s after it started"
    )

    # No audit entry lost or duplicated: every page shown has exactly one (its first look), no
    # request has two, and an entry for a request that showed nothing belongs to one that
    # failed with the database (audited, then the session could not be saved). Refreshes are
    # counted in their spans, not chained one entry each.
    pages = [a for a in answers if a.full_page]
    shown = {a.request_id for a in pages if a.shows_meeting}
    failed = {a.request_id for a in during if a.request_id}
    audited = stack.audit(
        "SELECT request_id, count(*) FROM audit_auditentry WHERE action = 'lookup' "
        "AND request_id = ANY(%s) GROUP BY request_id",
        [a.request_id for a in pages if a.request_id],
    )
    assert all(count == 1 for _, count in audited)
    audited_ids = {request_id for request_id, _ in audited}
    assert shown <= audited_ids
    assert audited_ids - shown <= failed
    assert stack.lookup_rows() - rows == len(audited_ids)
    # No call without a record: every call was counted before it was made (one whose answer
    # could not be written is on record as counted, and shows "not recorded").
    assert stack.fake.call_count - calls <= stack.calls_on_record() - recorded
    stack.verify_chain()


def test_a_flood_of_forms_from_one_address_is_held_to_the_rate_by_nginx(stack):
    # Forged sign-ins from one address on 30 connections at once: nginx lets a burst of 10
    # through, holds the next 10 and lets them go on at 2 a second, and answers the rest 429
    # itself (no console worker, no audit write), while an agent's live refresh goes through.
    flooder = https_session(stack.certificate)
    flooder.mount("https://", SourceAddressAdapter("127.0.0.3", pool_maxsize=30))
    logged_before = len(stack.nginx.access_lines())

    url = f"{stack.nginx.https}/accounts/login/"
    together = threading.Barrier(30)

    def forge(_) -> int:
        # Each on a connection of its own, its TLS handshake done (GETs are not limited), then
        # all at once: a slow machine's handshakes must not spread them over seconds.
        flooder.get(url, timeout=20)
        together.wait(timeout=20)
        return flooder.post(url, data={"username": "agent"}, timeout=20).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(forge, range(30)))
    refresh = stack.browser().get(
        f"{stack.nginx.https}{stack.meeting_path}", headers={"HX-Request": "true"}, timeout=10
    )

    assert set(statuses) == {403, 429}
    # The burst, the ten held, and what the rate let through meanwhile.
    assert 21 <= statuses.count(403) <= 26
    assert refresh.status_code in (200, 204)
    logged = stack.nginx.access_lines()[logged_before:]
    answered = [
        line for line in logged if line["remote_addr"] == "127.0.0.3" and line["method"] == "POST"
    ]
    assert len(answered) == 30
    refused = [line for line in answered if line["status"] == 429]
    passed = [line for line in answered if line["status"] == 403]
    assert len(refused) == statuses.count(429)
    # Refused at once, but held in nginx for their turn at 2 a second: the last of the held
    # waited for the nine before it (with `nodelay` every form was answered at once).
    assert max(line["duration_s"] for line in refused) < 1
    held = sorted(line["duration_s"] for line in passed)
    assert held[-1] >= 3.5, held
