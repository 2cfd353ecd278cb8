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

from audit.models import Action, AuditEntry, Via
from audit.services import Origin, record

from . import connect, connvo, credentials, tokens
from .connvo import Outcome
from .forms import LookupForm, RemoveTokenForm, TokenForm
from .live import PollPlan, plan_after_failure, plan_after_success
from .lookups import AuditUnavailable, look_up_meeting
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


# The console's own answer for each way a lookup can end; a gateway-style code when Connvo failed.
STATUS_FOR_OUTCOME = {
    Outcome.INVALID_ID: 400,
    Outcome.UNKNOWN_DEPLOYMENT: 404,
    Outcome.NOT_FOUND: 404,
    Outcome.NOT_VISIBLE: 403,
    Outcome.NO_TOKEN: 403,
    Outcome.SESSION_ENDED: 403,
    Outcome.TOKEN_REJECTED: 403,
    Outcome.NOT_PROVISIONED: 403,
    Outcome.RATE_LIMITED: 429,
    Outcome.LOOKUP_LIMIT: 429,
    Outcome.OVERLOADED: 503,
    Outcome.TIMEOUT: 504,
}
RECENT_LOOKUPS = 10
SESSION_DEPLOYMENT = "connvo_deployment"


def _preferred_deployment(request: HttpRequest) -> str:
    """The deployment of the agent's last successful lookup (this session, else the audit log),
    so an agent who works on prod all day does not have to pick it every time."""
    known = connvo.deployments()
    name = request.session.get(SESSION_DEPLOYMENT)
    if name not in known:
        name = (
            AuditEntry.objects.filter(
                actor=request.user, action=Action.LOOKUP, outcome=Outcome.FOUND
            )
            .values_list("deployment", flat=True)
            .first()
        )
    return name if name in known else settings.CONNVO_DEFAULT_DEPLOYMENT


