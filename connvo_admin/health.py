"""Health endpoints for load balancers and monitoring, in JSON, without authentication.

`/healthz`: the process answers (no dependency is touched). `/readyz`: this host can serve, i.e.
its database answers and takes writes, no migration is pending and its keys are configured
(READINESS_CHECKS). The cache (Redis) and each Connvo deployment are reported too, but do not fail
readiness: the console serves without its cache (sessions are read from the database,
accounts/session_store.py; lookups go on uncounted, meetings/ratelimit.py), and a Connvo outage is
not this host's fault; as both are shared by every host, failing readiness on them would take every
host out of the pool at once, and with it the console's explanation of the outage.

Served by a middleware ahead of the Host-header check and the HTTPS redirect: load balancers probe
each host by its address, over plain HTTP. Bodies name checks and deployments, never a secret, a
URL or an error message."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

from .checks import serving_problems

logger = logging.getLogger(__name__)

OK = "ok"
# The database answers, but another connection holds the write lock.
LOCKED = "locked"
# How long the readiness probe waits for another connection's write lock (milliseconds).
LOCK_WAIT_MS = 500
# How long one host remembers whether it could reach Connvo, so frequent probes stay cheap.
CONNVO_PROBE_TTL = 30.0
CONNVO_PROBE_TIMEOUT = 2.0


def healthz(request: HttpRequest) -> HttpResponse:
    return _json({"status": "ok"}, status=200)


# The checks whose failure takes this host out of the pool (503), each with the results that pass;
# any result but "ok" (here or of another check) makes the host "degraded" (200). A database
# briefly locked by another connection's write (a purge, a migration) passes: writes wait for it,
# and every host shares it.
READINESS_CHECKS = {"database": {OK, LOCKED}, "migrations": {OK}, "keys": {OK}}


def readyz(request: HttpRequest) -> HttpResponse:
    checks = {"database": _database(), "cache": _cache(), "keys": _keys()}
    if checks["database"] in READINESS_CHECKS["database"]:
        checks["migrations"] = _migrations()
    ready = all(checks.get(name) in passing for name, passing in READINESS_CHECKS.items())
    degraded = any(result != OK for result in checks.values())
    body = {
        "status": "not ready" if not ready else "degraded" if degraded else "ready",
        "checks": checks,
        "connvo": connvo_reachability(),
    }
    return _json(body, status=200 if ready else 503)


def _json(body: dict, *, status: int) -> HttpResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("readiness: the database did not answer (%s)", type(exc).__name__)
        return "unreachable"
    try:
        # A write that changes nothing, rolled back: a read-only SQLite file, a read-only
        # PostgreSQL (a standby, a full disk) answers SELECT but refuses this. It waits for
        # another connection's write (a purge, a migration) only briefly: the probe must answer
        # well within the load balancer's timeout, not after SQLite's 20 s busy timeout.
        with _short_lock_wait(), transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")
            cursor.execute("UPDATE django_migrations SET app = app WHERE 1 = 0")
            transaction.set_rollback(True)
    except DatabaseError as exc:
        if _is_lock_wait(exc):
            # Writes wait for the lock (up to the busy timeout) rather than fail, and every host
            # shares the database: taking hosts out of the pool for it would help no one.
            logger.info("readiness: the database is locked by another connection's write")
            return LOCKED
        logger.warning("readiness: the database cannot be written (%s)", type(exc).__name__)
        return "read-only"
    return OK


@contextmanager
def _short_lock_wait() -> Iterator[None]:
    """SQLite: wait at most LOCK_WAIT_MS for another connection's write lock, then the
    connection's own busy timeout again."""
    if connection.vendor != "sqlite":
        yield
        return
    raw = connection.connection
    (busy_ms,) = raw.execute("PRAGMA busy_timeout").fetchone()
    raw.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")


def _is_lock_wait(exc: DatabaseError) -> bool:
    """Another connection holds the lock: SQLite's "database is locked" (SQLITE_BUSY), or
    PostgreSQL's lock_not_available (55P03) after lock_timeout."""
    if connection.vendor == "sqlite":
        return "locked" in str(exc)
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


# How many migrations were recorded when this process last found none pending: while that count
# is unchanged, there are still none (loading the migration plan costs milliseconds of CPU on
# every probe, and probes must stay cheap when the console is busy).
_complete_at: int | None = None


def _applied_count() -> int | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM django_migrations")
            return cursor.fetchone()[0]
    except DatabaseError:
        return None  # no table yet: the full check below says what is pending


def _migrations() -> str:
    """A host started before `migrate` ran (or with an older release's code against a newer
    schema's plan) must not take traffic: its queries would fail."""
    global _complete_at
    applied = _applied_count()
    if applied is not None and applied == _complete_at:
        return OK
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        logger.warning("readiness: migrations could not be read (%s)", type(exc).__name__)
        return "unreadable"
    if pending:
        return f"{len(pending)} pending: run manage.py migrate"
    _complete_at = applied
    return OK


def _cache() -> str:
    key = f"readyz:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=10)
        answered = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:  # whatever the backend raises, this host cannot use its cache
        logger.warning("readiness: the cache did not answer (%s)", type(exc).__name__)
        return "unreachable"
    return OK if answered else "not storing"


def _keys() -> str:
    problems = serving_problems()
    if problems:
        return "missing or demo: " + ", ".join(problem.variable for problem in problems)
    return OK


# --- Connvo reachability ------------------------------------------------------------------------
# A TCP connection to each deployment's host: it needs no token and sends nothing to Connvo
# (the Connvo client, meetings/connvo.py, stays the only code that speaks HTTP to Connvo).

_probe_lock = threading.Lock()
_probed: dict[str, tuple[float, str]] = {}


def _reach(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = min(settings.CONNVO_CONNECT_TIMEOUT, CONNVO_PROBE_TIMEOUT)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return "reachable"
    except OSError:
        return "unreachable"


def connvo_reachability() -> dict[str, str]:
    now = time.monotonic()
    deployments = dict(settings.CONNVO_DEPLOYMENTS)
    with _probe_lock:
        fresh = {
            name: result
            for name, (at, result) in _probed.items()
            if name in deployments and now - at < CONNVO_PROBE_TTL
        }
    stale = {name: url for name, url in deployments.items() if name not in fresh}
    if stale:
        with ThreadPoolExecutor(max_workers=len(stale)) as pool:
            results = dict(zip(stale, pool.map(_reach, stale.values()), strict=True))
        with _probe_lock:
            _probed.update({name: (now, result) for name, result in results.items()})
        fresh |= results
    return {name: fresh[name] for name in deployments}


def forget_connvo_probes() -> None:
    with _probe_lock:
        _probed.clear()


_VIEWS: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = _VIEWS.get(request.path_info.rstrip("/") or "/")
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return view(request)
