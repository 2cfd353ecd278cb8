"""A complete production environment for running the console in a subprocess (manage.py,
gunicorn): fresh secrets, TLS-proxy settings, Redis DB 5. Helpers to start and stop gunicorn."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")
TEST_REDIS = "redis://127.0.0.1:6379/5"
# Only what a process needs to run; nothing from the developer's own console settings.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR")


def production_env(**overrides: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env |= {
        "DJANGO_SETTINGS_MODULE": "connvo_admin.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "AUDIT_CHAIN_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "console.intranet.example,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://console.intranet.example",
        "DATABASE_URL": "sqlite:///:memory:",
        "CACHE_URL": TEST_REDIS,
        "CACHE_KEY_PREFIX": f"test-{secrets.token_hex(6)}",
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
        "TRUSTED_PROXIES": "127.0.0.1",
        "CONNVO_DEPLOYMENTS": "dev=http://127.0.0.1:9",
        "CONNVO_DEFAULT_DEPLOYMENT": "dev",
        "CONNVO_PRODUCTION_DEPLOYMENTS": "",
    }
    return env | overrides


def manage(*args: str, env: dict[str, str], input: str | None = None, timeout: float = 120):
    return subprocess.run(  # noqa: S603 (the test's own command line)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL to its whole group if it has not exited within 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def set_up(env: dict[str, str], *, password: str, token: str) -> None:
    """The console's database for a subprocess test: migrated, the agent CREATE_AGENT makes,
    and the agent's Connvo token for the deployment `dev` saved."""
    for step in (
        manage("migrate", "--noinput", env=env),
        manage("shell", "-c", CREATE_AGENT.format(password=password), env=env),
        manage(
            "connvo_token", "set", "--user", "agent", "--deployment", "dev", env=env, input=token
        ),
    ):
        assert step.returncode == 0, step.stderr


class Gunicorn:
    """One console instance under gunicorn.conf.py (or, `push`, the push server under
    gunicorn-push.conf.py), its stdout and stderr kept in files."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, name: str, *, push: bool = False
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        if push:
            config = "gunicorn-push.conf.py"
            own = {"GUNICORN_PUSH_BIND": f"127.0.0.1:{self.port}", "GUNICORN_PUSH_WORKERS": "1"}
        else:
            config = "gunicorn.conf.py"
            own = {
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "GUNICORN_WORKERS": "2",
                "GUNICORN_THREADS": "2",
            }
        env = own | env
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(  # noqa: S603 (the test's own command line)
                [str(GUNICORN), "-c", config],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{self.logs()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not start serving:\n{self.logs()}")

    def stop(self) -> None:
        stop(self.process)

    def logs(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def workers(self) -> set[int]:
        """The process ids of gunicorn's live workers."""
        return children(self.process.pid)


def children(pid: int, *, zombies: bool = False) -> set[int]:
    """The process ids of `pid`'s live children; with `zombies`, also those that exited and
    that `pid` has not yet waited for (their CPU time is still theirs, not yet `pid`'s)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and (zombies or fields[0] != "Z"):
            found.add(int(stat.parent.name))
    return found


class Relay:
    """The host's push relay (`manage.py push_relay`, meetings/relay.py) on `env`'s
    CONNVO_PUSH_RELAY, its output kept in a file."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.path = env["CONNVO_PUSH_RELAY"]
        self.log_path = log_dir / "relay.log"
        with self.log_path.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "push_relay"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the push relay exited:\n{self.log_path.read_text()}")
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(self.path)
                    return  # it reads no stream from this one, and lets it go
                except OSError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"the push relay did not listen:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop(self.process)


_collected: list[Path] = []


def collect_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A STATIC_ROOT for subprocesses, collected once per test run: production serves
    collectstatic's manifest (whitenoise)."""
    if not _collected:
        static_root = tmp_path_factory.mktemp("static")
        env = production_env(STATIC_ROOT=str(static_root))
        result = manage("collectstatic", "--noinput", env=env)
        assert result.returncode == 0, result.stderr
        _collected.append(static_root)
    return _collected[0]


# `manage.py shell -c` input: the support agent the subprocess tests sign in as.
CREATE_AGENT = """
from django.contrib.auth.models import Group, User
user = User.objects.create_user("agent", password={password!r})
user.groups.add(Group.objects.get(name="Support"))
"""


def _server_url(database: str) -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database}"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of the test's own on the suite's server (for consoles in
    subprocesses, which the test database's transactions would not show); its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}"
    admin = psycopg.connect(_server_url("postgres"), autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _server_url(name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def shell(code: str, env: dict[str, str]) -> str:
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after the shell's "N objects imported"


def signed_in(host: Gunicorn, password: str) -> requests.Session:
    """A session of the agent CREATE_AGENT made, signed in on `host`."""
    session = requests.Session()
    page = session.get(f"{host.url}/accounts/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{host.url}/accounts/login/",
        data={"username": "agent", "password": password, "csrfmiddlewaretoken": csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302
    return session
