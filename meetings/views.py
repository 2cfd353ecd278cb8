"""Pages for support agents: look up a meeting, see it, manage their Connvo tokens."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HTMX_STOP_POLLING, HttpResponseClientRedirect

from audit import selectors
from audit.models import Via
from audit.services import Origin
from connvo_admin.outcomes import LookupFailed

from . import connect, credentials, pasted_tokens, workos_auth
from .deployments import (
    Deployment,
    UnknownDeployment,
    deployments,
    get_deployment,
    preferred_deployment,
)
from .forms import LookupForm, RemoveTokenForm, TokenForm
from .live import PollPlan, plan_after_failure, plan_after_success
from .lookups import audited_lookup

# The codename predates the names below; renaming it would need a migration of every group's
# permissions (and of `perms.meetings.lookup_meeting` in templates) for no change in meaning.
LOOKUP_PERMISSION = "meetings.lookup_meeting"
lookup_permission_required = permission_required(LOOKUP_PERMISSION, raise_exception=True)


def login_required_whole_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's login_required, except that a live-refresh request whose session has expired
    moves the whole page to the sign-in page instead of swapping a login form into the page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        to_login = redirect_to_login(request.get_full_path())
        if request.htmx:
            return HttpResponseClientRedirect(to_login["Location"])
        return to_login

    return wrapper


RECENT_LOOKUPS = 10
SESSION_DEPLOYMENT = "connvo_deployment"
SESSION_SEEN_MEETINGS = "connvo_seen_meetings"


def agent_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page for support agents: signed in, and allowed to look meetings up."""
    return login_required_whole_page(lookup_permission_required(view))


