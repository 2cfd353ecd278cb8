"""The audit pages, for auditors: the log with filters, a meeting's history, a staff member's
activity, one entry, and streamed exports. Also the console's 403 page, which records the
refusal in the log."""

from __future__ import annotations

import dataclasses
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required, permission_required
from django.db import DatabaseError, transaction
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRefresh

from connvo_admin.cross_site import asks_before_acting

from . import (
    chain_health,
    exports,
    insights,
    overview,
    records,
    repeats,
    rollup,
    selectors,
    spans,
)
from .forms import CURSOR_PARAMS, ActiveFilter, AuditFilterForm
from .models import EXPORT_LOG_PERMISSION, VIEW_LOG_PERMISSION, Action, AuditEntry
from .selectors import BadCursor, Cursor
from .services import Origin, record, record_or_log

logger = logging.getLogger(__name__)

view_permission = permission_required(VIEW_LOG_PERMISSION, raise_exception=True)
export_permission = permission_required(EXPORT_LOG_PERMISSION, raise_exception=True)


def _cursor(request: HttpRequest, name: str) -> Cursor | None:
    text = request.GET.get(name, "")
    if not text:
        return None
    try:
        return Cursor.parse(text)
    except BadCursor:
        return None  # a mangled link shows the newest page rather than an error


def _duration(seconds: int) -> str:
    if seconds % 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def _chain_status() -> dict:
    """The chain-health panel at the top of every audit page (audit/chain_health.py), with the
    cadences its warnings name."""
    hours = settings.AUDIT_VERIFY_WARN_AFTER_HOURS
    health = chain_health.chain_health(now=timezone.now())
    return {
        "health": health,
        "checkpoint_interval": _duration(settings.AUDIT_CHECKPOINT_INTERVAL),
        # The window the panel judged by, in words: "recent" is the panel's to say.
        "recent_words": _duration(int(health.recent.total_seconds())),
        "verify_warn_after": f"{hours} hour{'' if hours == 1 else 's'}",
        "checkpoint_file": settings.AUDIT_CHECKPOINT_FILE,
    }


def _seal_due() -> None:
    """Seal into the chain what is due (quiet spans, spans due a periodic seal, past minutes'
    counted refusals) before a page reads the log, so it shows records rather than counts that
    wait for the timer (`manage.py audit_seal`). Cheap when nothing is due: one indexed query
    each. A seal that fails leaves the counts where they are (the page shows them as open):
    the page still shows, loudly logged."""
    try:
        spans.seal_what_is_due()
        repeats.seal_past()
    except DatabaseError:
        logger.exception("what is due could not be sealed before an audit page")


# Entries the audit page counts into the hourly summary before it shows the overview: enough to
# keep up with the log between two visits; `manage.py audit_rollup` (cron) does the rest.
ROLLUP_PER_VISIT = 20_000


def _record_view(request: HttpRequest, *, what: str, meeting_id: str = "") -> None:
    """Write an auditor's page view to the log (the watchers are watched). Whole pages only: a
    fragment a page loads is part of the view already recorded. A view the log cannot record
    still shows (the log is what is being read; refusing it helps nobody), loudly. A view another
    site sent is never recorded: it is asked about first (`_ask_first`)."""
    if request.htmx:
        return
    record_or_log(
        origin=Origin.from_request(request),
        action=Action.AUDIT_VIEWED,
        meeting_id=meeting_id,
        detail=what,
    )


def _ask_first(request: HttpRequest, *, heading: str, recorded: str, go: str) -> HttpResponse:
    """The answer to an audit page or export that another site sent the auditor to: what it
    would record in their name, and a link to the same address, which from this page is the
    console's own (nothing is recorded until they follow it)."""
    context = {"heading": heading, "recorded": recorded, "go": go}
    return render(request, "audit/confirm.html", context)


def _list_page(*, meeting_id: str | None = None, username: str | None = None) -> tuple[dict, str]:
    """A list page's own filter (a meeting's history, a staff member's activity), and what the
    log calls the page in the record of a view of it."""
    if meeting_id is not None:
        return {"meeting_id": meeting_id}, "Who looked at the meeting"
    if username is not None:
        return {"staff": username}, f"Activity of {username}"
    return {}, "Audit log"


def _list_viewed(request: HttpRequest, form: AuditFilterForm, viewing: str) -> str:
    """What the log records of a view of a list page."""
    if not form.is_valid():
        return f"{viewing}, with a filter that was not valid"
    paged = " (a later page)" if any(request.GET.get(n) for n in CURSOR_PARAMS) else ""
    return f"{viewing}, filter: {form.entry_filter().describe()}{paged}"


def _confirm_list(request: HttpRequest, **page: str) -> HttpResponse:
    fixed, viewing = _list_page(**page)
    form = AuditFilterForm(request.GET, fixed=fixed)
    return _ask_first(
        request,
        heading="Open this audit page?",
        recorded=_list_viewed(request, form, viewing),
        go="Open the page",
    )


