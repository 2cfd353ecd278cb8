"""Who may open the agents' pages, and the one cross-site rule for every page that looks up.
Each guard takes a plain view or an async one (the push streams, meetings/views/push.py), so
both kinds pass the same checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from inspect import iscoroutinefunction

from django.contrib.auth.decorators import permission_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

# The codename predates the names below; renaming it would need a migration of every group's
# permissions (and of `perms.meetings.lookup_meeting` in templates) for no change in meaning.
LOOKUP_PERMISSION = "meetings.lookup_meeting"
lookup_permission_required = permission_required(LOOKUP_PERMISSION, raise_exception=True)

View = Callable[..., HttpResponse]


def login_required_whole_page(view: View) -> View:
    """Django's login_required, except that a live-refresh request whose session has expired
    moves the whole page to the sign-in page instead of swapping a login form into the page."""

    def to_login(request: HttpRequest) -> HttpResponse:
        login = redirect_to_login(request.get_full_path())
        if request.htmx:
            return HttpResponseClientRedirect(login["Location"])
        return login

    if iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if (await request.auser()).is_authenticated:
                return await view(request, *args, **kwargs)
            return to_login(request)

        return async_wrapper

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        return to_login(request)

    return wrapper


def agent_view(view: View) -> View:
    """A page for support agents: signed in, and allowed to look meetings up."""
    return login_required_whole_page(lookup_permission_required(view))


def start_page_permission(view: View) -> View:
    """The start page is the lookup page; someone who may only read the audit log lands on the
    audit log instead of a refusal (this is where sign-in sends everyone)."""

    guarded = lookup_permission_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.has_perm(LOOKUP_PERMISSION) and user.has_perm("audit.view_auditentry"):
            return redirect("audit:list")
        return guarded(request, *args, **kwargs)

    return wrapper


# Fetch Metadata: the console's own pages ("same-origin") and what the agent opened themselves (a
# bookmark, a typed address: "none"). A request without the header (an old browser, a script)
# cannot be told apart and looks up as it always did.
_LOOKS_UP_FROM = {"same-origin", "none"}


def asks_before_looking_up(confirm: Callable[..., HttpResponse]) -> Callable[[View], View]:
    """For every GET that would look up in the agent's name (a Connvo call, an audit entry, a
    count against their limit): when another site sent the agent here (`cross-site`, or
    `same-site`: another intranet host's link or <img>), answer with `confirm` instead, which
    shows what would be looked up and lets the agent confirm from the console itself. SameSite=Lax
    sends the session cookie with such a top-level GET, so the page must ask."""

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
    site = request.headers.get("Sec-Fetch-Site")
    return request.method == "GET" and site is not None and site not in _LOOKS_UP_FROM