def start_page_permission(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
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


@require_GET
@login_required_whole_page
@start_page_permission
def start_page(request: HttpRequest) -> HttpResponse:
    """The lookup form (its answer redirects to the meeting's page) and the agent's recent
    meetings."""
    if "q" in request.GET:
        form = LookupForm(request.GET, autofocus=True)
        if form.is_valid():
            return redirect(
                "meetings:detail",
                deployment_name=form.cleaned_data["deployment"],
                meeting_id=form.cleaned_data["q"],
            )
        status = 400
    else:
        preferred = preferred_deployment(
            remembered=request.session.get(SESSION_DEPLOYMENT), user=request.user
        )
        form = LookupForm(initial={"deployment": preferred}, autofocus=True)
        status = 200
    recent = selectors.recent_lookups(user=request.user, limit=RECENT_LOOKUPS)
    seen = request.session.get(SESSION_SEEN_MEETINGS, {})
    context = {
        "form": form,
        "recent": [
            {"entry": entry, "seen": seen.get(f"{entry.deployment}/{entry.meeting_id}")}
            for entry in recent
        ],
    }
    return render(request, "meetings/lookup.html", context, status=status)


def _remember_seen(request: HttpRequest, deployment_name: str, meeting) -> None:
    """Title and state of the meetings this agent opened, for the start page's recent lookups.
    Kept in the agent's session (the audit log holds no titles), the newest few only."""
    seen = request.session.get(SESSION_SEEN_MEETINGS, {})
    seen.pop(f"{deployment_name}/{meeting.id}", None)
    seen[f"{deployment_name}/{meeting.id}"] = {"title": meeting.title, "state": str(meeting.state)}
    request.session[SESSION_SEEN_MEETINGS] = dict(list(seen.items())[-2 * RECENT_LOOKUPS :])


def refresh_state(request: HttpRequest) -> tuple[int, str]:
    """What the page says it shows: consecutive failed refreshes, and a fingerprint."""
    try:
        failures = max(0, min(int(request.GET.get("failures", 0)), 30))
    except ValueError:
        failures = 0
    seen = request.GET.get("seen", "")
    return failures, seen if re.fullmatch(r"[0-9a-f]{0,64}", seen) else ""


@require_GET
@vary_on_headers("HX-Request")
@agent_view
def meeting_detail(request: HttpRequest, deployment_name: str, meeting_id: str) -> HttpResponse:
    """The meeting page; with htmx, its live-status fragment (one refresh)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return _confirm_cross_site_lookup(
            request, deployment_name=deployment_name, meeting_id=meeting_id
        )
    refreshing = bool(request.htmx)
    context = {
        # None for a name that is not configured: the lookup below says so (and audits it).
        "deployment": deployments().get(deployment_name),
        "deployment_name": deployment_name,
        "meeting_id": meeting_id,
        "checked_at": timezone.now(),
    }
    try:
        result = audited_lookup(
            user=request.user,
            origin=Origin.from_request(request),
            deployment_name=deployment_name,
            meeting_ref=meeting_id,
            via=Via.REFRESH if refreshing else Via.PAGE,
        )
    except LookupFailed as failure:
        if refreshing:
            failures, seen = refresh_state(request)
            plan = plan_after_failure(failure, failures=failures, seen=seen)
            context |= {"live": plan, "refresh_error": failure}
            return _live_fragment(request, context, plan)
        context |= {
            "error": failure,
            "form": LookupForm(initial={"q": meeting_id, "deployment": deployment_name}),
            "other_deployments": [name for name in deployments() if name != deployment_name],
            "known_deployments": list(deployments()),
        }
        status = failure.handling.page_status
        return render(request, "meetings/meeting_detail.html", context, status=status)

    meeting = result.meeting
    plan = plan_after_success(meeting)
    context |= {"meeting": meeting, "live": plan}
    if refreshing:
        failures, seen = refresh_state(request)
        if plan.polling and failures == 0 and seen == plan.fingerprint:
            # Nothing changed: htmx ignores a 204, so the page stays as it is at no cost.
            return HttpResponse(status=204)
        return _live_fragment(request, context, plan)

    request.session[SESSION_DEPLOYMENT] = deployment_name
    _remember_seen(request, deployment_name, meeting)
    context |= {
        "form": LookupForm(initial={"q": meeting.id, "deployment": deployment_name}),
        "raw_json": json.dumps(meeting.raw, indent=2, sort_keys=True),
    }
    return render(request, "meetings/meeting_detail.html", context)


def _refresh_failed(request: HttpRequest, failure: LookupFailed) -> HttpResponse:
    """The live fragment for a refresh that failed before the view ran (the console's own
    database, connvo_admin/unavailable.py): the failing state, backing off. It reads neither the
    session nor the user, which need the database."""
    failures, seen = refresh_state(request)
    plan = plan_after_failure(failure, failures=failures, seen=seen)
    context = {"live": plan, "refresh_error": failure, "checked_at": timezone.now()}
    return _live_fragment(request, context, plan)


meeting_detail.on_database_unavailable = _refresh_failed


def _confirm_cross_site_lookup(
    request: HttpRequest, *, deployment_name: str, meeting_id: str
) -> HttpResponse:
    """A link on another site opened this page: a lookup calls Connvo and is audited in the
    agent's name, so one click from elsewhere must not make one (SameSite=Lax sends the session
    cookie with a top-level GET). Ask first, with the lookup form filled in; it submits from this
    site. Bookmarks and typed addresses are not cross-site ("none")."""
    initial = {"q": meeting_id, "deployment": deployment_name}
    context = {
        "form": LookupForm(initial=initial, autofocus=True),
        "recent": selectors.recent_lookups(user=request.user, limit=RECENT_LOOKUPS),
        "cross_site": {"meeting_id": meeting_id, "deployment": deployment_name},
    }
    return render(request, "meetings/lookup.html", context)


def _live_fragment(request: HttpRequest, context: dict, plan: PollPlan) -> HttpResponse:
    # htmx swaps a 286 (django-htmx's HttpResponseStopPolling) and then stops polling.
    status = 200 if plan.polling else HTMX_STOP_POLLING
    return render(request, "meetings/meeting_detail.html#metrics", context, status=status)


def _token_rows(request: HttpRequest, bound: TokenForm | None = None) -> list[dict]:
    stored = credentials.stored_credentials(request.user)
    warning = settings.CONNVO_TOKEN_EXPIRY_WARNING
    rows = []
    for d in deployments().values():
        token = stored.get(d.name)
        rows.append(
            {
                "deployment": d,
                "token": token,
                "expired": bool(token and credentials.expires_within(token, seconds=0)),
                "expires_soon": bool(
                    token
                    and not token.is_connected_session
                    and credentials.expires_within(token, seconds=warning)
                ),
                "workos": workos_auth.is_workos_deployment(d.name),
                "form": bound
                if bound is not None and bound.prefix == d.name
                else TokenForm(initial={"deployment": d.name}, prefix=d.name),
            }
        )
    return rows


def _tokens_page(request: HttpRequest, rows: list[dict], status: int = 200) -> HttpResponse:
    return render(request, "meetings/tokens.html", {"rows": rows}, status=status)


def workos_form_action(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The Connect buttons post to the console and are redirected on to WorkOS AuthKit: the
    Tokens page's CSP form-action must allow those origins (and only there). Decided per request,
    since the origins come from the settings."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        origins = workos_auth.workos_origins()
        if not origins:
            return view(request, *args, **kwargs)
        policy = settings.SECURE_CSP
        allowing = csp_override({**policy, "form-action": [*policy["form-action"], *origins]})
        return allowing(view)(request, *args, **kwargs)

    return wrapper


def tokens_page_deployment(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The access helper of the Tokens page's forms: hands the view the `Deployment` its URL
    names; a name that is not configured goes back to the Tokens page with a message."""

    @wraps(view)
    def wrapper(request: HttpRequest, deployment_name: str, **kwargs) -> HttpResponse:
        try:
            deployment = get_deployment(deployment_name)
        except UnknownDeployment:
            messages.error(request, f"There is no Connvo deployment called “{deployment_name}”.")
            return redirect("meetings:tokens")
        return view(request, deployment, **kwargs)

    return wrapper


