"""ASGI entry point for the push server: `gunicorn -c gunicorn-push.conf.py` serves it with
uvicorn's worker, for the long-lived Server-Sent Events streams under /live/ only (nginx sends
everything else to the WSGI workers of gunicorn.conf.py; docs/deploy.md). An open stream waits on
the event loop, not in a thread. `make demo` and the push tests serve the whole console from it
on one port (each sync view runs in a thread of its own)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")

application = get_asgi_application()
