"""Pages for support agents: look up a meeting, see it, manage their Connvo tokens."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import (
    HTMX_STOP_POLLING,
    HttpResponseClientRedirect,
    HttpResponseClientRefresh,
)

from audit import selectors
from audit.exports import FORMULA_STARTS
from audit.models import Via
from audit.services import Origin
from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id
from connvo_admin.outcomes import LookupFailed, Outcome

from . import connect, credentials, pasted_tokens, triage, workos_auth
from .deployments import (
    Deployment,
    UnknownDeployment,
    deployments,
    get_deployment,
    preferred_deployment,
)
from .forms import SORTS, LookupForm, RemoveTokenForm, TableForm, TokenForm
from .live import PollPlan, plan_after_failure, plan_after_success
from .lookups import AuditUnavailable, audited_lookup
from .models import WatchedMeeting
from .references import References

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
            found, deployment_name = form.cleaned_data["q"], form.cleaned_data["deployment"]
            say_what_was_left_out(request, found)
            if len(found.ids) == 1:
                return redirect(
                    "meetings:detail", deployment_name=deployment_name, meeting_id=found.ids[0]
                )
            return redirect(table_url(deployment_name, found.ids))
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
    # A meeting Connvo sent in a shape the console does not fully know may lack either.
    seen[f"{deployment_name}/{meeting.id}"] = {
        "title": meeting.title or "",
        "state": "" if meeting.state is None else str(meeting.state),
    }
    request.session[SESSION_SEEN_MEETINGS] = dict(list(seen.items())[-2 * RECENT_LOOKUPS :])


def refresh_state(request: HttpRequest) -> tuple[int, str]:
    """What the page says it shows: consecutive failed refreshes, and a fingerprint."""
    try:
        failures = max(0, min(int(request.GET.get("failures", 0)), 30))
    except ValueError:
        failures = 0
    seen = request.GET.get("seen", "")
    return failures, seen if re.fullmatch(r"[0-9a-f]{0,64}", seen) else ""


def _polling_every(request: HttpRequest) -> int | None:
    """The interval the page polls at now (None from a page served before it said so)."""
    interval = request.GET.get("interval", "")
    return int(interval) if interval.isdigit() and len(interval) < 6 else None


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
        unchanged = seen == plan.fingerprint and _polling_every(request) == plan.interval
        if plan.polling and failures == 0 and unchanged:
            # Nothing changed (not even the interval the console wants): htmx ignores a 204, so
            # the page stays as it is at no cost.
            return HttpResponse(status=204)
        return _live_fragment(request, context, plan)

    request.session[SESSION_DEPLOYMENT] = deployment_name
    _remember_seen(request, deployment_name, meeting)
    context |= {
        "form": LookupForm(initial={"q": meeting.id, "deployment": deployment_name}),
        "watched": WatchedMeeting.objects.filter(
            user=request.user, deployment=deployment_name, meeting_id=meeting.id
        ).exists(),
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


# --- Many meetings at once: the triage table and the watch list ---------------------------------


def _deployment_or_404(name: str) -> Deployment:
    try:
        return get_deployment(name)
    except UnknownDeployment:
        raise Http404("There is no such Connvo deployment.") from None


def table_url(deployment: str, ids: Iterable[str], *, sort: str = "", show: str = "") -> str:
    """The triage table's bookmarkable address. IDs are plain base32, so the list stays readable
    (commas unescaped) when pasted into an incident channel."""
    query = "ids=" + ",".join(ids)
    for name, value in (("sort", sort), ("show", show)):
        if value:
            query += f"&{name}={value}"
    return f"{reverse('meetings:table', args=[deployment])}?{query}"


def say_what_was_left_out(request: HttpRequest, found: References) -> None:
    """What the agent pasted that the table does not show, and why, on the page that follows."""
    shown = found.rejected[:MAX_REJECTED_LISTED]
    if shown:
        lines = "; ".join(f"“{r.text}”: {r.reason}" for r in shown)
        more = len(found.rejected) - len(shown)
        if more:
            lines += f"; and {more} more"
        messages.warning(request, f"Not looked up, as not meeting IDs: {lines}")
    if found.duplicates:
        repeated = "1 ID was" if found.duplicates == 1 else f"{found.duplicates} IDs were"
        messages.info(request, f"{repeated} pasted more than once; each meeting is shown once.")


MAX_REJECTED_LISTED = 10
_SORT_KEYS = {
    "state": lambda row: (_GROUP_ORDER[row.group.code], row.index),
    "outcome": lambda row: (row.meeting is not None, _GROUP_ORDER[row.group.code], row.index),
}
_GROUP_ORDER = {group.code: n for n, group in enumerate(triage.GROUPS)}
_NUMERIC_SORTS = {
    "participants": lambda m: m.participant_count,
    "webrtc": lambda m: m.active_webrtc_sessions,
    "rating": lambda m: m.average_rating,
    "updated": lambda m: m.updated_at,
}


def _sorted_rows(rows: list[triage.Row], sort: str) -> list[triage.Row]:
    if sort in _SORT_KEYS:
        return sorted(rows, key=_SORT_KEYS[sort])
    if sort in _NUMERIC_SORTS:
        value = _NUMERIC_SORTS[sort]

        def key(row: triage.Row) -> tuple:
            number = value(row.meeting) if row.meeting else None
            # Highest first; meetings without the figure, then failed rows, last.
            return (number is None, -(number or 0), row.index)

        return sorted(rows, key=key)
    return rows


def _settled_rows(text: str, size: int) -> dict[int, triage.Group]:
    """The rows a table's page says are settled ("0c.3v": row 0 concluded, row 3 not visible)."""
    settled = {}
    for item in text.split(".") if text else ():
        match = re.fullmatch(r"(\d{1,3})([a-z])", item)
        if match and int(match.group(1)) < size and match.group(2) in triage.GROUP_BY_CODE:
            group = triage.GROUP_BY_CODE[match.group(2)]
            if group.settled:
                settled[int(match.group(1))] = group
    return settled


