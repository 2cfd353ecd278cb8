"""Many meetings at once: the triage table (and its CSV), the watch list, and watching or
unwatching a meeting. The lookups are meetings/lookups.py's; what a table is (its groups, its
summary, its refresh plan) is meetings/triage.py's."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh

from audit.exports import FORMULA_STARTS
from audit.models import Via
from audit.services import Origin
from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id

from .. import triage
from ..connvo import outcome_handling
from ..deployments import (
    Deployment,
    UnknownDeployment,
    deployments,
    get_deployment,
    production_names,
)
from ..forms import SORTS, LookupForm, TableForm, ViewForm, WatchListForm
from ..live import Shown, push_enabled, reply_status
from ..lookups import Answer, AuditUnavailable, Wanted, look_up, span_key
from ..models import WatchedMeeting
from ..references import References
from ..templatetags.meeting_format import ms_iso
from .access import agent_view, asks_before_looking_up
from .confirm import confirm_lookup, confirm_watch_list
from .recent import preferred_deployment

MAX_REJECTED_LISTED = 10
MAX_IGNORED_LISTED = 30


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


def filter_words(deployment: str, ids: Iterable[str], *, sort: str, show: str) -> dict:
    """What a table's page and its pushed rows say of its filter (`show`): its name, as the
    filter's menu words it, and the same table unfiltered."""
    if not show:
        return {"show": ""}
    return {
        "show": show,
        "show_label": dict(TableForm.base_fields["show"].choices)[show],
        "everything_url": table_url(deployment, ids, sort=sort),
    }


# What the address's view choices are called, when the page says one was not understood.
_VIEW_CHOICE_WORDS = {"sort": "sort order", "show": "filter"}


def _say_what_was_not_understood(request: HttpRequest, form: ViewForm) -> None:
    """A line on the page naming each way of showing it that its address asks for and the
    console does not have (an old bookmark's): the page is shown without it."""
    if request.htmx:
        return  # the page said so when it was drawn
    for name, value in form.not_understood().items():
        messages.info(
            request,
            f"This address asks for a {_VIEW_CHOICE_WORDS[name]} the console does not have "
            f"(“{value}”), so the table is shown without it.",
        )


def say_what_was_left_out(request: HttpRequest, found: References) -> None:
    """What the agent pasted that the table does not show, on the page that follows: what looks
    like a mistyped meeting ID, with why; the rest (request IDs, trace IDs, repeats) summed up in
    one quiet line that opens to list the tokens."""
    shown = found.rejected[:MAX_REJECTED_LISTED]
    if shown:
        lines = "; ".join(f"“{r.text}” ({r.reason})" for r in shown)
        more = len(found.rejected) - len(shown)
        if more:
            lines += f"; and {more} more"
        messages.warning(request, f"Not looked up, as not meeting IDs: {lines}")
    quiet = _quiet_line(found)
    if quiet:
        messages.info(request, quiet, extra_tags="quiet")


def _quiet_line(found: References) -> str:
    parts = []
    tokens = found.ignored_tokens
    if tokens:
        parts.append(
            "1 other token ignored" if len(tokens) == 1 else f"{len(tokens)} other tokens ignored"
        )
    if found.duplicates:
        repeated = "1 ID" if found.duplicates == 1 else f"{found.duplicates} IDs"
        parts.append(f"{repeated} pasted more than once, shown once")
    line = " · ".join(parts)
    if not tokens:
        return line
    listed = tokens[:MAX_IGNORED_LISTED]
    more = len(tokens) - len(listed)
    # Built escaped here, and kept so by the message storage: the tokens are pasted text.
    return format_html(
        '<details class="ignored"><summary>{}</summary><ul>{}{}</ul></details>',
        line,
        format_html_join("", "<li><code>{}</code></li>", ((token,) for token in listed)),
        format_html("<li>and {} more</li>", more) if more else "",
    )


_GROUP_ORDER = {group.code: n for n, group in enumerate(triage.GROUPS)}
_SORT_KEYS = {
    "state": lambda row: (_GROUP_ORDER[row.group.code], row.index),
    "outcome": lambda row: (row.meeting is not None, _GROUP_ORDER[row.group.code], row.index),
}
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
            # A figure Connvo sent as something else than a number (drift) sorts with the
            # missing ones rather than breaking the comparison.
            if not isinstance(number, int | float) or isinstance(number, bool):
                number = None
            # Highest first; meetings without the figure, then failed rows, last.
            return (number is None, -(number or 0), row.index)

        return sorted(rows, key=key)
    return rows


