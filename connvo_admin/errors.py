"""The console's answer to an error that no view handled. A database that cannot be reached (a
restart, a failover, a full disk) is not a bug in the console: it gets its own page, 503 with
Retry-After, and on a live refresh the meeting page's failing state, which backs off and
recovers by itself, instead of the generic 500 page."""

from __future__ import annotations

import sys
from types import UnionType

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.urls import Resolver404, resolve
from django.views.defaults import bad_request as generic_bad_request
from django.views.defaults import server_error as generic_server_error

from .outcomes import LookupFailed, Outcome

RETRY_AFTER_SECONDS = 5


class DatabaseUnavailable(LookupFailed):
    """What the agent is told: the page shows `message`, the live block `title`. Nothing was
    looked up or recorded, as when the audit entry cannot be written."""

    outcome = Outcome.AUDIT_UNAVAILABLE
    title = "the console's database is unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The console's database is unavailable; nothing was changed. Try again in a moment."
        )


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this handler while it handles the exception, so the exception is at hand.
    if _caused_by(sys.exception(), DatabaseError | InterfaceError):
        return database_unavailable(request)
    return generic_server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    # The session could not be saved at the end of a request because the database went away
    # meanwhile: Django calls that a SessionInterrupted (400). A session deleted by a sign-out in
    # another tab fails differently (an update of no rows), and keeps Django's answer.
    if _caused_by(exception, OperationalError | InterfaceError):
        return database_unavailable(request)
    return generic_bad_request(request, exception)


def _caused_by(exception: BaseException | None, kinds: type | UnionType) -> bool:
    seen = 0
    while exception is not None and seen < 10:
        if isinstance(exception, kinds):
            return True
        exception = exception.__cause__ or exception.__context__
        seen += 1
    return False


def database_unavailable(request: HttpRequest) -> HttpResponse:
    if request.headers.get("HX-Request") == "true":
        refresh = _meeting_refresh(request)
        if refresh is not None:
            from meetings.views import live_refresh_failed

            return live_refresh_failed(request, **refresh, failure=DatabaseUnavailable())
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
