"""The console's one cross-site rule for GETs that act in the signed-in person's name (an agent's
lookup, an auditor's page view or export, each recorded in the audit log under their name): a
request another site sent is answered with a question instead. Shared by the agents' pages
(meetings/views/access.py) and the audit pages (audit/views.py); Django only."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from inspect import iscoroutinefunction

from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]

# Fetch Metadata: the console's own pages ("same-origin") and what the person opened themselves
# (a bookmark, a typed address: "none"). A request without the header (an old browser, a script)
# cannot be told apart and acts as it always did.
_ACTS_FROM = {"same-origin", "none"}


def asks_before_acting(confirm: Callable[..., HttpResponse]) -> Callable[[View], View]:
    """For every GET that would act in the signed-in person's name: when another site sent them
    here (`cross-site`, or `same-site`: another intranet host's link or <img>), answer with
    `confirm` (called with the view's arguments) instead, which shows what would happen and lets
    them confirm from the console itself. SameSite=Lax sends the session cookie with such a
    top-level GET, so the page must ask. Takes a plain view or an async one."""

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
                if _sent_from_elsewhere(request):
                    return confirm(request, *args, **kwargs)
                return await view(request, *args, **kwargs)

            return async_wrapper

        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if _sent_from_elsewhere(request):
                return confirm(request, *args, **kwargs)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _sent_from_elsewhere(request: HttpRequest) -> bool:
    """A GET the browser says another site (or another host of the intranet) sent."""
    site = request.headers.get("Sec-Fetch-Site")
    return request.method == "GET" and site is not None and site not in _ACTS_FROM
