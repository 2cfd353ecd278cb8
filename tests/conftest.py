"""Shared fixtures: a fake Connvo deployment on loopback, and the console's named users.

Users: `agent` (Support, token saved for dev), `auditor` (Auditor), `outsider` (signed in, no
group), `admin` (superuser). `audit_entry` writes audit entries through the real service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache
from django.db import transaction
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from django.test import AsyncClient, Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from fakeconnvo import FakeConnvo
from meetings import pasted_tokens

PASSWORD = "correct horse battery staple"

# The whole session can run at another instant and in another local time zone, so that no test
# depends on the season, a leap day or the turn of a year (docs/testing.md, `make test-clock`):
#   CONSOLE_TEST_CLOCK=2027-07-15T12:00:00Z   the wall clock starts there and ticks
#   CONSOLE_TEST_TZ=Pacific/Kiritimati        the process's local zone (and the browser's)
CLOCK_ENV = "CONSOLE_TEST_CLOCK"
TZ_ENV = "CONSOLE_TEST_TZ"
_session_travel: time_machine.travel | None = None


# How many examples a property test generates: as many as it asks for (Hypothesis's 100 when it
# does not say), times CONSOLE_TEST_EXAMPLES_SHARE when that is set. `make test` gives its
# PostgreSQL run a third: it repeats, on the other database, the property tests the SQLite run has
# just run in full, for what differs between the two (text the server refuses or cuts, ordering,
# row locks), and at full count they took a third of that run (docs/testing.md, "CI time").
EXAMPLES_SHARE = float(os.environ.get("CONSOLE_TEST_EXAMPLES_SHARE") or 1)


def examples(count: int) -> int:
    """`count` examples for a property test, or its share in a run that asks for fewer."""
    return max(5, round(count * EXAMPLES_SHARE))


# Hypothesis's deadline and "too slow" checks are timing assertions: on a busy machine (two cores
# shared by several runs) they fail tests whose behaviour is right.
hypothesis_settings.register_profile(
    "console",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=examples(100),
)
hypothesis_settings.load_profile("console")


def pytest_configure(config: pytest.Config) -> None:
    global _session_travel
    zone = os.environ.get(TZ_ENV)
    if zone:
        os.environ["TZ"] = zone
        time.tzset()
    instant = os.environ.get(CLOCK_ENV)
    if instant:
        _session_travel = time_machine.travel(datetime.fromisoformat(instant), tick=True)
        _session_travel.start()


# Fixtures through which a test reaches the run's database (pytest-django refuses any other way).
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "live_server", "django_db_serialized_rollback"}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="leave out the tests that cannot reach the run's database: they run the same on "
        "any database, and `make test` has run them on SQLite already",
    )


def reaches_the_database(item: pytest.Item) -> bool:
    """Whether the test can reach the run's database, or may depend on which one it is: it has
    database access (pytest-django's marker or fixtures), or a skip condition (each test that
    runs only on PostgreSQL, or only on SQLite, says so with one)."""
    return bool(
        item.get_closest_marker("django_db")
        or DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        or item.get_closest_marker("skipif")
        or item.get_closest_marker("skip")
    )


# Modules whose tests each run real servers for many seconds (gunicorn, nginx, PostgreSQL
# clusters, workers killed and replaced) without the test database: handed out first, so that the
# two workers share them out and fill the rest of the time with short tests, instead of one worker
# running them at the end while the other waits (pytest-django puts tests without the database
# last).
LONG_FIRST = ("test_deployment.py", "test_audit_spans_kill.py", "test_two_hosts.py", "test_demo.py")


@pytest.hookimpl(trylast=True)  # after pytest-django's own order, and xdist's group names
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        ungrouped = [
            item.nodeid
            for item in items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid
        ]
        if ungrouped:
            # xdist names a test's group in its node ID; a pytest that ignores that (9.2:
            # pytest-dev/pytest-xdist#1386) spreads the group over the workers, and each starts
            # the group's module-scoped servers again. Say so rather than run slower unseen.
            raise pytest.UsageError(
                f"pytest-xdist lost the xdist_group of {len(ungrouped)} tests (first: "
                f"{ungrouped[0]}): a pytest that pytest-xdist does not support (pyproject.toml)"
            )
    if config.getoption("--database-tests-only"):
        kept, left_out = [], []
        for item in items:
            (kept if reaches_the_database(item) else left_out).append(item)
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = kept
    if os.environ.get("CONSOLE_TESTS_IN_DJANGO_ORDER"):
        return
    long_first = [
        item
        for item in items
        if item.path.name in LONG_FIRST
        # Never a transactional test: its flush would remove what the migrations made before
        # the database tests that need it.
        and not {"transactional_db", "live_server"} & set(item.fixturenames)
    ]
    if long_first:
        moved = set(long_first)
        items[:] = long_first + [item for item in items if item not in moved]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_travel is not None:
        _session_travel.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"clock: {os.environ.get(CLOCK_ENV) or 'real'} (ticking); "
        f"local zone: {os.environ.get(TZ_ENV) or time.tzname[0]}"
    ]


def run_async[T](awaitable: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(awaitable)` in a thread of its own. A worker that has run a browser test has
    Playwright's event loop running in its main thread (the sync API's), where `asyncio.run`
    refuses to start another."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, awaitable).result()


@pytest.fixture
def push_database_threads() -> Iterator[None]:
    """For tests of push streams: afterwards the push worker's database threads
    (meetings/relay.py) let go of their connections, each kept for CONN_MAX_AGE, which
    would otherwise keep the test database from being dropped at the end of the run."""
    yield
    from django.db import connections

    from meetings import relay

    for pool in (relay._database_work, relay._sealing_work):
        threads = pool._max_workers
        every_thread = threading.Barrier(threads)

        def let_go(every_thread=every_thread) -> None:
            every_thread.wait(timeout=10)  # one job per thread: all of them at once
            connections.close_all()

        for job in [pool.submit(let_go) for _ in range(threads)]:
            job.result(timeout=20)


def _sql_flush_allowing_audit_truncate(original):
    """The database refuses TRUNCATE of the audit table (audit migration 0009) unless the
    transaction allows purging; flushing between transactional tests is such a purge."""

    def sql_flush(self, style, tables, **kwargs):
        statements = original(self, style, tables, **kwargs)
        if statements:
            statements = ["SELECT set_config('audit.allow_purge', 'on', true);", *statements]
        return statements

    return sql_flush


PostgresOperations.sql_flush = _sql_flush_allowing_audit_truncate(PostgresOperations.sql_flush)


@pytest.fixture
def fake_connvo() -> Iterator[FakeConnvo]:
    fake = FakeConnvo()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_connvo_prod() -> Iterator[FakeConnvo]:
    """A second deployment that redacts errors like a Convex production deployment."""
    fake = FakeConnvo()
    fake.misbehave("redact")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(autouse=True)
def connvo_settings(settings, request):
    """Point the console at the fakes (when a test uses them) and keep retries quick."""
    deployments = {}
    if "fake_connvo" in request.fixturenames:
        deployments["dev"] = request.getfixturevalue("fake_connvo").url
    else:
        deployments["dev"] = "http://127.0.0.1:9"  # discard port: nothing must call it
    if "fake_connvo_prod" in request.fixturenames:
        deployments["prod"] = request.getfixturevalue("fake_connvo_prod").url
    else:
        deployments["prod"] = "http://127.0.0.1:9"
    settings.CONNVO_DEPLOYMENTS = deployments
    settings.CONNVO_DEFAULT_DEPLOYMENT = "dev"
    settings.CONNVO_PRODUCTION_DEPLOYMENTS = ["prod"]
    settings.CONNVO_RETRY_BACKOFF = 0.01
    settings.CONNVO_READ_TIMEOUT = 2.0
    settings.CONNVO_CONNECT_TIMEOUT = 1.0
    settings.CONNVO_RETRIES = 2
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests do not depend on `collectstatic` having run.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # A cache of each test's own, so lookup counts (meetings/ratelimit.py) start from zero and the
    # suite never touches a shared Redis.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    return settings


@contextlib.contextmanager
def shared_rows(django_db_blocker) -> Iterator[None]:
    """Rows that a class's tests share, written once, as Django's `TestCase.setUpTestData` does:
    in a transaction around the class's tests (a class-scoped fixture's), inside which each
    test's own transaction is a savepoint, so whatever a test writes is still rolled back; the
    shared rows are rolled back after the class's last test. For database tests only: a
    transactional test would flush them."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield
        transaction.set_rollback(True)