def _live_table(
    request: HttpRequest,
    *,
    wanted: list[Wanted],
    context: dict,
    page_url: str,
    push_to: str,
    sort: str = "",
    show: str = "",
) -> tuple[list[triage.Row], HttpResponse | None]:
    """Look the table's rows up (on a refresh, only those not settled) and answer a refresh.

    The page sends back what its rows show: `done`, the settled rows (not asked again), and
    `known`, the others' groups, so that a row a refresh could not look up for a passing reason
    keeps its last values and still counts as what it showed.

    `push_to`: the address of the page's push stream (meetings/views/push.py), without what the
    rows show, which is added here; the page only polls when push is off for a deployment of its
    meetings, or nothing will change any more.

    Returns the rows looked up, and the response to a refresh (None for a full page, which the
    caller renders)."""
    refreshing = bool(request.htmx)
    shown = Shown.from_query(request.GET) if refreshing else Shown()
    settled = triage.settled_in(request.GET.get("done", ""), len(wanted)) if refreshing else {}
    known = triage.groups_in(request.GET.get("known", ""), len(wanted)) if refreshing else {}
    checked_at = timezone.now()
    turn = triage.turn_in(request.GET.get("turn", ""), len(wanted)) if refreshing else 0
    asked = triage.in_turn([i for i in range(len(wanted)) if i not in settled], start=turn)
    context |= {"page_url": page_url, "checked_at": checked_at, "sort": sort}
    try:
        answers = look_up(
            user=request.user,
            origin=Origin.from_request(request),
            wanted=[wanted[i] for i in asked],
            via=Via.TABLE,
            # A refresh is counted in the page's spans, one per meeting, under the key its
            # poller sends back; the first look opens them.
            span=shown.span if refreshing else None,
            polls_every=shown.interval,
        )
    except AuditUnavailable as failure:
        if not refreshing:
            raise
        # Nothing looked up may be shown: every row asked failed this refresh, as if Connvo had.
        answers = [
            Answer(wanted[i].deployment, wanted[i].meeting_ref, error=failure) for i in asked
        ]
        context["refresh_error"] = failure
    span = span_key(answers, default=shown.span)
    rows = sorted(triage.rows(answers, asked, shown=known), key=lambda row: row.index)
    plan = triage.table_plan(rows, failures=shown.failures, checked_at=checked_at)
    # Every row not settled was asked (one that could not be looked up keeps its last values).
    values = triage.page_values(rows, settled, show=show) | {
        "turn": triage.next_turn(asked, answers, start=turn, size=len(wanted))
    }
    pushed = plan.polling and all(push_enabled(item.deployment) for item in wanted)
    context |= values | {
        "live": plan,
        "span": span,
        "total": len(wanted),
        "push_url": with_query(push_to, span=span, done=values["done"], known=values["known"])
        if pushed
        else "",
    }
    if not refreshing:
        return rows, None
    status = reply_status(plan, shown, span=span)
    if status == 204:
        return rows, HttpResponse(status=204)
    # Every row asked is redrawn, those the filter hides too (hidden): a row that leaves or
    # enters the group shown (a meeting that starts or ends) goes or comes at the next refresh.
    context["rows"] = rows
    return rows, render(request, "meetings/table.html#refresh", context, status=status)


def with_query(url: str, **values: str) -> str:
    """`url` with the non-empty `values` added to its query string."""
    query = urlencode({name: value for name, value in values.items() if value})
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query


def _confirm_table(request: HttpRequest, deployment_name: str) -> HttpResponse:
    return confirm_lookup(request, deployment_name=deployment_name, text=request.GET.get("ids", ""))


