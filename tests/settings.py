"""The test suite's settings: the console's own, loaded as on a developer's machine.

Production mode (DEBUG off) refuses the demo secrets and sends HTTPS-only cookies, so the suite
loads the settings with DEBUG on, as `make demo` does; pytest-django still runs every test with
DEBUG off. Tests of production mode load the settings in a subprocess (tests/production.py)."""

import os

os.environ["DEBUG"] = "true"

from connvo_admin.settings import *  # noqa: F403

# The SQLite test database is a file, as the console's own is, not SQLite's shared-cache memory
# database: there a live server's request threads share the test's one connection (Django lets
# only that connection see an in-memory database), so two requests at once, such as a page's
# refresh and another page's lookup, interleave their transactions on it and one of them fails;
# and a query that meets another connection's write fails at once ("database table is locked")
# instead of waiting out the busy timeout. A file gives every thread its own connection with the
# WAL and busy timeout of connvo_admin.settings. It lives in a private folder of memory-backed
# /dev/shm when there is one, one folder per process (each xdist worker has its own database).
_default = DATABASES["default"]  # noqa: F405
if _default["ENGINE"] == "django.db.backends.sqlite3" and _default["NAME"] in ("", ":memory:"):
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    _shm = Path("/dev/shm")  # noqa: S108 (mkdtemp makes a folder only this user can open)
    _folder = tempfile.mkdtemp(prefix="connvo-test-", dir=_shm if _shm.is_dir() else None)
    atexit.register(shutil.rmtree, _folder, ignore_errors=True)
    _default["TEST"] = {"NAME": str(Path(_folder) / "db.sqlite3")}

# pytest-django's live server is WSGI, which cannot hold a push stream open: pages poll, as they
# did before push. The push tests turn it on and serve the console from uvicorn
# (tests/test_push_view.py, tests/browser/test_live_push.py).
CONNVO_PUSH = False
# The push tests in this process record pushed answers in it (meetings/relay.py, "" ); those of
# the relay itself start `manage.py push_relay` on a socket of their own (tests/test_push_relay.py).
CONNVO_PUSH_RELAY = ""

# WhiteNoise indexes every collected static file when its middleware is made (about 130 ms for this
# STATIC_ROOT's 700 files), and every test client makes its own middleware: that was a fifth of the
# suite's time. Here it looks a file up when one is asked for instead (WhiteNoise's development
# mode). The shipped configuration, which indexes once per worker, is tested in subprocesses
# (tests/production.py, tests/test_deployment.py: static files under gunicorn and nginx).
WHITENOISE_AUTOREFRESH = True