def _table_state(
    rows: list[triage.Row], *, settled: dict[int, triage.Group], failures: int, total: int
) -> tuple[PollPlan, dict]:
    """What the page shows about the table as a whole: its next refresh, the rows settled so far
    (sent back by the poller), the summary line."""
    plan = triage.table_plan(rows, failures=failures)
    now_settled = settled | {row.index: row.group for row in rows if row.group.settled}
    return plan, {
        "live": plan,
        "done": ".".join(f"{i}{g.code}" for i, g in sorted(now_settled.items())),
        "summary": triage.summary(rows, settled),
        "total": total,
    }


def _live_table(
    request: HttpRequest,
    *,
    wanted: list[triage.Wanted],
    template: str,
    context: dict,
    page_url: str,
    sort: str = "",
    show: str = "",
) -> tuple[list[triage.Row], HttpResponse | None]:
    """Look the table's rows up (on a refresh, only those not settled) and answer a refresh.

    Returns the rows looked up, and the response to a refresh (None for a full page, which the
    caller renders)."""
    refreshing = bool(request.htmx)
    settled = _settled_rows(request.GET.get("done", ""), len(wanted)) if refreshing else {}
    asked = [i for i in range(len(wanted)) if i not in settled]
    context |= {"page_url": page_url, "checked_at": timezone.now(), "sort": sort, "show": show}
    try:
        found = triage.look_up_meetings(
            user=request.user,
            origin=Origin.from_request(request),
            wanted=[wanted[i] for i in asked],
            # A table's live refreshes are audited like a meeting page's: the auditors' "Include
            # live refreshes" switch (and the overview's refresh counts) cover both.
            via=Via.REFRESH if refreshing else Via.TABLE,
        )
    except AuditUnavailable as exc:
        if not refreshing:
            raise
        failures, seen = refresh_state(request)
        plan = plan_after_failure(None, failures=failures, seen=seen)
        done = request.GET.get("done", "")
        context |= {"live": plan, "refresh_error": exc, "done": done, "rows": []}
        return [], render(request, f"{template}#refresh", context)
    # Positions in the whole table, not in the list asked this time.
    rows = [dataclasses.replace(row, index=i) for i, row in zip(asked, found, strict=True)]
    failures, seen = refresh_state(request) if refreshing else (0, "")
    plan, state = _table_state(rows, settled=settled, failures=failures, total=len(wanted))
    context |= state
    if not refreshing:
        return rows, None
    unchanged = failures == 0 and seen == plan.fingerprint
    if plan.polling and unchanged:
        return rows, HttpResponse(status=204)
    context["rows"] = [row for row in rows if not show or row.group.name == show]
    response = render(request, f"{template}#refresh", context)
    if not plan.polling:
        response.status_code = HTMX_STOP_POLLING
    return rows, response


