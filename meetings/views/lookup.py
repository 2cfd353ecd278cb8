"""Looking a meeting up: the start page (the lookup form and the agent's recent meetings), a
meeting's page and its live refresh, and the question asked when another site links here."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from audit.models import Via
from audit.services import Origin
from connvo_admin.outcomes import LookupFailed

from ..deployments import deployments
from ..forms import LookupForm
from ..live import (
    PollPlan,
    Shown,
    plan_after_failure,
    plan_after_success,
    push_enabled,
    reply_status,
)
from ..lookups import Answer, AuditUnavailable, Wanted, look_up
from ..models import WatchedMeeting
from ..ratelimit import LookupLimitReached
from ..references import References
from .access import (
    agent_view,
    asks_before_looking_up,
    login_required_whole_page,
    start_page_permission,
)
from .confirm import confirm_lookup, start_page_response
from .recent import preferred_deployment, remember_deployment
from .tables import say_what_was_left_out, table_url, with_query


def _asked_deployment(request: HttpRequest, data) -> str:
    """The deployment a lookup names. A bookmark or browser keyword (`/?q=%s`) names none: it
    gets the one the form offers first, as if the ID had been typed into the box."""
    return data.get("deployment") or preferred_deployment(request)


def _confirm_start_page(request: HttpRequest) -> HttpResponse:
    if "q" not in request.GET:
        return _blank_start_page(request)  # nothing to look up
    deployment_name = _asked_deployment(request, request.GET)
    return confirm_lookup(request, deployment_name=deployment_name, text=request.GET["q"])


def _blank_start_page(request: HttpRequest) -> HttpResponse:
    form = LookupForm(initial={"deployment": preferred_deployment(request)}, autofocus=True)
    return start_page_response(request, form)


def _to_meetings(request: HttpRequest, found: References, deployment_name: str) -> HttpResponse:
    """One meeting opens its page, several a triage table whose address holds only the IDs."""
    say_what_was_left_out(request, found)
    if len(found.ids) == 1:
        return redirect("meetings:detail", deployment_name=deployment_name, meeting_id=found.ids[0])
    return redirect(table_url(deployment_name, found.ids))


@require_http_methods(["GET", "HEAD", "POST"])
@login_required_whole_page
@start_page_permission
@asks_before_looking_up(_confirm_start_page)
def start_page(request: HttpRequest) -> HttpResponse:
    """The lookup form and the agent's recent meetings. The form is posted (a pasted log excerpt
    is too long for an address); `?q=` still works for bookmarks and browser keywords. Either
    way the answer redirects to the meeting's page or the table, so a reload looks nothing up
    twice and bad input comes back with the paste kept."""
    data = request.POST if request.method == "POST" else request.GET
    if "q" not in data:
        return _blank_start_page(request)
    if not data.get("deployment"):
        data = data.copy()
        data["deployment"] = _asked_deployment(request, data)
    form = LookupForm(data, autofocus=True)
    if form.is_valid():
        return _to_meetings(request, form.cleaned_data["q"], form.cleaned_data["deployment"])
    return start_page_response(request, form, status=400)


def _confirm_meeting(request: HttpRequest, deployment_name: str, meeting_id: str) -> HttpResponse:
    return confirm_lookup(request, deployment_name=deployment_name, text=meeting_id)


@require_GET
@vary_on_headers("HX-Request")
@agent_view
@asks_before_looking_up(_confirm_meeting)
def meeting_detail(request: HttpRequest, deployment_name: str, meeting_id: str) -> HttpResponse:
    """The meeting page; with htmx, its live-status fragment (one refresh)."""
    refreshing = bool(request.htmx)
    shown = Shown.from_query(request.GET) if refreshing else Shown()
    context = {
        # None for a name that is not configured: the lookup below says so (and audits it).
        "deployment": deployments().get(deployment_name),
        "deployment_name": deployment_name,
        "meeting_id": meeting_id,
        "checked_at": timezone.now(),
    }
    try:
        (answer,) = look_up(
            user=request.user,
            origin=Origin.from_request(request),
            wanted=[Wanted(deployment_name, meeting_id)],
            via=Via.REFRESH if refreshing else Via.PAGE,
            # A refresh is counted in the page's span (its key travels in the poller's values).
            span=shown.span if refreshing else None,
            polls_every=shown.interval,
        )
    except AuditUnavailable as failure:
        answer = Answer(deployment_name, meeting_id, error=failure, span=shown.span)
    context["span"] = answer.span or shown.span
    if answer.error is not None:
        failure = answer.error
        if refreshing:
            return _refresh_failed(request, failure, context)
        context |= {
            "error": failure,
            "form": LookupForm(initial={"q": meeting_id, "deployment": deployment_name}),
            "other_deployments": [name for name in deployments() if name != deployment_name],
            "known_deployments": list(deployments()),
        }
        response = render(
            request, "meetings/meeting_detail.html", context, status=failure.handling.page_status
        )
        if isinstance(failure, LookupLimitReached):
            # The same seconds the page counts down, for anything that reads headers.
            response["Retry-After"] = str(failure.retry_after)
        return response

    meeting = answer.meeting
    plan = plan_after_success(meeting)
    context |= {"meeting": meeting, "live": plan, "push_url": _push_url(context, plan)}
    if refreshing:
        return _live_fragment(request, context, plan)

    remember_deployment(request, deployment_name)
    context |= {
        "form": LookupForm(initial={"q": meeting.id, "deployment": deployment_name}),
        "watched": WatchedMeeting.objects.filter(
            user=request.user, deployment=deployment_name, meeting_id=meeting.id
        ).exists(),
    }
    return render(request, "meetings/meeting_detail.html", context)


def _push_url(context: dict, plan: PollPlan) -> str:
    """Where the page's push stream is (its answers counted in the page's span), or "" when the
    page only polls: push is off for the deployment, or nothing will change any more."""
    name, meeting = context.get("deployment_name"), context.get("meeting")
    meeting_id = meeting.id if meeting else context.get("meeting_id")
    if not plan.polling or not name or not meeting_id or not push_enabled(name):
        return ""
    url = reverse("meetings:push", kwargs={"deployment_name": name, "meeting_id": meeting_id})
    return with_query(url, span=context.get("span", ""))


def _refresh_failed(
    request: HttpRequest, failure: LookupFailed, context: dict | None = None
) -> HttpResponse:
    """The live fragment for a refresh that failed: the failing state, backing off, or stopped.
    Also what a refresh gets when the console's own database failed before the view ran
    (connvo_admin/unavailable.py): then it reads neither the session nor the user."""
    shown = Shown.from_query(request.GET)
    plan = plan_after_failure(failure, failures=shown.failures, seen=shown.seen)
    context = (context or {"checked_at": timezone.now(), "span": shown.span}) | {
        "live": plan,
        "refresh_error": failure,
    }
    context["push_url"] = _push_url(context, plan)
    return _live_fragment(request, context, plan)


meeting_detail.on_database_unavailable = _refresh_failed


def _live_fragment(request: HttpRequest, context: dict, plan: PollPlan) -> HttpResponse:
    status = reply_status(plan, Shown.from_query(request.GET), span=context["span"])
    if status == 204:
        return HttpResponse(status=204)
    return render(request, "meetings/meeting_detail.html#metrics", context, status=status)
