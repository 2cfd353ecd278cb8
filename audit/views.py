"""The audit pages, for auditors: the log with filters, a meeting's history, a staff member's
activity, one entry, and streamed exports. Also the console's 403 page, which records the
refusal in the log."""

from __future__ import annotations

import logging
from datetime import timedelta

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

from . import exports, insights, overview, rollup, selectors
from .forms import AuditFilterForm
from .models import Action, AuditEntry
from .selectors import BadCursor, Cursor
from .services import Origin, record, record_or_log

logger = logging.getLogger(__name__)

view_permission = permission_required("audit.view_auditentry", raise_exception=True)
export_permission = permission_required("audit.export_auditentry", raise_exception=True)
CURSOR_PARAMS = ("before", "after")


def _cursor(request: HttpRequest, name: str) -> Cursor | None:
    text = request.GET.get(name, "")
    if not text:
        return None
    try:
        return Cursor.parse(text)
    except BadCursor:
        return None  # a mangled link shows the newest page rather than an error


def _filter_query(request: HttpRequest) -> str:
    """The current filter as a query string, without the page position."""
    query = request.GET.copy()
    for name in CURSOR_PARAMS:
        query.pop(name, None)
    return query.urlencode()


def _chain_status() -> dict:
    verification = selectors.latest_verification()
    stale_after = timedelta(hours=settings.AUDIT_VERIFY_WARN_AFTER_HOURS)
    return {
        "verification": verification,
        "verification_stale": verification is None
        or timezone.now() - verification.at > stale_after,
    }


# Entries the audit page counts into the hourly summary before it shows the overview: enough to
# keep up with the log between two visits; `manage.py audit_rollup` (cron) does the rest.
ROLLUP_PER_VISIT = 20_000


def _entry_list(request: HttpRequest, *, fixed: dict[str, str], extra: dict) -> HttpResponse:
    form = AuditFilterForm(request.GET, fixed=fixed)
    page, summary, status = None, None, 200
    if form.is_valid():
        entry_filter = form.entry_filter()
        page = selectors.page_of(
            selectors.filtered_entries(entry_filter),
            size=settings.AUDIT_PAGE_SIZE,
            before=_cursor(request, "before"),
            after=_cursor(request, "after"),
        )
        if page.newer is None:  # the overview heads the first page only
            rollup.catch_up(limit=ROLLUP_PER_VISIT)
            summary = overview.overview(
                entry_filter, now=timezone.now(), zone=timezone.get_current_timezone()
            )
    else:
        status = 400
    context = {
        "form": form,
        "page": page,
        "overview": summary,
        "filter_query": _filter_query(request),
        "staff_names": get_user_model()
        .objects.order_by("username")
        .values_list("username", flat=True)[:500],
        "deployment_names": list(settings.CONNVO_DEPLOYMENTS),
        **_chain_status(),
        **extra,
    }
    return render(request, "audit/entry_list.html", context, status=status)


@require_GET
@login_required
@view_permission
def entry_list(request: HttpRequest) -> HttpResponse:
    flags = None
    if not request.GET:  # the log as it opens: what stands out lately
        rollup.catch_up(limit=ROLLUP_PER_VISIT)
        flags = insights.find_flags(now=timezone.now())
    return _entry_list(request, fixed={}, extra={"flags": flags})


@require_GET
@login_required
@view_permission
def meeting_history(request: HttpRequest, meeting_id: str) -> HttpResponse:
    extra = {
        "meeting_id": meeting_id,
        "viewers": selectors.who_looked(meeting_id=meeting_id),
        "deployments": selectors.meeting_deployments(meeting_id=meeting_id),
        "viewers_shown": selectors.VIEWERS_SHOWN,  # read at call time: tests lower it
    }
    return _entry_list(request, fixed={"meeting_id": meeting_id}, extra=extra)


@require_GET
@login_required
@view_permission
def staff_activity(request: HttpRequest, username: str) -> HttpResponse:
    rollup.catch_up(limit=ROLLUP_PER_VISIT)
    extra = {
        "staff_username": username,
        "staff_account": get_user_model().objects.filter(username=username).first(),
        "staff_summary": overview.staff_summary(username=username),
    }
    return _entry_list(request, fixed={"staff": username}, extra=extra)


@require_GET
@login_required
@view_permission
def entry_detail(request: HttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(AuditEntry, pk=pk)
    context = {"entry": entry, **selectors.neighbours(entry), **_chain_status()}
    return render(request, "audit/entry_detail.html", context)


@require_GET
@login_required
@view_permission
@export_permission
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    if fmt not in exports.WRITERS:
        raise Http404("No such export format.")
    form = AuditFilterForm(request.GET)
    list_url = f"{reverse('audit:list')}?{_filter_query(request)}"
    if not form.is_valid():
        messages.error(request, "Fix the filter before exporting.")
        return redirect(list_url)
    entry_filter = form.entry_filter()
    try:
        with transaction.atomic():
            export_entry = record(
                origin=Origin.from_request(request),
                action=Action.AUDIT_EXPORTED,
                detail=f"{fmt.upper()} export of {entry_filter.describe()}",
            )
    except DatabaseError:
        # Like a lookup: an export the log cannot record does not happen.
        logger.exception("audit entry for an export by %s could not be written", request.user)
        messages.error(
            request,
            "The console could not record this export in the audit log, so it did not start. "
            "Try again in a moment.",
        )
        return redirect(list_url)
    # The log as it stood when the export was asked for: not its own entry, nor what is written
    # while it streams.
    entries = selectors.filtered_entries(entry_filter).filter(id__lt=export_entry.pk)
    response = StreamingHttpResponse(
        exports.WRITERS[fmt](entries), content_type=exports.CONTENT_TYPES[fmt]
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    return response


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The console's 403 page (`handler403`), which first writes the refusal to the audit log."""
    match = request.resolver_match
    kwargs = match.kwargs if match else {}
    # The refusal stands either way; only the record of it may be lost, loudly.
    record_or_log(
        origin=Origin.from_request(request),
        action=Action.PERMISSION_DENIED,
        deployment=str(kwargs.get("deployment_name", "")),
        meeting_id=str(kwargs.get("meeting_id", "")),
        http_status=403,
        detail=f"{request.method} {request.path}",
    )
    if request.htmx:
        # A live refresh refused (e.g. the agent left the Support group while the page was
        # open): htmx ignores a 403 and would keep polling, so reload the page to show why.
        return HttpResponseClientRefresh()
    return render(request, "403.html", status=403)
