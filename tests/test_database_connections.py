"""How long the console keeps a database connection (connvo_admin/settings.py), as the shipped
settings load in production mode: PostgreSQL connections are kept (a new one per request costs a
TCP handshake, TLS and authentication) and checked before reuse; SQLite's are not."""

from __future__ import annotations

import json

import pytest

from tests.forked_manage import manage_forked
from tests.production import production_env

POSTGRES = "postgres://console@db.intranet.example:5432/console"
SHOW = (
    "import json; from django.conf import settings as s; d = s.DATABASES['default']; "
    "print(json.dumps([d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS']]))"
)


def connection_settings(**env: str) -> list:
    result = manage_forked("shell", "--verbosity", "0", "-c", SHOW, env=production_env(**env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgres_connections_are_kept_a_minute_and_checked_before_reuse():
    assert connection_settings(DATABASE_URL=POSTGRES) == [60, True]


def test_sqlite_connections_are_closed_after_each_request():
    assert connection_settings(DATABASE_URL="sqlite:///:memory:")[0] == 0


@pytest.mark.parametrize("url", [POSTGRES, "sqlite:///:memory:"])
def test_conn_max_age_set_by_the_operator_wins(url):
    assert connection_settings(DATABASE_URL=url, CONN_MAX_AGE="5")[0] == 5
    assert connection_settings(DATABASE_URL=url, CONN_MAX_AGE="0")[0] == 0


def test_a_negative_conn_max_age_is_refused():
    result = manage_forked(
        "shell", "-c", SHOW, env=production_env(DATABASE_URL=POSTGRES, CONN_MAX_AGE="-1")
    )

    assert result.returncode != 0
    assert "CONN_MAX_AGE must be 0 or more" in result.stderr