def _active_filters(form: AuditFilterForm) -> list[ActiveFilter]:
    """The form's chips. An outcome this console does not name is taken (an older or newer
    console's), and its chip says so when the log has never held it: "Outcome: Bogus" read as
    a filter like any other, beside "(not valid)" on a bad action or via."""
    chips = form.active_filters()
    unknown = form.unknown_outcome()
    if unknown and not selectors.outcome_on_record(unknown):
        chips = [
            dataclasses.replace(chip, note="never in the log") if chip.name == "outcome" else chip
            for chip in chips
        ]
    return chips


def _entry_list(request: HttpRequest, *, listing: tuple[dict, str], extra: dict) -> HttpResponse:
    fixed, viewing = listing
    form = AuditFilterForm(request.GET, fixed=fixed)
    page, summary, status, open_now, counting = None, None, 200, [], []
    if form.is_valid():
        entry_filter = form.entry_filter()
        page = selectors.page_of(
            selectors.filtered_entries(entry_filter),
            size=settings.AUDIT_PAGE_SIZE,
            before=_cursor(request, "before"),
            after=_cursor(request, "after"),
        )
        if page.newer is None:  # the overview and open spans head the first page only
            open_now = selectors.open_spans(entry_filter, now=timezone.now())
            counting = selectors.counting_now(entry_filter)
            rollup.catch_up(limit=ROLLUP_PER_VISIT)
            summary = overview.overview(
                entry_filter, now=timezone.now(), zone=timezone.get_current_timezone()
            )
    else:
        status = 400
    # The panel describes the log as the auditor opened it, not counting this view's own entry.
    chain_status = _chain_status()
    _record_view(
        request, what=_list_viewed(request, form, viewing), meeting_id=fixed.get("meeting_id", "")
    )
    named = [(e.deployment, e.meeting_id) for e in (page.entries if page else ())]
    named += [(d, m) for d, m, _ in (summary.top_meetings if summary else ())]
    named += [(item.span.deployment, item.span.meeting_id) for item in open_now]
    context = {
        "open_spans": open_now,
        "open_spans_shown": selectors.OPEN_SPANS_SHOWN,
        "counting": counting,
        "seen_meetings": selectors.seen_meetings(named),
        "form": form,
        "page": page,
        "overview": summary,
        "log_query": form.log_query(),
        "active_filters": _active_filters(form),
        "staff_names": get_user_model()
        .objects.order_by("username")
        .values_list("username", flat=True)[:500],
        "deployment_names": list(settings.CONNVO_DEPLOYMENTS),
        **chain_status,
        **extra,
    }
    return render(request, "audit/entry_list.html", context, status=status)


@require_GET
@login_required
@view_permission
@asks_before_acting(_confirm_list)
def entry_list(request: HttpRequest) -> HttpResponse:
    _seal_due()
    flags = None
    if not request.GET:  # the log as it opens: what stands out lately
        rollup.catch_up(limit=ROLLUP_PER_VISIT)
        flags = insights.find_flags(now=timezone.now(), zone=timezone.get_current_timezone())
    return _entry_list(request, listing=_list_page(), extra={"flags": flags})


@require_GET
@login_required
@view_permission
@asks_before_acting(_confirm_list)
def meeting_history(request: HttpRequest, meeting_id: str) -> HttpResponse:
    _seal_due()
    extra = {
        "meeting_id": meeting_id,
        "meeting_title": selectors.seen_title(meeting_id=meeting_id),
        "viewers": selectors.who_looked(meeting_id=meeting_id),
        "deployments": selectors.meeting_deployments(meeting_id=meeting_id),
        "viewers_shown": selectors.VIEWERS_SHOWN,  # read at call time: tests lower it
    }
    return _entry_list(request, listing=_list_page(meeting_id=meeting_id), extra=extra)


@require_GET
@login_required
@view_permission
@asks_before_acting(_confirm_list)
def staff_activity(request: HttpRequest, username: str) -> HttpResponse:
    _seal_due()
    rollup.catch_up(limit=ROLLUP_PER_VISIT)
    extra = {
        "staff_username": username,
        "staff_account": get_user_model().objects.filter(username=username).first(),
        "staff_summary": overview.staff_summary(username=username),
        "access_changes": selectors.access_changes(username=username),
    }
    return _entry_list(request, listing=_list_page(username=username), extra=extra)


def _entry_viewed(pk: int) -> str:
    return f"Entry #{pk}"


def _confirm_entry(request: HttpRequest, pk: int) -> HttpResponse:
    return _ask_first(
        request, heading="Open this audit entry?", recorded=_entry_viewed(pk), go="Open the entry"
    )


