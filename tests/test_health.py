"""/healthz and /readyz: JSON, no sign-in, answered whatever Host or scheme the probe uses, and
never a secret in the body."""

from __future__ import annotations

import json
import sqlite3
import time
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import Client

from connvo_admin import health

PRODUCTION_KEYS = {
    "SECRET_KEY": "s" * 64,
    "TOKEN_ENCRYPTION_KEYS": ["kX8vJ3m2Yb1QJtq3cK0a7y4Q0mH3V1qg9rXx1yJ3bHk="],
    "AUDIT_CHAIN_KEYS": ["a" * 64],
}


@pytest.fixture(autouse=True)
def fresh_probes():
    health.forget_connvo_probes()
    yield
    health.forget_connvo_probes()


@pytest.fixture
def configured(settings):
    for name, value in PRODUCTION_KEYS.items():
        setattr(settings, name, value)
    return settings


def test_healthz_answers_without_touching_anything(client: Client):
    with mock.patch.object(health, "_database", side_effect=AssertionError("no database")):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_probes_by_address_over_plain_http_are_answered(client: Client, settings):
    # A load balancer probes each host by its address, while the console only answers to its name
    # and redirects plain HTTP to HTTPS.
    settings.ALLOWED_HOSTS = ["console.intranet.example"]
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/healthz", HTTP_HOST="10.0.0.21:8000")

    assert response.status_code == 200
    assert client.get("/", HTTP_HOST="10.0.0.21:8000").status_code == 400


@pytest.mark.django_db
def test_readyz_is_ready_when_database_cache_and_keys_are(client: Client, configured, fake_connvo):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "cache": "ok", "keys": "ok", "migrations": "ok"},
        # "prod" points at a closed port in the tests: reported, but this host is still ready.
        "connvo": {"dev": "reachable", "prod": "unreachable"},
    }


@pytest.mark.django_db
def test_readyz_is_not_ready_with_demo_keys_and_names_them(client: Client):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["keys"].startswith("missing or demo: SECRET_KEY, TOKEN_ENCRYPTION_KEYS")


@pytest.mark.django_db
def test_readyz_stays_ready_but_degraded_when_the_cache_does_not_answer(
    client: Client, configured, agent
):
    """The console serves without Redis (sessions from the database, lookups uncounted), and
    every host shares that Redis: failing readiness would take every host out of the pool."""
    configured.CACHES = {
        "default": {
            "BACKEND": "connvo_admin.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/5",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

    response = client.get("/readyz")
    client.force_login(agent)
    page = client.get("/")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["cache"] == "unreachable"
    assert page.status_code == 200


def test_readyz_is_not_ready_when_the_database_does_not_answer(client: Client, configured):
    failing = mock.MagicMock()
    failing.__enter__.return_value.execute.side_effect = OperationalError("connection refused")
    with mock.patch.object(health.connection, "cursor", return_value=failing):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"


@pytest.mark.django_db
def test_readyz_body_holds_no_secret_and_no_url(client: Client, configured, fake_connvo):
    body = client.get("/readyz").content.decode()

    for value in (configured.SECRET_KEY, fake_connvo.url, "127.0.0.1"):
        assert value not in body
    assert configured.AUDIT_CHAIN_KEYS[0] not in body
    assert configured.TOKEN_ENCRYPTION_KEYS[0] not in body
    json.loads(body)


@pytest.mark.django_db
def test_connvo_reachability_is_remembered_briefly(client: Client, configured, fake_connvo):
    client.get("/readyz")
    fake_connvo.down()

    assert client.get("/readyz").json()["connvo"]["dev"] == "reachable"  # still remembered
    health.forget_connvo_probes()
    assert client.get("/readyz").json()["connvo"]["dev"] == "unreachable"


def test_health_endpoints_only_answer_get(client: Client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_is_not_ready_while_migrations_are_pending(client: Client, configured):
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    newest = max(
        name for app, name in MigrationLoader(connection).graph.leaf_nodes() if app == "audit"
    )
    with connection.cursor() as cursor:
        # As if this release's newest migration had not been applied yet (rolled back after).
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = %s AND name = %s", ["audit", newest]
        )

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "1 pending: run manage.py migrate"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's write lock and busy timeout")
@pytest.mark.django_db(transaction=True)
def test_readyz_answers_at_once_and_says_locked_while_another_connection_writes(
    client: Client, configured
):
    """A purge or a migration holds SQLite's write lock: the probe waits half a second for it,
    not the 20 s busy timeout, and says "locked", not "read-only". Writes wait for the lock
    rather than fail, so the host stays in the pool, degraded."""
    connection.ensure_connection()
    writer = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        response = client.get("/readyz")
        waited = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    assert waited < 5
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["database"] == "locked"
    # The connection's own busy timeout is back for the requests after the probe.
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 20_000
    assert client.get("/readyz").json()["checks"]["database"] == "ok"