@require_GET
@vary_on_headers("HX-Request")
@agent_view
@asks_before_looking_up(_confirm_table)
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
    _say_what_was_not_understood(request, form)
    wanted = [Wanted(deployment, meeting_id) for meeting_id in found.ids]
    if request.GET.get("format") == "csv":
        return _table_csv(request, wanted, deployment, sort=sort, show=show)
    page_url = table_url(deployment, found.ids, sort=sort, show=show)
    path = reverse("meetings:table", args=[deployment])
    context = {
        "deployment": deployments()[deployment],
        "deployment_name": deployment,
        "ids": found.ids,
        # On one line: the compact box shows one line, and the list is what the URL holds.
        "form": LookupForm(initial={"q": " ".join(found.ids), "deployment": deployment}),
        "table_form": form,
        **filter_words(deployment, found.ids, sort=sort, show=show),
    }
    try:
        rows, answer = _live_table(
            request,
            wanted=wanted,
            context=context,
            page_url=page_url,
            push_to=reverse("meetings:push_table", args=[deployment]) + page_url[len(path) :],
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
        # All of them, those the filter (`show`) hides too, so a refresh can show them.
        "rows": rows,
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
    "outcome_label",
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


def _table_csv(
    request: HttpRequest, wanted: list[Wanted], deployment: str, *, sort: str, show: str
) -> HttpResponse:
    """The table as its page shows it: the rows its filter lets through, in its order."""
    try:
        answers = look_up(
            user=request.user, origin=Origin.from_request(request), wanted=wanted, via=Via.TABLE
        )
    except AuditUnavailable as exc:
        return HttpResponse(exc.message, status=503, content_type="text/plain; charset=utf-8")
    rows = _sorted_rows(triage.rows(answers), sort)
    answers = [row.answer for row in rows if not show or row.group.name == show]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="meetings-{deployment}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for answer in answers:
        meeting, error = answer.meeting, answer.error
        values = (
            answer.deployment,
            answer.meeting_id,
            meeting.title if meeting else "",
            meeting.state if meeting else "",
            meeting.user_role if meeting else "",
            meeting.user_presence if meeting else "",
            meeting.participant_count if meeting else None,
            meeting.active_webrtc_sessions if meeting else None,
            meeting.average_rating if meeting else None,
            ms_iso(meeting.updated_at) if meeting else "",
            answer.outcome,
            outcome_handling(answer.outcome, answer.deployment).label,
            error.message if error else "",
            error.request_id if error else None,
        )
        writer.writerow([_csv_cell(v) for v in values])
    return response


def _back_to(request: HttpRequest, fallback: str) -> HttpResponse:
    """Back to the console page the form was on (`next`), or to `fallback`: never elsewhere, and
    never a name Django would try to resolve as a view."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(fallback)


@require_POST
@agent_view
def watch(request: HttpRequest, deployment_name: str, meeting_id: str) -> HttpResponse:
    deployment = _deployment_or_404(deployment_name).name
    detail = reverse("meetings:detail", args=[deployment, meeting_id])
    try:
        meeting_id = parse_meeting_id(meeting_id)
    except InvalidMeetingId as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(detail)
    limit = settings.CONNVO_TABLE_MAX_MEETINGS
    with transaction.atomic():
        # The agent's own row, locked: their concurrent watches are counted one after another,
        # so none can slip past the limit (SQLite's writers queue anyway).
        get_user_model().objects.select_for_update().filter(pk=request.user.pk).first()
        pins = WatchedMeeting.objects.filter(user=request.user)
        if (
            pins.count() >= limit
            and not pins.filter(deployment=deployment, meeting_id=meeting_id).exists()
        ):
            messages.error(
                request,
                f"You are already watching {limit} meetings, as many as one table shows. "
                "Unwatch some on the Watching page first.",
            )
            return HttpResponseRedirect(detail)
        _, created = WatchedMeeting.objects.get_or_create(
            user=request.user, deployment=deployment, meeting_id=meeting_id
        )
    if created:
        messages.success(request, "Added to your watch list (Watching, in the top bar).")
    return _back_to(request, detail)


@require_POST
@agent_view
def unwatch(request: HttpRequest, deployment_name: str, meeting_id: str) -> HttpResponse:
    removed, _ = WatchedMeeting.objects.filter(
        user=request.user, deployment=deployment_name, meeting_id=meeting_id
    ).delete()
    if removed:
        messages.success(request, "Removed from your watch list.")
    return _back_to(request, reverse("meetings:watching"))


def watch_list_key(pins: Iterable[WatchedMeeting]) -> str:
    joined = "|".join(f"{p.deployment}/{p.meeting_id}" for p in pins)
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def watch_list_context(key: str) -> dict[str, object]:
    """What the watch list's page and its pushed rows both draw with: which list they show (`key`,
    from `watch_list_key`) and which of its rows' deployments to tag as production."""
    return {"watch_list": True, "list_key": key, "production_names": production_names()}


def watching_url(*, sort: str = "") -> str:
    return reverse("meetings:watching") + (f"?sort={sort}" if sort else "")


@require_GET
@vary_on_headers("HX-Request")
@agent_view
@asks_before_looking_up(confirm_watch_list)
def watching(request: HttpRequest) -> HttpResponse:
    """The agent's watched meetings as a live triage table; those that have concluded or were
    cancelled are listed apart. Opening it changes nothing: a finished meeting is told apart by
    this look, not stored."""
    pins = list(WatchedMeeting.objects.filter(user=request.user))
    key = watch_list_key(pins)
    if request.htmx and request.GET.get("list") != key:
        # Watched or unwatched elsewhere since this page was drawn: its rows no longer line up.
        return HttpResponseClientRefresh()
    form = WatchListForm(request.GET)
    # An order the console no longer offers (an old bookmark) shows the list as watched.
    sort = form.cleaned_data["sort"] if form.is_valid() else ""
    _say_what_was_not_understood(request, form)
    context = {
        "form": LookupForm(initial={"deployment": preferred_deployment(request)}),
        **watch_list_context(key),
        "sort_form": WatchListForm(initial={"sort": sort}),
    }
    wanted = [Wanted(p.deployment, p.meeting_id) for p in pins]
    try:
        rows, answer = _live_table(
            request,
            wanted=wanted,
            context=context,
            page_url=watching_url(sort=sort),
            push_to=with_query(reverse("meetings:push_watching"), list=key, sort=sort),
            sort=sort,
        )
    except AuditUnavailable as exc:
        context["audit_error"] = exc
        return render(request, "meetings/table.html", context, status=503)
    if answer is not None:
        return answer
    # Settled as concluded or cancelled, so the live refresh does not ask them again either.
    finished = [row for row in rows if row.meeting is not None and not row.meeting.is_live]
    following = [row for row in rows if row.meeting is None or row.meeting.is_live]
    context |= {
        # Sorted on the page only: rows keep their index (their place among the pins), which
        # the live refresh's `done`, `known` and `row-<index>` refer to.
        "rows": _sorted_rows(following, sort),
        "total": len(following),
        "finished": finished,
        "sort_links": {order or "given": watching_url(sort=order) for order in SORTS},
    }
    return render(request, "meetings/table.html", context)
