"""gunicorn for the Connvo Support Console: `gunicorn -c gunicorn.conf.py` (see docs/deploy.md).

Workers and threads follow the CPU count unless GUNICORN_WORKERS / GUNICORN_THREADS say otherwise.
The worker timeout is above the longest a lookup can take (Connvo's timeouts and retries, from the
console's settings), so a slow Connvo never gets a worker killed mid-lookup. Logs are JSON, like
the console's. Reading the settings here makes gunicorn exit before any worker starts on a bad
setting, including a missing or demo SECRET_KEY, TOKEN_ENCRYPTION_KEYS or AUDIT_CHAIN_KEY (which
settings.py refuses unless DEBUG is on)."""

import math
import os

from connvo_admin.gunicorn_config import console_settings, positive_int, proxy_and_logs

_console = console_settings("CONNVO_CONNECT_TIMEOUT", "CONNVO_READ_TIMEOUT", "CONNVO_RETRIES")
_connect = _console["CONNVO_CONNECT_TIMEOUT"]
_read = _console["CONNVO_READ_TIMEOUT"]
_retries = _console["CONNVO_RETRIES"]


def _positive_int(name, default):
    return positive_int("gunicorn.conf.py", name, default)


wsgi_app = "connvo_admin.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
proc_name = "connvo-console"

# Lookups wait on Connvo, not on the CPU: threads carry the waiting, processes use the cores.
# One process per core (each runs Python code one thread at a time; more processes would only
# add memory and database connections), and enough threads that a Connvo answering slowly ties
# up threads, not the console: 30 agents waiting 4 s on Connvo leave threads free for health
# probes and everyone else. A waiting thread costs little memory, and a database connection
# while it has one open (CONN_MAX_AGE keeps it): PostgreSQL's max_connections must exceed
# workers x threads on every host together.
_cpus = os.cpu_count() or 1
# gunicorn's gthread worker, which also tells the console how many requests wait for a thread
# (connvo_admin/capacity.py: the poll interval handed out, and 503 for a refresh waiting too long).
worker_class = "connvo_admin.workers.ConsoleWorker"
workers = _positive_int("GUNICORN_WORKERS", max(2, min(_cpus, 12)))
threads = _positive_int("GUNICORN_THREADS", 32)

# The longest lookup: every attempt connects and reads to its timeout, Connvo's 503 answers ask
# for up to 5 s between attempts, plus a margin for the audit write and the page.
_longest_lookup = (_connect + _read) * (_retries + 1) + 5 * _retries
timeout = _positive_int("GUNICORN_TIMEOUT", math.ceil(_longest_lookup + 10))
# On a restart or upgrade (SIGHUP, SIGTERM), lookups in flight get as long to finish.
graceful_timeout = timeout
# Recycle workers now and then, staggered so that they never all restart together. Not too
# often: a worker's start costs a second of CPU, and 1,000 open meeting pages make 100 requests
# a second.
max_requests = _positive_int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = max(1, max_requests // 10)
# nginx keeps idle connections to gunicorn open for reuse (docs/deploy/nginx-site.conf), for less
# time than this (its upstream keepalive_timeout, 4 s), so that gunicorn never closes one that
# nginx is about to send a request on.
keepalive = 5

# The client's scheme and address come from TRUSTED_PROXIES only; JSON logs; no control socket.
globals().update(proxy_and_logs(_console))

# A triage table's URL holds its meeting IDs (up to CONNVO_TABLE_MAX_MEETINGS, ~33 bytes each),
# and its live refresh adds which rows are settled: more than gunicorn's default 4094 bytes.
limit_request_line = 8190
