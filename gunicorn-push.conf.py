"""gunicorn for the console's push server: `gunicorn -c gunicorn-push.conf.py` (see docs/deploy.md).

Serves connvo_admin/asgi.py with uvicorn's worker class, for the Server-Sent Events streams under
/live/ only: nginx sends those here and everything else to gunicorn.conf.py's threaded workers. An
open meeting page holds one stream for as long as it is open; here it waits on the event loop, not
in a thread, so one process holds thousands. Reading the settings here makes gunicorn exit before
any worker starts on a bad setting, as gunicorn.conf.py does."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _positive_int(name, default):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(
            f"gunicorn-push.conf.py: {name} must be a whole number of at least 1, not {raw!r}."
        )
    return int(raw)


try:
    _log_level = settings.LOG_LEVEL
    _trusted_proxies = settings.TRUSTED_PROXIES
    _heartbeat = settings.CONNVO_PUSH_HEARTBEAT
except ImproperlyConfigured as exc:
    sys.exit(f"The console's configuration is invalid: {exc}")

wsgi_app = "connvo_admin.asgi:application"
bind = os.environ.get("GUNICORN_PUSH_BIND", "127.0.0.1:8001").split(",")
proc_name = "connvo-console-push"
# uvicorn's gunicorn worker (the uvicorn-worker package; uvicorn.workers is deprecated).
worker_class = "uvicorn_worker.UvicornWorker"
# Streams wait on Connvo's pushes, not on the CPU: two processes hold many thousands of them, and
# one keeps serving while the other restarts.
workers = _positive_int("GUNICORN_PUSH_WORKERS", 2)
# A worker's heartbeat to gunicorn runs on its event loop, which streams never block: the default
# timeout holds however long a stream stays open.
timeout = _positive_int("GUNICORN_PUSH_TIMEOUT", 30)
# On a restart, open streams end at once: each page falls back to polling and reconnects to
# another worker within one poll interval, so there is nothing to wait for.
graceful_timeout = 5
max_requests = 0  # a stream is one request that lasts for hours: recycling by count means nothing

forwarded_allow_ips = ",".join(_trusted_proxies) or "127.0.0.1,::1"
logger_class = "connvo_admin.logs.GunicornJsonLogger"
loglevel = _log_level.lower()
errorlog = "-"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
control_socket_disable = True
