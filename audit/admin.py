"""The audit log in Django's admin: read-only, and light enough for a table of ten million rows
(the auditor pages at /audit/ are the place to search it)."""

from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.utils import dateformat, timezone
from django.utils.functional import cached_property

from connvo_admin.outcomes import recorded_outcomes

from . import records
from .models import Action, AuditEntry

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows: an exact COUNT(*) over millions of entries takes
    seconds, and nobody pages that far in the admin."""

    @cached_property
    def count(self) -> int:
        return self.object_list[: COUNT_CAP + 1].count()


class DeploymentFilter(admin.SimpleListFilter):
    """The configured deployments (the default filter would scan the table for its values)."""

    title = "deployment"
    parameter_name = "deployment"

    def lookups(self, request, model_admin):
        return [(name, name) for name in settings.CONNVO_DEPLOYMENTS]

    def queryset(self, request, queryset):
        return queryset.filter(deployment=self.value()) if self.value() else queryset


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [(outcome.value, outcome.label) for outcome in recorded_outcomes()]

    def queryset(self, request, queryset):
        return queryset.filter(outcome=self.value()) if self.value() else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: audit entries are written by the console, never edited."""

    # "what" folds the action and, for lookups, how it was made into one column, so the whole
    # row fits a 1280 px screen (static/css/admin.css).
    list_display = ["when", "actor_username", "what", "deployment", "meeting_id", "outcome"]
    list_filter = ["action", "via", OutcomeFilter, DeploymentFilter]
    # Exact matches only, each on an indexed column: a substring search reads every row.
    search_fields = ["actor_username__exact", "meeting_id__exact", "connvo_request_id__exact"]
    search_help_text = "A username, a meeting ID or a Connvo request ID, exactly."
    paginator = CappedCountPaginator
    show_full_result_count = False

    @admin.display(description="when", ordering="at")
    def when(self, entry: AuditEntry) -> str:
        """A sealed span or counted record: when its calls or repeats were, then when it was
        sealed (by whichever request came by): a table's spans sealed together read as lookups
        made at the seal's second otherwise."""
        at = dateformat.format(timezone.localtime(entry.at), records.LOG_TIME)
        ran = records.period(entry)
        if ran is None or ran == (None, None):
            return at
        return f"{records.between(*ran)} (sealed {at})"

    @admin.display(description="what", ordering="action")
    def what(self, entry: AuditEntry) -> str:
        if entry.action == Action.LOOKUP and entry.via:
            what = f"Lookup ({entry.get_via_display().lower()})"
            if records.kind(entry.tally) == records.SPAN:
                what += f": {records.count_of(entry.call_count, 'call', 'calls')} of one page"
        else:
            what = entry.get_action_display()
        if entry.repeats is not None:  # a counted record: one row for many refused requests
            what += f" {records.TIMES}{entry.repeats:,} more"
        return what

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
