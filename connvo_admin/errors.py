"""The console's answer to an error that no view handled. A database that cannot be reached (a
restart, a failover, a full disk) is not a bug in the console: it gets its own page, 503 with
Retry-After, and on a live refresh the meeting page's failing state, which backs off and
recovers by itself, instead of the generic 500 page."""

from __future__ import annotations

import sys

from django.db import DatabaseError, InterfaceError
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.urls import Resolver404, resolve
from django.views.defaults import server_error as generic_server_error

RETRY_AFTER_SECONDS = 5


class DatabaseUnavailable:
    """What the agent is told (the live block shows `title`)."""

    title = "the console's database is unavailable"
    message = "The console's database is unavailable; nothing was changed. Try again in a moment."


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this handler while it handles the exception, so the exception is at hand.
    if isinstance(sys.exception(), DatabaseError | InterfaceError):
        return database_unavailable(request)
    return generic_server_error(request)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    if request.headers.get("HX-Request") == "true":
        refresh = _meeting_refresh(request)
        if refresh is not None:
            from meetings.views import live_refresh_failed

            return live_refresh_failed(request, **refresh, error=DatabaseUnavailable())
    # The page does not extend base.html: that would read the session from the database.
    body = loader.render_to_string("503_database.html", {"problem": DatabaseUnavailable()})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _meeting_refresh(request: HttpRequest) -> dict[str, str] | None:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    return match.kwargs if match.view_name == "meetings:detail" else None
