"""The test suite's settings: the console's own, loaded as on a developer's machine.

Production mode (DEBUG off) refuses the demo secrets and sends HTTPS-only cookies, so the suite
loads the settings with DEBUG on, as `make demo` does; pytest-django still runs every test with
DEBUG off. Tests of production mode load the settings in a subprocess (tests/production.py)."""

import os

os.environ["DEBUG"] = "true"

from connvo_admin.settings import *  # noqa: F403
