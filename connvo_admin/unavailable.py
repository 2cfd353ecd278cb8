"""The console's own database failing (read-only, full, or gone): every request that meets the
failure gets one clear 503 page instead of the generic 500, and a meeting page's live refresh
shows its failing state and backs off, as it does when Connvo fails.

A `DatabaseError` from a view is caught by the middleware; one from another middleware (the
session read before any view runs, the session write after it) reaches `server_error`, the
console's handler500. Either way whatever the request was doing was rolled back with its
transaction, so the page can say that nothing was changed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import UnionType

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from django.views import defaults

from connvo_admin.outcomes import LookupFailed, Outcome

logger = logging.getLogger(__name__)

TITLE = "The console's database is unavailable"
# A restart or a failover takes seconds: a page (and a live refresh) tries again soon.
RETRY_AFTER_SECONDS = 5
# A connection that is gone raises InterfaceError, which is not a DatabaseError in Django's (PEP
# 249's) hierarchy.
DATABASE_FAILURES = (DatabaseError, InterfaceError)


class DatabaseUnavailable(LookupFailed):
    """What a failed live refresh shows (as a Connvo failure would): the refresh could not be
    made or recorded, and the page keeps trying, slower."""

    outcome = Outcome.AUDIT_UNAVAILABLE
    title = f"{TITLE}; nothing was changed"


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_FAILURES):
            return database_unavailable(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the database page for a database failure, Django's 500 page otherwise."""
    exception = sys.exception()
    if isinstance(exception, DATABASE_FAILURES):
        return database_unavailable(request, exception)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400. The session could not be saved at the end of a request because the database
    went away meanwhile: Django calls that a SessionInterrupted (400). A session deleted by a
    sign-out in another tab fails differently (an update of no rows), and keeps Django's answer."""
    cause = _caused_by(exception, OperationalError | InterfaceError)
    if cause is not None:
        return database_unavailable(request, cause)
    return defaults.bad_request(request, exception)


def _caused_by(exception: BaseException | None, kinds: type | UnionType) -> BaseException | None:
    seen = 0
    while exception is not None and seen < 10:
        if isinstance(exception, kinds):
            return exception
        exception = exception.__cause__ or exception.__context__
        seen += 1
    return None


def _fallback(request: HttpRequest) -> Callable[[HttpRequest, LookupFailed], HttpResponse] | None:
    """A view may answer a database failure itself, for its htmx requests (the meeting page's
    live refresh shows its failing state): `view.on_database_unavailable`. Looked up here so that
    this module imports no app."""
    if request.headers.get("HX-Request") != "true":
        return None
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    return getattr(match.func, "on_database_unavailable", None)


def database_unavailable(request: HttpRequest, exception: Exception) -> HttpResponse:
    # The class names the failure; its text may quote stored values, so it stays out of the log.
    logger.error("the console's database failed: %s", type(exception).__name__)
    fallback = _fallback(request)
    if fallback is not None:
        return fallback(request, DatabaseUnavailable(TITLE))
    if request.headers.get("HX-Request") == "true":
        # A page's own request (a table's live refresh): htmx swaps no 503, and the page shows
        # these words on its live line as they are (static/js/console.js), with the wait.
        return retry_later(f"{TITLE}; nothing was changed.", seconds=RETRY_AFTER_SECONDS)
    # Not `render(request, …)`: the context processors would ask the database who is signed in.
    page = render_to_string("503.html", {"title": f"{TITLE}; nothing was changed."})
    return _unavailable(HttpResponse(page), seconds=RETRY_AFTER_SECONDS)


def retry_later(words: str, *, seconds: int) -> HttpResponse:
    """503 to a page's own request: `words`, one plain line a live page shows as it is, and when
    to ask again (Retry-After, which the page honours)."""
    response = HttpResponse(f"{words}\n", content_type="text/plain; charset=utf-8")
    return _unavailable(response, seconds=seconds)


def _unavailable(response: HttpResponse, *, seconds: int) -> HttpResponse:
    """`response` as a 503 that says when to ask again and is never cached."""
    response.status_code = 503
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response
