"""Structured logs: one JSON object per line, for the console's own lines and for gunicorn's.

Every line written while a request is handled carries that request's id (set by
`connvo_admin.middleware.RequestLogMiddleware`). Nothing in the console logs a token, a cookie or
an Authorization header; as a second line of defence, anything shaped like a bearer credential or
a JWT is masked before a line is written, in case an exception message ever contains one."""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from gunicorn import glogging

request_id_var: ContextVar[str] = ContextVar("request_id", default="")

REDACTED = "[redacted]"
_SECRETS = [
    # A JWT (Connvo tokens, identity-provider tokens): three base64url parts, the first "eyJ".
    re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
    # An Authorization header's credentials.
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
]
# Attributes every LogRecord has: anything else on a record came from `extra=` and is a field.
_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# `extra` values that are objects, not facts (Django's `django.request` passes the request).
_SKIPPED_EXTRAS = {"request"}


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(REDACTED, text)
    return text


def _field(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, request_id (when there is one), pid, then any `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        line["pid"] = record.process
        for key, value in vars(record).items():
            if key in _RECORD_ATTRS or key in _SKIPPED_EXTRAS or key.startswith("_"):
                continue
            line.setdefault(key, _field(value))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class GunicornJsonLogger(glogging.Logger):
    """gunicorn's error and access logs in the console's JSON format (gunicorn.conf.py).

    The access line names the method, the path without its query string, the status, the size,
    the duration and the request id the console answered with; never a header or a cookie."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = int(status.split(None, 1)[0])
        request_id = ""
        for name, value in resp.headers:
            if name.lower() == "x-request-id":
                request_id = value
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "remote_addr": environ.get("REMOTE_ADDR", ""),
            },
        )
