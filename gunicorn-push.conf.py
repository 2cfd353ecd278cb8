"""gunicorn for the console's push server: `gunicorn -c gunicorn-push.conf.py` (see docs/deploy.md).

Serves connvo_admin/asgi.py with uvicorn's worker class, for the Server-Sent Events streams under
/live/ only: nginx sends those here and everything else to gunicorn.conf.py's threaded workers. An
open meeting page holds one stream for as long as it is open; here it waits on the event loop, not
in a thread, so one process holds thousands. Reading the settings here makes gunicorn exit before
any worker starts on a bad setting, as gunicorn.conf.py does."""

import os

from connvo_admin.gunicorn_config import console_settings, positive_int, proxy_and_logs

_console = console_settings("CONNVO_PUSH_HEARTBEAT")


def _positive_int(name, default):
    return positive_int("gunicorn-push.conf.py", name, default)


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

# The client's scheme and address come from TRUSTED_PROXIES only; JSON logs; no control socket.
globals().update(proxy_and_logs(_console))