GROUP_PERMISSIONS = {
    "Support": ["lookup_meeting"],
    "Auditor": ["view_auditentry", "export_auditentry"],
}


def _group(name: str) -> Group:
    """The group the data migration creates. Browser tests flush the database between tests,
    which removes migration data, so it is recreated here exactly as the migration made it."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        group.permissions.set(Permission.objects.filter(codename__in=GROUP_PERMISSIONS[name]))
    return group


def _user(username: str, *groups: str, **extra) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, **extra)
    for name in groups:
        user.groups.add(_group(name))
    return user


@pytest.fixture
def agent(db) -> User:
    return _user("agent", "Support")


@pytest.fixture
def auditor(db) -> User:
    return _user("auditor", "Auditor")


@pytest.fixture
def outsider(db) -> User:
    return _user("outsider")


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin", password=PASSWORD)


@pytest.fixture
def agent_token(agent, fake_connvo) -> str:
    token = fake_connvo.token_for("agent")
    pasted_tokens.store_token(user=agent, deployment_name="dev", raw_token=token)
    return token


@pytest.fixture
def agent_client(agent) -> Client:
    client = Client()
    client.force_login(agent)
    return client


@pytest.fixture
def async_agent(agent) -> AsyncClient:
    client = AsyncClient()
    client.force_login(agent)
    return client


@pytest.fixture
def push_on(settings):
    """Pages live by push, on every deployment (tests/test_push_*.py)."""
    settings.CONNVO_PUSH = True
    settings.CONNVO_POLLING_ONLY_DEPLOYMENTS = []
    cache.clear()  # the lookup limit's counters
    return settings


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


@pytest.fixture
def auditor_client(auditor) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


@pytest.fixture
def audit_entry(db):
    """Write an audit entry through `audit.services.record` (so it joins the hash chain), as
    `username`, optionally stamped at a given time."""
    from audit.models import Action
    from audit.services import Origin, record

    def write(*, username: str = "agent", at: datetime | None = None, **fields):
        fields.setdefault("action", Action.LOOKUP)
        origin = Origin(user=None, username=username, client_ip="10.0.0.7", user_agent="pytest")
        if at is None:
            return record(origin=origin, **fields)
        with mock.patch("django.utils.timezone.now", return_value=at):
            return record(origin=origin, **fields)

    return write


@pytest.fixture
def workos(settings, fake_connvo):
    """Make the fake Connvo deployment also the WorkOS AuthKit of "dev" (five-minute tokens)."""
    from meetings import workos_auth

    settings.CONNVO_WORKOS = {
        "dev": {
            "client_id": fake_connvo.workos_client_id,
            "api_key": fake_connvo.workos_api_key,
            "base_url": fake_connvo.url,
        }
    }
    settings.CONNVO_REFRESH_MARGIN = 60
    workos_auth._client.cache_clear()
    yield fake_connvo
    workos_auth._client.cache_clear()
