"""Every request gets an id and one log line (method, path, status, duration, who, from where).

The id is `request.request_id`, is sent back as `X-Request-ID`, and is on every log line written
while the request is handled. An `X-Request-ID` is taken from the request only when it comes
from one of TRUSTED_PROXIES (nginx's `$request_id`), so a client cannot choose its own."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from .client_address import client_ip
from .logs import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Load balancers probe these every few seconds, and every page loads a few static files: their
# lines are for debugging only.
_QUIET_PATHS = {"/healthz", "/readyz"}


def _is_quiet(path: str) -> bool:
    return path in _QUIET_PATHS or path.startswith(settings.STATIC_URL)


logger = logging.getLogger("console.request")


def _request_id(request: HttpRequest) -> str:
    if request.META.get("REMOTE_ADDR") in settings.TRUSTED_PROXIES:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        if _VALID_REQUEST_ID.fullmatch(offered):
            return offered
    return uuid.uuid4().hex


def _username(request: HttpRequest) -> str:
    user = getattr(request, "user", None)  # not there for health probes and static files
    try:
        return user.get_username() if user is not None and user.is_authenticated else ""
    except DatabaseError:
        # The session could not be read (the request has failed for that already): the line
        # must still be written.
        return ""


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = _request_id(request)
        context_token = request_id_var.set(request.request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request.request_id
            logger.log(
                logging.DEBUG if _is_quiet(request.path) else logging.INFO,
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "user": _username(request),
                    "client_ip": client_ip(request),
                    "htmx": bool(request.htmx),
                },
            )
            return response
        finally:
            request_id_var.reset(context_token)
