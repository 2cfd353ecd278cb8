"""Who may open the agents' pages, and the cross-site rule for every page that looks up. Each
guard takes a plain view or an async one (the push streams, meetings/views/push.py), so both
kinds pass the same checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from inspect import iscoroutinefunction

from django.contrib.auth.decorators import permission_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

from audit.models import VIEW_LOG_PERMISSION
from connvo_admin.cross_site import asks_before_acting

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
        if not user.has_perm(LOOKUP_PERMISSION) and user.has_perm(VIEW_LOG_PERMISSION):
            return redirect("audit:list")
        return guarded(request, *args, **kwargs)

    return wrapper


# The console's one cross-site rule (connvo_admin/cross_site.py), which the audit pages share, by
# the name the agents' pages know it by: a link from another site opens the lookup form filled in.
asks_before_looking_up = asks_before_acting