@require_GET
@agent_view
@workos_form_action
def token_list(request: HttpRequest) -> HttpResponse:
    return _tokens_page(request, _token_rows(request))


@require_POST
@agent_view
@tokens_page_deployment
@workos_form_action
def token_save(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    form = TokenForm(request.POST, prefix=deployment.name)
    if not form.is_valid() or form.cleaned_data["deployment"] != deployment.name:
        # The paste is never echoed back: it may be a valid secret with a typo around it.
        return _tokens_page(request, _token_rows(request, bound=form), status=400)
    saved = pasted_tokens.save_token(
        user=request.user,
        deployment_name=deployment.name,
        raw_token=form.cleaned_data["token"],
        origin=Origin.from_request(request),
    )
    messages.success(
        request,
        f"Token for {deployment.name} saved (ending …{saved.last4}). It is stored encrypted.",
    )
    return redirect("meetings:tokens")


@require_POST
@agent_view
@tokens_page_deployment
def token_remove(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    form = RemoveTokenForm(request.POST)
    if not form.is_valid() or form.cleaned_data["deployment"] != deployment.name:
        messages.error(request, "That deployment does not exist.")
    elif pasted_tokens.remove_token(
        user=request.user, deployment_name=deployment.name, origin=Origin.from_request(request)
    ):
        messages.success(request, f"Your token for {deployment.name} was removed.")
    else:
        messages.info(request, f"You had no token saved for {deployment.name}.")
    return redirect("meetings:tokens")


# --- Connecting a Connvo account through WorkOS AuthKit ------------------------------------------


@require_POST
@agent_view
@tokens_page_deployment
def connect_start(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    if not workos_auth.is_workos_deployment(deployment.name):
        messages.error(request, f"Connecting an account is not set up for {deployment.name}.")
        return redirect("meetings:tokens")
    pending = connect.begin_connect(
        deployment_name=deployment.name,
        redirect_uri=request.build_absolute_uri(reverse("meetings:connect_callback")),
    )
    connect.remember_pending(request.session, pending)
    return redirect(pending.url)


@require_GET
@agent_view
@workos_form_action
def connect_callback(request: HttpRequest) -> HttpResponse:
    origin = Origin.from_request(request)
    pending = connect.take_pending(request.session, request.GET.get("state", ""))
    if pending is None:
        connect.fail(origin, "", "callback with an unknown or expired state")
        messages.error(
            request,
            "That sign-in link does not belong to a connection you started here (or it is more "
            "than 15 minutes old), so nothing was connected. Press Connect again.",
        )
        return _tokens_page(request, _token_rows(request), status=400)
    deployment_name = pending.deployment_name
    if request.GET.get("error") or not request.GET.get("code"):
        connect.fail(
            origin, deployment_name, f"WorkOS answered {request.GET.get('error', 'no code')}"
        )
        messages.error(
            request, f"Connecting your Connvo account for {deployment_name} was cancelled."
        )
        return redirect("meetings:tokens")
    try:
        stored = connect.finish_connect(
            user=request.user,
            deployment_name=deployment_name,
            code=request.GET["code"],
            code_verifier=pending.code_verifier,
            origin=origin,
        )
    except connect.ConnectFailed as exc:
        messages.error(request, exc.message)
        return redirect("meetings:tokens")
    messages.success(request, f"Connected to Connvo {deployment_name} as {stored.email}.")
    return redirect("meetings:tokens")


@require_POST
@agent_view
@tokens_page_deployment
def connect_disconnect(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    if connect.disconnect(
        user=request.user, deployment_name=deployment.name, origin=Origin.from_request(request)
    ):
        messages.success(request, f"Your Connvo account for {deployment.name} is disconnected.")
    else:
        messages.info(request, f"No Connvo account was connected for {deployment.name}.")
    return redirect("meetings:tokens")
