"""Two gunicorn instances against one PostgreSQL and one Redis, as behind a load balancer:
a sign-in on one host is honoured by the other, lookups work through both, the lookup limit and
sign-in lockouts count across both, the audit chain stays valid, and no log line of either
instance holds a token, a cookie or an Authorization header.

Runs only on PostgreSQL, in a database of its own that the gunicorn processes can see (the usual
test database lives inside a transaction they could not see)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator

import psycopg
import pytest
import redis
import requests
from django.conf import settings

from fakeconnvo import FakeConnvo
from tests.conftest import PASSWORD
from tests.production import (
    TEST_REDIS,
    Gunicorn,
    collect_static,
    manage,
    production_env,
    scratch_database,
    set_up,
)

pytestmark = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="several hosts share state through PostgreSQL: run with a postgres:// DATABASE_URL",
)

LOOKUP_LIMIT = 6
FAILURE_LIMIT = 3


@pytest.fixture
def shared_database() -> Iterator[str]:
    with scratch_database("console_two_hosts") as url:
        yield url


@pytest.fixture
def shared_cache_prefix() -> Iterator[str]:
    prefix = f"two-hosts-{secrets.token_hex(6)}"
    yield prefix
    # Only this test's keys: other people use this Redis database too.
    client = redis.Redis.from_url(TEST_REDIS)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def fake() -> Iterator[FakeConnvo]:
    with FakeConnvo() as fake:
        yield fake


def csrf_token(page: requests.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def sign_in(session: requests.Session, host: Gunicorn, password: str) -> requests.Response:
    page = session.get(f"{host.url}/accounts/login/", timeout=10)
    return session.post(
        f"{host.url}/accounts/login/",
        data={"username": "agent", "password": password, "csrfmiddlewaretoken": csrf_token(page)},
        allow_redirects=False,
        timeout=10,
    )


def test_two_instances_share_sign_ins_limits_and_lockouts(
    shared_database, shared_cache_prefix, fake, tmp_path, tmp_path_factory
):
    env = production_env(
        DATABASE_URL=shared_database,
        CACHE_KEY_PREFIX=shared_cache_prefix,
        STATIC_ROOT=str(collect_static(tmp_path_factory)),
        CONNVO_DEPLOYMENTS=f"dev={fake.url}",
        CONNVO_LOOKUPS_PER_MINUTE=str(LOOKUP_LIMIT),
        SIGN_IN_FAILURE_LIMIT=str(FAILURE_LIMIT),
        LOG_LEVEL="DEBUG",
        # Plain HTTP between the test and gunicorn: no TLS proxy in front here.
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_SSL_REDIRECT="false",
    )
    token = fake.token_for("agent")
    set_up(env, password=PASSWORD, token=token)

    one, two = Gunicorn(env, tmp_path, "one"), Gunicorn(env, tmp_path, "two")
    try:
        one.wait_until_serving()
        two.wait_until_serving()
        browser = requests.Session()
        meeting = f"/meetings/dev/{fake.meeting_id('standup')}/"

        # Signed in on one host, served by the other.
        assert sign_in(browser, one, PASSWORD).status_code == 302
        start = browser.get(f"{two.url}/", timeout=10)
        assert start.status_code == 200
        assert "agent" in start.text and "Sign out" in start.text

        # Lookups through both hosts, and a live refresh.
        for host in (one, two):
            page = browser.get(f"{host.url}{meeting}", timeout=10)
            assert page.status_code == 200, page.text
            assert "Support Team Daily Standup" in page.text
        refresh = browser.get(
            f"{two.url}{meeting}",
            params={"failures": 0, "seen": ""},
            headers={"HX-Request": "true"},
            timeout=10,
        )
        assert refresh.status_code == 200

        # One limit for both hosts (and all their workers): lookups 4 to 6 pass, the 7th not.
        answers = [
            browser.get(f"{host.url}{meeting}", timeout=10).status_code
            for host in (one, two, one, two, one)
        ]
        assert answers == [200, 200, 200, 429, 429]
        calls_at_limit = fake.call_count

        # Lockouts count across hosts too (last: it locks this test's address).
        stranger = requests.Session()
        attempts = [sign_in(stranger, host, "wrong").status_code for host in (one, two, one)]
        assert attempts == [200, 200, 429]
        locked = sign_in(stranger, two, PASSWORD)
        assert locked.status_code == 429
        assert "Sign-in is paused" in locked.text
        cookies = {**browser.cookies.get_dict(), **stranger.cookies.get_dict()}
    finally:
        one.stop()
        two.stop()

    assert calls_at_limit == LOOKUP_LIMIT
    with psycopg.connect(shared_database) as db:
        # Requests on record: each entry's (a counted record's `repeats`), and the repeats
        # counted but not sealed yet (audit/repeats.py).
        lookups = db.execute(
            "SELECT outcome, sum(coalesce(repeats, 1)) FROM audit_auditentry "
            "WHERE action = 'lookup' GROUP BY outcome ORDER BY outcome"
        ).fetchall()
        (counted_limit,) = db.execute(
            "SELECT coalesce(sum(count), 0) FROM audit_repeatcount WHERE outcome = 'lookup_limit'"
        ).fetchone()
        lockouts = db.execute(
            "SELECT (SELECT coalesce(sum(coalesce(repeats, 1)), 0) FROM audit_auditentry "
            "WHERE detail = 'locked out') + (SELECT coalesce(sum(count), 0) "
            "FROM audit_repeatcount WHERE kind = 'locked_out')"
        ).fetchone()[0]
        # The live refresh is counted in its page's span (on whichever host), not chained.
        refreshes = db.execute("SELECT sum(calls - sealed_calls) FROM audit_span").fetchone()[0]
    (found, limited) = lookups
    assert found == ("found", LOOKUP_LIMIT - 1)
    assert (limited[0], limited[1] + counted_limit) == ("lookup_limit", 2)
    assert refreshes == 1
    assert lockouts >= 2
    verified = manage("audit_verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Audit chain OK" in verified.stdout

    for host in (one, two):
        # Every line JSON; one line per request from the console, with the id gunicorn logged.
        lines = [json.loads(line) for line in host.logs().splitlines() if line.strip()]
        served = [line for line in lines if line["logger"] == "console.request"]
        assert any(line["user"] == "agent" for line in served)
        access_ids = {line["request_id"] for line in lines if line["logger"] == "gunicorn.access"}
        assert {line["request_id"] for line in served} <= access_ids
    logs = one.logs() + two.logs()
    assert token not in logs
    for part in token.split("."):
        assert part not in logs
    assert PASSWORD not in logs
    for name, value in cookies.items():
        assert value not in logs, name
    assert "Authorization" not in logs
    assert "Bearer" not in logs
