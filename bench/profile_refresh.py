"""Profile the live refresh in-process with pyinstrument: where one unchanged refresh spends its
time, from the middleware to the audit commit.

    CACHE_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/profile_refresh.py --requests 500

Runs on a PostgreSQL database of its own on 127.0.0.1:5432 (created, migrated and dropped at the
end: its audit chain is keyed by this run's AUDIT_CHAIN_KEY), or on the empty database DATABASE_URL
names, with a user `profile-agent`. Redis keys go under a prefix of its own and are deleted at the
end. Prints pyinstrument's report
and the mean time per refresh; nothing here asserts a time."""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
POSTGRES = "postgres://postgres@127.0.0.1:5432"
PREFIX = f"profile-{secrets.token_hex(6)}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
# Production mode, as under gunicorn: DEBUG off with real secrets of the run's own (settings refuse
# missing or demo ones). The test client speaks plain HTTP, so the TLS redirect is turned off.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("AUDIT_CHAIN_KEY", secrets.token_urlsafe(48))
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CONN_MAX_AGE", "60")
os.environ["CACHE_KEY_PREFIX"] = PREFIX
os.environ["CONNVO_LOOKUPS_PER_MINUTE"] = "1000000"


def main() -> None:
    from cryptography.fernet import Fernet

    os.environ.setdefault("TOKEN_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--html", help="also write pyinstrument's HTML report here")
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="cProfile's functions by own time instead of pyinstrument's call tree",
    )
    parser.add_argument(
        "--no-profiler", action="store_true", help="only the time and CPU per refresh, unprofiled"
    )
    parser.add_argument("--sort", default="tottime", help="with --cprofile: tottime, cumulative…")
    parser.add_argument("--top", type=int, default=40, help="with --cprofile: functions listed")
    args = parser.parse_args()

    from fakeconnvo.server import FakeConnvo

    own_database = None
    if "DATABASE_URL" not in os.environ:
        import psycopg

        own_database = f"bench_profile_{secrets.token_hex(4)}"
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {own_database}")
        os.environ["DATABASE_URL"] = f"{POSTGRES}/{own_database}"
    try:
        _profile(args, FakeConnvo)
    finally:
        if own_database:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {own_database} WITH (FORCE)")


def _profile(args, FakeConnvo) -> None:
    fake = FakeConnvo().start()
    os.environ["CONNVO_DEPLOYMENTS"] = f"fast={fake.url}"
    os.environ["CONNVO_DEFAULT_DEPLOYMENT"] = "fast"

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.test import Client
    from pyinstrument import Profiler

    from meetings import pasted_tokens

    call_command("migrate", verbosity=0)
    user, created = get_user_model().objects.get_or_create(username="profile-agent")
    if created:
        user.set_password("profile-agent-password")
        user.save()
        user.groups.add(Group.objects.get(name="Support"))
    pasted_tokens.store_token(user=user, deployment_name="fast", raw_token=fake.token_for("agent"))
    client = Client()
    client.force_login(user)
    page = f"/meetings/fast/{fake.meeting_id('standup')}/"
    first = client.get(page, {"seen": "", "failures": 0}, headers={"HX-Request": "true"})
    # What the page's poller sends back: its hx-vals (seen, failures, interval, and its span).
    query = json.loads(first.content.split(b"hx-vals='")[1].split(b"'")[0])
    for _ in range(50):
        client.get(page, query, headers={"HX-Request": "true"})

    profiler = cProfile.Profile() if args.cprofile else Profiler(interval=0.0002)
    if args.no_profiler:
        profiler = _NoProfiler()
    from django.db import connection

    statements = []
    backend = _backend_cpu()
    wal = _wal_position()
    cpu = time.process_time()
    started = time.perf_counter()
    with connection.execute_wrapper(lambda execute, *call: statements.append(1) or execute(*call)):
        profiler.enable() if args.cprofile else profiler.start()
        for _ in range(args.requests):
            response = client.get(page, query, headers={"HX-Request": "true"})
            assert response.status_code == 204, response.status_code
        profiler.disable() if args.cprofile else profiler.stop()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    backend = _backend_cpu() - backend
    wal = _wal_position() - wal
    if args.no_profiler:
        pass
    elif args.cprofile:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    else:
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    profiled = "unprofiled" if args.no_profiler else "profiled"
    print(f"{elapsed / args.requests * 1000:.2f} ms per unchanged refresh ({profiled})")
    # CPU time, which the machine's other work does not inflate (wall time does): this process
    # (the console, the profiler, and the fake Connvo's thread) and its PostgreSQL backend.
    print(
        f"CPU per refresh: this process {cpu / args.requests * 1000:.2f} ms, "
        f"its PostgreSQL backend {backend / args.requests * 1000:.2f} ms"
    )
    # What the database is sent and writes: SQL statements (BEGIN and COMMIT are not among
    # them: psycopg sends those itself), and the write-ahead log the server wrote meanwhile
    # (everything on the server: run it with nothing else writing to PostgreSQL).
    wal_text = f", write-ahead log {wal / args.requests:.0f} bytes" if wal else ""
    print(f"per refresh: {len(statements) / args.requests:.2f} SQL statements{wal_text}")
    if args.html and not (args.cprofile or args.no_profiler):
        Path(args.html).write_text(profiler.output_html())
    fake.stop()

    from django.core.cache import cache

    cache.clear() if "locmem" in type(cache).__module__ else _delete_prefix()


class _NoProfiler:
    def start(self) -> None: ...

    stop = enable = disable = start


def _backend_cpu() -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (0 elsewhere)."""
    from django.db import connection

    from bench.live_load import process_cpu_seconds

    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return process_cpu_seconds(pid)


def _wal_position() -> int:
    """The server's write-ahead log position, in bytes (0 elsewhere)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - '0/0'")
        return int(cursor.fetchone()[0])


def _delete_prefix() -> None:
    import redis
    from django.conf import settings

    location = settings.CACHES["default"]["LOCATION"]
    client = redis.Redis.from_url(location if isinstance(location, str) else location[0])
    keys = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)


if __name__ == "__main__":
    main()
