"""Production settings: `check --deploy` is clean under a correct production environment, and
neither the check nor gunicorn lets a missing or demo secret through.

The `manage.py` commands run each in a process of its own under its own environment, forked from
one that has imported Django and WorkOS (`manage_forked`, tests/forked_manage.py): each loads the
console from its settings on, and is spared only the libraries' import. The WSGI import and
gunicorn run in fresh interpreters, as any server loads the console."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from django.conf import settings as django_settings

from connvo_admin.checks import secret_problems, serving_problems
from tests.forked_manage import manage_forked
from tests.production import (
    GUNICORN,
    ROOT,
    Gunicorn,
    collect_static,
    manage,
    production_env,
)

# Every secret the console refuses to run without (README: Settings; docs/deploy.md).
SECRETS = ["SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "AUDIT_CHAIN_KEY"]


def test_check_deploy_reports_nothing_under_a_production_environment():
    result = manage_forked("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_every_demo_secret():
    # With DEBUG off the settings refuse to load at all (below); in debug mode the check reports.
    env = production_env(DEBUG="true")
    for name in SECRETS:
        del env[name]

    result = manage_forked("check", "--deploy", env=env)

    assert result.returncode != 0
    for name in SECRETS:
        assert f"{name} is missing or is the demo key" in result.stderr or (
            f"{name} contains the demo key" in result.stderr
        )


def test_check_deploy_warns_that_a_per_process_cache_is_not_shared():
    result = manage_forked("check", "--deploy", env=production_env(CACHE_URL="locmemcache://"))

    assert "connvo.W001" in result.stderr
    assert "per gunicorn worker" in result.stderr


def test_check_deploy_warns_that_push_without_a_relay_can_lose_answers():
    result = manage_forked("check", "--deploy", env=production_env(CONNVO_PUSH_RELAY=""))

    assert "connvo.W002" in result.stderr
    assert "a push worker that dies loses the answers" in result.stderr
    # Not when nothing is pushed.
    quiet = manage_forked(
        "check", "--deploy", env=production_env(CONNVO_PUSH_RELAY="", CONNVO_PUSH="0")
    )
    assert quiet.returncode == 0 and "connvo.W002" not in quiet.stderr, quiet.stderr


def test_a_relay_socket_that_is_not_an_absolute_path_is_refused():
    for wrong in ("relay.sock", "/run/" + "x" * 120 + ".sock"):
        result = manage_forked("check", env=production_env(CONNVO_PUSH_RELAY=wrong))

        assert result.returncode != 0
        assert "CONNVO_PUSH_RELAY must be the absolute path of a Unix socket" in result.stderr


def test_an_old_demo_key_left_in_the_rotation_is_refused(settings):
    settings.SECRET_KEY = "x" * 60
    settings.AUDIT_CHAIN_KEYS = ["y" * 60]
    settings.TOKEN_ENCRYPTION_KEYS = [
        "kX8vJ3m2Yb1QJtq3cK0a7y4Q0mH3V1qg9rXx1yJ3bHk=",
        django_settings.DEMO_TOKEN_ENCRYPTION_KEY,
    ]

    assert [p.variable for p in secret_problems()] == ["TOKEN_ENCRYPTION_KEYS"]


def test_a_malformed_encryption_key_is_refused(settings):
    settings.TOKEN_ENCRYPTION_KEYS = ["not-a-fernet-key"]

    messages = [p.message for p in secret_problems()]

    assert "TOKEN_ENCRYPTION_KEYS contains something that is not a Fernet key." in messages


def test_debug_serving_accepts_the_demo_secrets(settings):
    settings.DEBUG = True

    assert serving_problems() == []


@pytest.mark.parametrize("missing", SECRETS)
def test_gunicorn_refuses_to_start_without_each_secret(missing):
    env = production_env(GUNICORN_BIND="127.0.0.1:0")
    del env[missing]

    result = subprocess.run(  # noqa: S603 (the test's own command line)
        [str(GUNICORN), "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert f"missing or demo secret: {missing}." in result.stderr
    # Refused while reading the settings, before any worker: one line, no traceback.
    assert "The console's configuration is invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Booting worker" not in result.stderr


def test_gunicorn_refuses_a_bad_setting_with_its_message():
    env = production_env(DEBUG="maybe")

    result = subprocess.run(  # noqa: S603 (the test's own command line)
        [str(GUNICORN), "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "DEBUG must be true or false, not 'maybe'" in result.stderr


def test_gunicorn_serves_under_a_production_environment(tmp_path, tmp_path_factory):
    static_root = collect_static(tmp_path_factory)
    env = production_env(
        STATIC_ROOT=str(static_root), DATABASE_URL=f"sqlite:///{tmp_path / 'console.sqlite3'}"
    )
    migrated = manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    server = Gunicorn(env, tmp_path, "console")
    try:
        server.wait_until_serving()
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        page = requests.get(
            f"{server.url}/accounts/login/",
            headers={"Host": "console.intranet.example", "X-Forwarded-Proto": "https"},
            timeout=10,
        )
    finally:
        server.stop()

    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "database": "ok",
        "cache": "ok",
        "keys": "ok",
        "migrations": "ok",
    }
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Content-Security-Policy" in page.headers
    lines = [json.loads(line) for line in server.logs().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert {line["path"] for line in access} >= {"/healthz", "/readyz", "/accounts/login/"}
    assert all(line["request_id"] for line in access)


def test_the_demo_key_is_refused_as_a_fallback_too(settings):
    settings.SECRET_KEY = "x" * 60
    settings.SECRET_KEY_FALLBACKS = [django_settings.DEMO_SECRET_KEY]

    assert "SECRET_KEY_FALLBACKS contains the demo key: remove it." in [
        p.message for p in secret_problems()
    ]


def test_the_demo_audit_chain_key_is_refused_as_an_earlier_key_too(settings):
    settings.SECRET_KEY = "x" * 60
    settings.TOKEN_ENCRYPTION_KEYS = ["kX8vJ3m2Yb1QJtq3cK0a7y4Q0mH3V1qg9rXx1yJ3bHk="]
    settings.AUDIT_CHAIN_KEYS = ["y" * 60, django_settings.DEMO_AUDIT_CHAIN_KEY]

    assert [p.variable for p in secret_problems()] == ["AUDIT_CHAIN_KEY"]


def test_a_rotated_audit_chain_key_list_is_accepted(settings):
    settings.SECRET_KEY = "x" * 60
    settings.TOKEN_ENCRYPTION_KEYS = ["kX8vJ3m2Yb1QJtq3cK0a7y4Q0mH3V1qg9rXx1yJ3bHk="]
    settings.AUDIT_CHAIN_KEYS = ["y" * 60, "z" * 60]

    assert secret_problems() == []


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("k" * 48 + ",too-short", "Every AUDIT_CHAIN_KEY key must be at least 32 characters long."),
        ("k" * 48 + "," + "k" * 48, "AUDIT_CHAIN_KEY names the same key twice."),
    ],
    ids=["short", "twice"],
)
def test_a_bad_audit_chain_key_list_refuses_to_start(keys, message):
    result = manage_forked("check", env=production_env(AUDIT_CHAIN_KEY=keys))

    assert result.returncode != 0
    assert message in result.stderr


def minimal_production_env(**overrides: str) -> dict[str, str]:
    """DEBUG off with only the secrets, the host names and the shared cache set: what an operator
    who forgot every other setting would run."""
    env = production_env()
    for name in (
        "CSRF_TRUSTED_ORIGINS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
        "TRUSTED_PROXIES",
    ):
        del env[name]
    return env | overrides


def test_check_deploy_is_clean_with_only_secrets_hosts_and_cache():
    result = manage_forked(
        "check", "--deploy", "--fail-level", "WARNING", env=minimal_production_env()
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


SHOW_SECURITY = (
    "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
    " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS)"
)


def test_production_mode_is_secure_by_default():
    result = manage_forked(
        "shell", "--verbosity", "0", "-c", SHOW_SECURITY, env=minimal_production_env()
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "3600"]


def test_a_plain_http_lab_turns_each_protection_off_by_name():
    env = minimal_production_env(
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="0",
    )

    result = manage_forked("shell", "--verbosity", "0", "-c", SHOW_SECURITY, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False", "0"]


@pytest.mark.parametrize("secret", ["SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "AUDIT_CHAIN_KEY"])
@pytest.mark.parametrize("problem", ["missing", "demo"])
def test_settings_refuse_to_load_a_missing_or_demo_secret_without_debug(secret, problem):
    from connvo_admin import secrets as console_secrets

    env = minimal_production_env()
    if problem == "missing":
        del env[secret]
    else:
        env[secret] = {
            "SECRET_KEY": console_secrets.DEMO_SECRET_KEY,
            "TOKEN_ENCRYPTION_KEYS": console_secrets.DEMO_TOKEN_ENCRYPTION_KEY,
            "AUDIT_CHAIN_KEY": console_secrets.DEMO_AUDIT_CHAIN_KEY,
        }[secret]

    # Any WSGI server imports this module; none of them may get an application.
    result = subprocess.run(
        [sys.executable, "-c", "import connvo_admin.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"missing or demo secret: {secret}." in result.stderr
    assert "Traceback" in result.stderr  # a refusal, not a crash elsewhere
    for value in (env.get("SECRET_KEY"), env.get("AUDIT_CHAIN_KEY")):
        if value and value not in (
            console_secrets.DEMO_SECRET_KEY,
            console_secrets.DEMO_AUDIT_CHAIN_KEY,
        ):
            assert value not in result.stderr


def test_debug_mode_still_runs_on_the_demo_secrets():
    env = minimal_production_env(DEBUG="true")
    for name in ("SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "AUDIT_CHAIN_KEY"):
        del env[name]

    result = manage_forked("check", env=env)

    assert result.returncode == 0, result.stderr
