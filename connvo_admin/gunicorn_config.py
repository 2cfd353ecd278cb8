"""What gunicorn.conf.py (the app) and gunicorn-push.conf.py (the push server) share: reading a
whole-number override from the environment, reading the console's settings so that gunicorn exits
before any worker starts on a bad one, and the proxy and logging settings both servers run with."""

import os
import sys
from typing import Any


def positive_int(config: str, name: str, default: int) -> int:
    """The environment's `name` as a whole number of at least 1, or `default` when it is unset;
    anything else stops gunicorn with a message naming the file and the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"{config}: {name} must be a whole number of at least 1, not {raw!r}.")
    return int(raw)


def console_settings(*names: str) -> dict[str, Any]:
    """The console's settings `names` (and LOG_LEVEL, TRUSTED_PROXIES). Reading them loads
    settings.py, which refuses a bad setting (a missing or demo secret unless DEBUG is on): that
    stops gunicorn here, with Django's message, before a worker starts."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return {name: getattr(settings, name) for name in ("LOG_LEVEL", "TRUSTED_PROXIES", *names)}
    except ImproperlyConfigured as exc:
        sys.exit(f"The console's configuration is invalid: {exc}")


def proxy_and_logs(console: dict[str, Any]) -> dict[str, Any]:
    """gunicorn settings both servers share: who may say the client's scheme (the console's
    TRUSTED_PROXIES, which it also believes about the client's address: one list, so the two never
    disagree; empty trusts no one), JSON logs like the console's, and no control socket (its
    default path would be one path shared by every instance on the host)."""
    return {
        "forwarded_allow_ips": ",".join(console["TRUSTED_PROXIES"]),
        "logger_class": "connvo_admin.logs.GunicornJsonLogger",
        "loglevel": console["LOG_LEVEL"].lower(),
        "errorlog": "-",
        "accesslog": os.environ.get("GUNICORN_ACCESS_LOG", "-") or None,
        "control_socket_disable": True,
    }