@require_GET
@login_required
@view_permission
@asks_before_acting(_confirm_entry)
def entry_detail(request: HttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(AuditEntry, pk=pk)
    chain_status = _chain_status()
    kind = records.kind(entry.tally)
    _record_view(request, what=_entry_viewed(entry.pk))
    context = {
        "entry": entry,
        "span": records.span_facts(calls=entry.calls, outcome=entry.outcome, tally=entry.tally)
        if kind == records.SPAN
        else None,
        "counted": records.repeat_facts(repeats=entry.repeats, tally=entry.tally)
        if kind == records.REPEATS or entry.repeats is not None
        else None,
        "late": kind == records.LATE_ANSWER,
        "seen_meetings": selectors.seen_meetings([(entry.deployment, entry.meeting_id)]),
        **selectors.neighbours(entry),
        **chain_status,
    }
    return render(request, "audit/entry_detail.html", context)


def _export_form(request: HttpRequest, fmt: str) -> AuditFilterForm:
    """The filter of an export in a format there is (404 for another)."""
    if fmt not in exports.WRITERS:
        raise Http404("No such export format.")
    return AuditFilterForm(request.GET)


def _log_with_filter(form: AuditFilterForm) -> str:
    """The log, filtered as the export asked: where an export that does not start goes back."""
    return f"{reverse('audit:list')}?{form.log_query()}"


def _fix_the_filter(request: HttpRequest, form: AuditFilterForm) -> HttpResponse:
    messages.error(request, "Fix the filter before exporting.")
    return redirect(_log_with_filter(form))


def _exported(fmt: str, form: AuditFilterForm) -> str:
    """What the log records of an export (its own entry, written before it starts)."""
    return f"{fmt.upper()} export of {form.entry_filter().describe()}"


def _confirm_export(request: HttpRequest, fmt: str) -> HttpResponse:
    form = _export_form(request, fmt)
    if not form.is_valid():
        return _fix_the_filter(request, form)
    return _ask_first(
        request,
        heading="Export the audit log?",
        recorded=_exported(fmt, form),
        go=f"Export as {fmt.upper()}",
    )


@require_GET
@login_required
@view_permission
@export_permission
@asks_before_acting(_confirm_export)
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    form = _export_form(request, fmt)
    if not form.is_valid():
        return _fix_the_filter(request, form)
    _seal_due()
    entry_filter = form.entry_filter()
    try:
        with transaction.atomic():
            export_entry = record(
                origin=Origin.from_request(request),
                action=Action.AUDIT_EXPORTED,
                detail=_exported(fmt, form),
            )
    except DatabaseError:
        # Like a lookup: an export the log cannot record does not happen.
        logger.exception("audit entry for an export by %s could not be written", request.user)
        messages.error(
            request,
            "The console could not record this export in the audit log, so it did not start. "
            "Try again in a moment.",
        )
        return redirect(_log_with_filter(form))
    # The log as it stood when the export was asked for: not its own entry, nor what is written
    # while it streams.
    entries = selectors.filtered_entries(entry_filter).filter(id__lt=export_entry.pk)
    # Spans still open, as they stand as the export starts, marked as not yet sealed.
    open_now = selectors.open_spans(entry_filter, now=timezone.now(), limit=None)
    # And refusals still being counted, as the counted records they will be sealed as.
    counting = selectors.counting_now(entry_filter, limit=None)
    response = StreamingHttpResponse(
        exports.WRITERS[fmt](entries, open_now, counting, outcome=entry_filter.outcome),
        content_type=exports.CONTENT_TYPES[fmt],
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    return response


def _record_refusal(
    request: HttpRequest, *, detail: str, kind: repeats.Kind, source: str = ""
) -> None:
    match = request.resolver_match
    kwargs = match.kwargs if match else {}
    # The refusal stands either way; only the record of it may be lost, loudly. Repeats from one
    # source are counted (audit/repeats.py), so a flood of them cannot flood the log.
    repeats.refused(
        origin=Origin.from_request(request),
        action=Action.PERMISSION_DENIED,
        kind=kind,
        source=source,
        tried=f"{request.method} {request.path}",
        deployment=str(kwargs.get("deployment_name", "")),
        meeting_id=str(kwargs.get("meeting_id", "")),
        http_status=403,
        detail=detail,
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The console's 403 page (`handler403`), which first writes the refusal to the audit log."""
    # Repeated by a staff member (or, signed out, an address).
    staff = request.user.get_username() if request.user.is_authenticated else ""
    _record_refusal(
        request, detail=f"{request.method} {request.path}", kind=repeats.FORBIDDEN, source=staff
    )
    if request.htmx:
        # A live refresh refused (e.g. the agent left the Support group while the page was
        # open): htmx ignores a 403 and would keep polling, so reload the page to show why.
        return HttpResponseClientRefresh()
    return render(request, "403.html", status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """`CSRF_FAILURE_VIEW`: a form that did not come from this console, or outlived its session.
    Recorded like any other refusal (a forged cross-site request is worth knowing about). The
    console's CSRF_FAILURE_VIEW is accounts' (a stale sign-in form first), which ends here."""
    _record_refusal(
        request,
        detail=f"{request.method} {request.path}: CSRF check failed ({reason})",
        kind=repeats.CSRF,
    )
    return render(request, "403_csrf.html", status=403)