@require_GET
@vary_on_headers("HX-Request")
@agent_view
def meeting_table(request: HttpRequest, deployment_name: str) -> HttpResponse:
    """Many meetings of one deployment as a live triage table; `?format=csv` exports it."""
    deployment = _deployment_or_404(deployment_name).name
    form = TableForm(request.GET)
    if not form.is_valid():
        context = {
            "form": LookupForm(initial={"q": request.GET.get("ids", ""), "deployment": deployment}),
            "table_errors": [e for errors in form.errors.values() for e in errors],
            "deployment_name": deployment,
        }
        return render(request, "meetings/table.html", context, status=400)
    found, sort, show = (form.cleaned_data[k] for k in ("ids", "sort", "show"))
    wanted = [triage.Wanted(deployment, meeting_id) for meeting_id in found.ids]
    page_url = table_url(deployment, found.ids, sort=sort, show=show)
    context = {
        "deployment": deployments()[deployment],
        "deployment_name": deployment,
        "ids": found.ids,
        # On one line: the compact box shows one line, and the list is what the URL holds.
        "form": LookupForm(initial={"q": " ".join(found.ids), "deployment": deployment}),
        "table_form": form,
    }
    if request.GET.get("format") == "csv":
        return _table_csv(request, wanted, deployment)
    try:
        rows, answer = _live_table(
            request,
            wanted=wanted,
            template="meetings/table.html",
            context=context,
            page_url=page_url,
            sort=sort,
            show=show,
        )
    except AuditUnavailable as exc:
        context["audit_error"] = exc
        return render(request, "meetings/table.html", context, status=503)
    if answer is not None:
        return answer
    rows = _sorted_rows(rows, sort)
    context |= {
        "rows": [row for row in rows if not show or row.group.name == show],
        "csv_url": page_url + "&format=csv",
        "sort_links": {
            key or "given": table_url(deployment, found.ids, sort=key, show=show) for key in SORTS
        },
    }
    return render(request, "meetings/table.html", context)


CSV_COLUMNS = (
    "deployment",
    "meeting_id",
    "title",
    "state",
    "your_role",
    "your_presence",
    "participants",
    "active_webrtc_sessions",
    "average_rating",
    "updated_at",
    "outcome",
    "message",
    "connvo_request_id",
)