def _recent_lookups(user) -> list[AuditEntry]:
    """This agent's last distinct meetings, newest first, from the audit log."""
    seen: set[tuple[str, str]] = set()
    recent: list[AuditEntry] = []
    rows = AuditEntry.objects.filter(
        actor=user, action=Action.LOOKUP, via=Via.PAGE, outcome=Outcome.FOUND
    ).only("at", "deployment", "meeting_id", "outcome")[:100]
    for row in rows:
        key = (row.deployment, row.meeting_id)
        if key not in seen:
            seen.add(key)
            recent.append(row)
        if len(recent) == RECENT_LOOKUPS:
            break
    return recent


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
        form = LookupForm(initial={"deployment": _preferred_deployment(request)}, autofocus=True)
        status = 200
    context = {"form": form, "recent": _recent_lookups(request.user)}
    return render(request, "meetings/lookup.html", context, status=status)


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
@login_required
@lookup_permission
def meeting_detail(request: HttpRequest, deployment: str, meeting_id: str) -> HttpResponse:
    """The meeting page; with htmx, its live-status fragment (one refresh)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return _confirm_cross_site_lookup(request, deployment=deployment, meeting_id=meeting_id)
    refreshing = bool(request.htmx)
    context = {
        "deployment": connvo.deployments().get(deployment),
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
    except (connvo.ConnvoError, AuditUnavailable) as exc:
        error = exc if isinstance(exc, connvo.ConnvoError) else None
        if refreshing:
            failures, seen = refresh_state(request)
            plan = plan_after_failure(error, failures=failures, seen=seen)
            context |= {"live": plan, "refresh_error": exc}
            return _live_fragment(request, context, plan)
        context |= {
            "error": error,
            "audit_error": None if error else exc,
            "form": LookupForm(initial={"q": meeting_id, "deployment": deployment}),
            "other_deployments": [name for name in connvo.deployments() if name != deployment],
        }
        status = STATUS_FOR_OUTCOME.get(error.outcome, 502) if error else 503
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

    request.session[SESSION_DEPLOYMENT] = deployment
    context |= {
        "form": LookupForm(initial={"q": meeting.id, "deployment": deployment}),
        "raw_json": json.dumps(meeting.raw, indent=2, sort_keys=True),
    }
    return render(request, "meetings/meeting_detail.html", context)


def _confirm_cross_site_lookup(
    request: HttpRequest, *, deployment: str, meeting_id: str
) -> HttpResponse:
    """A link on another site opened this page: a lookup calls Connvo and is audited in the
    agent's name, so one click from elsewhere must not make one (SameSite=Lax sends the session
    cookie with a top-level GET). Ask first, with the lookup form filled in; it submits from this
    site. Bookmarks and typed addresses are not cross-site ("none")."""
    initial = {"q": meeting_id, "deployment": deployment}
    context = {
        "form": LookupForm(initial=initial, autofocus=True),
        "recent": _recent_lookups(request.user),
        "cross_site": {"meeting_id": meeting_id, "deployment": deployment},
    }
    return render(request, "meetings/lookup.html", context)


def _live_fragment(request: HttpRequest, context: dict, plan: PollPlan) -> HttpResponse:
    status = 200 if plan.polling else HTTP_STOP_POLLING
    return render(request, "meetings/meeting_detail.html#metrics", context, status=status)


def _token_rows(request: HttpRequest, bound: TokenForm | None = None) -> list[dict]:
    stored = {t.deployment: t for t in StaffToken.objects.filter(user=request.user)}
    now = timezone.now()
    rows = []
    for d in connvo.deployments().values():
        token = stored.get(d.name)
        rows.append(
            {
                "deployment": d,
                "token": token,
                "expired": bool(token and token.expires_at and token.expires_at <= now),
                "expires_soon": bool(
                    token and not token.is_connected_session and tokens.expires_soon(token)
                ),
                "workos": credentials.is_workos_deployment(d.name),
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
    origins = credentials.workos_origins()
    if origins:
        policy = settings.SECURE_CSP
        response._csp_config = {**policy, "form-action": [*policy["form-action"], *origins]}
    return response


@require_GET
@login_required
@lookup_permission
def token_list(request: HttpRequest) -> HttpResponse:
    return _tokens_page(request, _token_rows(request))


@require_POST
@login_required
@lookup_permission
def token_save(request: HttpRequest, deployment: str) -> HttpResponse:
    form = TokenForm(request.POST, prefix=deployment)
    if deployment not in connvo.deployments():
        messages.error(request, f"There is no Connvo deployment called “{deployment}”.")
        return redirect("meetings:tokens")
    if not form.is_valid() or form.cleaned_data["deployment"] != deployment:
        # The paste is never echoed back: it may be a valid secret with a typo around it.
        return _tokens_page(request, _token_rows(request, bound=form), status=400)
    existed = StaffToken.objects.filter(user=request.user, deployment=deployment).exists()
    saved = tokens.save_token(
        user=request.user, deployment=deployment, raw_token=form.cleaned_data["token"]
    )
    record(
        origin=Origin.from_request(request),
        action=Action.TOKEN_REPLACED if existed else Action.TOKEN_SAVED,
        deployment=deployment,
    )
    messages.success(
        request, f"Token for {deployment} saved (ending …{saved.last4}). It is stored encrypted."
    )
    return redirect("meetings:tokens")


@require_POST
@login_required
@lookup_permission
def token_remove(request: HttpRequest, deployment: str) -> HttpResponse:
    form = RemoveTokenForm(request.POST)
    if form.is_valid() and form.cleaned_data["deployment"] == deployment:
        if tokens.remove_token(user=request.user, deployment=deployment):
            record(
                origin=Origin.from_request(request),
                action=Action.TOKEN_REMOVED,
                deployment=deployment,
            )
            messages.success(request, f"Your token for {deployment} was removed.")
        else:
            messages.info(request, f"You had no token saved for {deployment}.")
    else:
        messages.error(request, "That deployment does not exist.")
    return redirect("meetings:tokens")


# --- Connecting a Connvo account through WorkOS AuthKit ------------------------------------------

SESSION_PENDING_CONNECTS = "connvo_pending_connects"
PENDING_CONNECT_LIFETIME = 15 * 60


@require_POST
@login_required
@lookup_permission
def connect_start(request: HttpRequest, deployment: str) -> HttpResponse:
    if not credentials.is_workos_deployment(deployment):
        messages.error(request, f"Connecting an account is not set up for {deployment}.")
        return redirect("meetings:tokens")
    pending = connect.begin_connect(
        deployment=deployment,
        redirect_uri=request.build_absolute_uri(reverse("meetings:connect_callback")),
    )
    # Keyed by state: several tabs may connect several deployments at once.
    started = request.session.get(SESSION_PENDING_CONNECTS, {})
    now = timezone.now().timestamp()
    started = {k: v for k, v in started.items() if now - v["at"] < PENDING_CONNECT_LIFETIME}
    started[pending.state] = {
        "deployment": deployment,
        "verifier": pending.code_verifier,
        "at": now,
    }
    request.session[SESSION_PENDING_CONNECTS] = started
    return redirect(pending.url)


@require_GET
@login_required
@lookup_permission
def connect_callback(request: HttpRequest) -> HttpResponse:
    origin = Origin.from_request(request)
    started = request.session.get(SESSION_PENDING_CONNECTS, {})
    pending = started.pop(request.GET.get("state", ""), None)
    request.session[SESSION_PENDING_CONNECTS] = started
    expired = pending and timezone.now().timestamp() - pending["at"] > PENDING_CONNECT_LIFETIME
    if pending is None or expired:
        connect.fail(origin, "", "callback with an unknown or expired state")
        messages.error(
            request,
            "That sign-in link does not belong to a connection you started here (or it is more "
            "than 15 minutes old), so nothing was connected. Press Connect again.",
        )
        return _tokens_page(request, _token_rows(request), status=400)
    deployment = pending["deployment"]
    if request.GET.get("error") or not request.GET.get("code"):
        connect.fail(origin, deployment, f"WorkOS answered {request.GET.get('error', 'no code')}")
        messages.error(request, f"Connecting your Connvo account for {deployment} was cancelled.")
        return redirect("meetings:tokens")
    try:
        stored = connect.finish_connect(
            user=request.user,
            deployment=deployment,
            code=request.GET["code"],
            code_verifier=pending["verifier"],
            origin=origin,
        )
    except credentials.ConnectFailed as exc:
        messages.error(request, exc.message)
        return redirect("meetings:tokens")
    messages.success(request, f"Connected to Connvo {deployment} as {stored.email}.")
    return redirect("meetings:tokens")


@require_POST
@login_required
@lookup_permission
def connect_disconnect(request: HttpRequest, deployment: str) -> HttpResponse:
    if connect.disconnect(
        user=request.user, deployment=deployment, origin=Origin.from_request(request)
    ):
        messages.success(request, f"Your Connvo account for {deployment} is disconnected.")
    else:
        messages.info(request, f"No Connvo account was connected for {deployment}.")
    return redirect("meetings:tokens")
