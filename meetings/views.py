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
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

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
from .lookups import look_up_meeting
from .models import StaffToken

lookup_permission = permission_required("meetings.lookup_meeting", raise_exception=True)
HTTP_STOP_POLLING = 286  # htmx: swap this response, then stop polling


def login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
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


def start_page_permission(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The start page is the lookup page; someone who may only read the audit log lands on the
    audit log instead of a refusal (this is where sign-in sends everyone)."""

    guarded = lookup_permission(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.has_perm("meetings.lookup_meeting") and user.has_perm("audit.view_auditentry"):
            return redirect("audit:list")
        return guarded(request, *args, **kwargs)

    return wrapper


@require_GET
@login_required
@start_page_permission
def lookup(request: HttpRequest) -> HttpResponse:
    if "q" in request.GET:
        form = LookupForm(request.GET, autofocus=True)
        if form.is_valid():
            return redirect(
                "meetings:detail",
                deployment=form.cleaned_data["deployment"],
                meeting_id=form.cleaned_data["q"],
            )
        status = 400
    else:
        preferred = preferred_deployment(
            remembered=request.session.get(SESSION_DEPLOYMENT), user=request.user
        )
        form = LookupForm(initial={"deployment": preferred}, autofocus=True)
        status = 200
    context = {
        "form": form,
        "recent": selectors.recent_lookups(user=request.user, limit=RECENT_LOOKUPS),
    }
    return render(request, "meetings/lookup.html", context, status=status)


def _refresh_state(request: HttpRequest) -> tuple[int, str]:
    """What the page says it shows: consecutive failed refreshes, and a fingerprint."""
    try:
        failures = max(0, min(int(request.GET.get("failures", 0)), 30))
    except ValueError:
        failures = 0
    seen = request.GET.get("seen", "")
    return failures, seen if re.fullmatch(r"[0-9a-f]{0,64}", seen) else ""


@require_GET
@vary_on_headers("HX-Request")
@login_required
@lookup_permission
def meeting_detail(request: HttpRequest, deployment: str, meeting_id: str) -> HttpResponse:
    """The meeting page; with htmx, its live-status fragment (one refresh)."""
    refreshing = bool(request.htmx)
    context = {
        "deployment": deployments().get(deployment),
        "deployment_name": deployment,
        "meeting_id": meeting_id,
        "checked_at": timezone.now(),
    }
    try:
        result = look_up_meeting(
            user=request.user,
            origin=Origin.from_request(request),
            deployment_name=deployment,
            meeting_ref=meeting_id,
            via=Via.REFRESH if refreshing else Via.PAGE,
        )
    except LookupFailed as failure:
        if refreshing:
            failures, seen = _refresh_state(request)
            plan = plan_after_failure(failure, failures=failures, seen=seen)
            context |= {"live": plan, "refresh_error": failure}
            return _live_fragment(request, context, plan)
        context |= {
            "error": failure,
            "form": LookupForm(initial={"q": meeting_id, "deployment": deployment}),
            "other_deployments": [name for name in deployments() if name != deployment],
        }
        status = failure.handling.page_status
        return render(request, "meetings/meeting_detail.html", context, status=status)

    meeting = result.meeting
    plan = plan_after_success(meeting)
    context |= {"meeting": meeting, "live": plan}
    if refreshing:
        failures, seen = _refresh_state(request)
        if plan.polling and failures == 0 and seen == plan.fingerprint:
            # Nothing changed: htmx ignores a 204, so the page stays as it is at no cost.
            return HttpResponse(status=204)
        return _live_fragment(request, context, plan)

    request.session[SESSION_DEPLOYMENT] = deployment
    context |= {
        "form": LookupForm(initial={"q": meeting.id, "deployment": deployment}),
        "raw_json": json.dumps(meeting.raw, indent=2, sort_keys=True),
    }
    return render(request, "meetings/meeting_detail.html", context)


def _live_fragment(request: HttpRequest, context: dict, plan: PollPlan) -> HttpResponse:
    status = 200 if plan.polling else HTTP_STOP_POLLING
    return render(request, "meetings/meeting_detail.html#metrics", context, status=status)


def _token_rows(request: HttpRequest, bound: TokenForm | None = None) -> list[dict]:
    stored = {t.deployment: t for t in StaffToken.objects.filter(user=request.user)}
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
    response = render(request, "meetings/tokens.html", {"rows": rows}, status=status)
    # The Connect buttons post here and are redirected on to WorkOS AuthKit: the policy's
    # form-action must allow those origins on this page (and only here).
    origins = workos_auth.workos_origins()
    if origins:
        policy = settings.SECURE_CSP
        response._csp_config = {**policy, "form-action": [*policy["form-action"], *origins]}
    return response


def tokens_page_deployment(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The access helper of the Tokens page's forms: hands the view the `Deployment` its URL
    names; a name that is not configured goes back to the Tokens page with a message."""

    @wraps(view)
    def wrapper(request: HttpRequest, deployment: str, **kwargs) -> HttpResponse:
        try:
            target = get_deployment(deployment)
        except UnknownDeployment:
            messages.error(request, f"There is no Connvo deployment called “{deployment}”.")
            return redirect("meetings:tokens")
        return view(request, target, **kwargs)

    return wrapper


@require_GET
@login_required
@lookup_permission
def token_list(request: HttpRequest) -> HttpResponse:
    return _tokens_page(request, _token_rows(request))


@require_POST
@login_required
@lookup_permission
@tokens_page_deployment
def token_save(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    form = TokenForm(request.POST, prefix=deployment.name)
    if not form.is_valid() or form.cleaned_data["deployment"] != deployment.name:
        # The paste is never echoed back: it may be a valid secret with a typo around it.
        return _tokens_page(request, _token_rows(request, bound=form), status=400)
    saved = pasted_tokens.save_token(
        user=request.user,
        deployment=deployment.name,
        raw_token=form.cleaned_data["token"],
        origin=Origin.from_request(request),
    )
    messages.success(
        request,
        f"Token for {deployment.name} saved (ending …{saved.last4}). It is stored encrypted.",
    )
    return redirect("meetings:tokens")


@require_POST
@login_required
@lookup_permission
@tokens_page_deployment
def token_remove(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    form = RemoveTokenForm(request.POST)
    if not form.is_valid() or form.cleaned_data["deployment"] != deployment.name:
        messages.error(request, "That deployment does not exist.")
    elif pasted_tokens.remove_token(
        user=request.user, deployment=deployment.name, origin=Origin.from_request(request)
    ):
        messages.success(request, f"Your token for {deployment.name} was removed.")
    else:
        messages.info(request, f"You had no token saved for {deployment.name}.")
    return redirect("meetings:tokens")


# --- Connecting a Connvo account through WorkOS AuthKit ------------------------------------------


@require_POST
@login_required
@lookup_permission
@tokens_page_deployment
def connect_start(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    if not workos_auth.is_workos_deployment(deployment.name):
        messages.error(request, f"Connecting an account is not set up for {deployment.name}.")
        return redirect("meetings:tokens")
    pending = connect.begin_connect(
        deployment=deployment.name,
        redirect_uri=request.build_absolute_uri(reverse("meetings:connect_callback")),
    )
    connect.remember_pending(request.session, pending)
    return redirect(pending.url)


@require_GET
@login_required
@lookup_permission
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
    deployment = pending.deployment
    if request.GET.get("error") or not request.GET.get("code"):
        connect.fail(origin, deployment, f"WorkOS answered {request.GET.get('error', 'no code')}")
        messages.error(request, f"Connecting your Connvo account for {deployment} was cancelled.")
        return redirect("meetings:tokens")
    try:
        stored = connect.finish_connect(
            user=request.user,
            deployment=deployment,
            code=request.GET["code"],
            code_verifier=pending.code_verifier,
            origin=origin,
        )
    except connect.ConnectFailed as exc:
        messages.error(request, exc.message)
        return redirect("meetings:tokens")
    messages.success(request, f"Connected to Connvo {deployment} as {stored.email}.")
    return redirect("meetings:tokens")


@require_POST
@login_required
@lookup_permission
@tokens_page_deployment
def connect_disconnect(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    if connect.disconnect(
        user=request.user, deployment=deployment.name, origin=Origin.from_request(request)
    ):
        messages.success(request, f"Your Connvo account for {deployment.name} is disconnected.")
    else:
        messages.info(request, f"No Connvo account was connected for {deployment.name}.")
    return redirect("meetings:tokens")