def _csv_cell(value: object) -> object:
    # A spreadsheet runs a cell that starts with one of these as a formula; meeting titles are
    # written by anyone who can create a meeting.
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _table_csv(request: HttpRequest, wanted: list[triage.Wanted], deployment: str) -> HttpResponse:
    try:
        rows = triage.look_up_meetings(
            user=request.user, origin=Origin.from_request(request), wanted=wanted, via=Via.TABLE
        )
    except AuditUnavailable as exc:
        return HttpResponse(exc.message, status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="meetings-{deployment}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        meeting, error = row.meeting, row.error
        updated = (
            datetime.fromtimestamp(meeting.updated_at / 1000, tz=UTC).isoformat() if meeting else ""
        )
        values = (
            row.deployment,
            row.meeting_id,
            meeting.title if meeting else "",
            meeting.state if meeting else "",
            meeting.user_role if meeting else "",
            meeting.user_presence if meeting else "",
            meeting.participant_count if meeting else None,
            meeting.active_webrtc_sessions if meeting else None,
            meeting.average_rating if meeting else None,
            updated,
            error.kind if error else Outcome.FOUND,
            row.failure,
            error.request_id if error else None,
        )
        writer.writerow([_csv_cell(v) for v in values])
    return response


def _back_to(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(fallback)


@require_POST
@agent_view
def watch(request: HttpRequest, deployment_name: str, meeting_id: str) -> HttpResponse:
    deployment = _deployment_or_404(deployment_name).name
    detail = reverse("meetings:detail", args=[deployment, meeting_id])
    try:
        meeting_id = parse_meeting_id(meeting_id)
    except InvalidMeetingId as exc:
        messages.error(request, exc.message)
        return redirect(detail)
    pins = WatchedMeeting.objects.filter(user=request.user)
    if pins.filter(finished_state="").count() >= settings.CONNVO_TABLE_MAX_MEETINGS:
        messages.error(
            request,
            f"You are already watching {settings.CONNVO_TABLE_MAX_MEETINGS} meetings, as many as "
            "one table shows. Unpin some on the Watching page first.",
        )
        return redirect(detail)
    _, created = WatchedMeeting.objects.get_or_create(
        user=request.user, deployment=deployment, meeting_id=meeting_id
    )
    if created:
        messages.success(request, "Pinned to your watch list (Watching, in the top bar).")
    return _back_to(request, detail)


@require_POST
@agent_view
def unwatch(request: HttpRequest, deployment_name: str, meeting_id: str) -> HttpResponse:
    removed, _ = WatchedMeeting.objects.filter(
        user=request.user, deployment=deployment_name, meeting_id=meeting_id
    ).delete()
    if removed:
        messages.success(request, "Unpinned from your watch list.")
    return _back_to(request, reverse("meetings:watching"))


def _watch_list_key(pins: Iterable[WatchedMeeting]) -> str:
    joined = "|".join(f"{p.deployment}/{p.meeting_id}" for p in pins)
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


@require_GET
@vary_on_headers("HX-Request")
@agent_view
def watching(request: HttpRequest) -> HttpResponse:
    """The agent's pinned meetings: the live ones as a live triage table, finished ones apart."""
    pins = list(WatchedMeeting.objects.filter(user=request.user))
    live_pins = [p for p in pins if not p.is_finished]
    key = _watch_list_key(live_pins)
    if request.htmx and request.GET.get("list") != key:
        # Pinned or unpinned elsewhere since this page was drawn: its rows no longer line up.
        return HttpResponseClientRefresh()
    context = {
        "form": LookupForm(
            initial={
                "deployment": preferred_deployment(
                    remembered=request.session.get(SESSION_DEPLOYMENT), user=request.user
                )
            }
        ),
        "watch_list": True,
        "list_key": key,
        "production_names": set(settings.CONNVO_PRODUCTION_DEPLOYMENTS),
    }
    wanted = [triage.Wanted(p.deployment, p.meeting_id) for p in live_pins]
    try:
        rows, answer = _live_table(
            request,
            wanted=wanted,
            template="meetings/table.html",
            context=context,
            page_url=reverse("meetings:watching"),
        )
    except AuditUnavailable as exc:
        context["audit_error"] = exc
        return render(request, "meetings/table.html", context, status=503)
    finished = [
        (pin, row.meeting)
        for row in rows
        if row.meeting is not None and not row.meeting.is_live
        for pin in [live_pins[row.index]]
    ]
    now = timezone.now()
    for pin, meeting in finished:
        pin.finished_state, pin.finished_at, pin.title = meeting.state, now, meeting.title[:300]
        pin.save(update_fields=["finished_state", "finished_at", "title"])
    if answer is not None:
        # A meeting that finished moves to the finished group: redraw the page.
        return HttpResponseClientRefresh() if finished else answer
    if finished:
        # Drawn without the meetings that just finished, numbered as the next refresh will see it.
        ended = {pin.pk for pin, _ in finished}
        live_pins = [p for p in live_pins if p.pk not in ended]
        still_live = [r for r in rows if r.meeting is None or r.meeting.is_live]
        rows = [dataclasses.replace(row, index=i) for i, row in enumerate(still_live)]
        context |= _table_state(rows, settled={}, failures=0, total=len(rows))[1]
        context["list_key"] = _watch_list_key(live_pins)
    context |= {"rows": rows, "finished": [p for p in pins if p.is_finished]}
    return render(request, "meetings/table.html", context)
