"""The audit pages' filter form: it parses the GET parameters into an `EntryFilter`, and names the
filters in force for the page's removable chips."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import QueryDict
from django.utils import dateformat, timezone

from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id
from connvo_admin.outcomes import describe, recorded_outcomes

from . import records
from .models import Action, AuditEntry, Via
from .selectors import EntryFilter
from .services import storable


def _choices(pairs) -> list[tuple[str, str]]:
    return [("", "Any"), *pairs]


def outcome_choices() -> list[tuple[str, str]]:
    """Every outcome a lookup can be recorded with, and the calls counted that never got one (a
    sealed span's: audit/spans.py), named as their badges name them."""
    return _choices(
        [
            *((outcome.value, outcome.label) for outcome in recorded_outcomes()),
            (records.UNANSWERED, describe(records.UNANSWERED).label),
        ]
    )


OUTCOME_LENGTH = AuditEntry._meta.get_field("outcome").max_length

# Far enough from year 1 and year 9999 that a whole day in any timezone, and the day after the
# last one, are still datetimes (a date at either end made the query overflow: a 500, or an export
# cut short after it had started).
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(9998, 12, 31)
DATE_RANGE_MESSAGE = "Choose a date between 1 January 1900 and 31 December 9998."


# The parameters that place a page of the list, not filter it.
CURSOR_PARAMS = ("before", "after")
# How the log writes a day (audit/templatetags/audit_display.py writes its times the same way).
LOG_DAY = "j M Y"


@dataclass(frozen=True, slots=True)
class ActiveFilter:
    """One filter in force, for a chip that removes it: a link to the same page without it."""

    name: str  # the GET parameter, or for a page's own filter the field it stands for
    label: str  # "Staff member"
    value: str  # as the page shows it: a choice's label, a day as the log writes it; "" for a box
    query: str  # the page's query string without this filter (nor the page position)
    valid: bool = True
    # The page's own filter (a meeting's history, a staff member's activity): removing it leads
    # to the whole log, with the other filters.
    fixed: bool = False
    note: str = ""  # said after a value that is taken but matches nothing ("never in the log")


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self) -> None:
        super().__init__(attrs={"min": FIRST_DATE.isoformat(), "max": LAST_DATE.isoformat()})


def date_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        widget=DateInput,
        validators=[
            MinValueValidator(FIRST_DATE, message=DATE_RANGE_MESSAGE),
            MaxValueValidator(LAST_DATE, message=DATE_RANGE_MESSAGE),
        ],
    )


class AuditFilterForm(forms.Form):
    staff = forms.CharField(
        label="Staff member",
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"list": "staff-names", "autocomplete": "off"}),
    )
    meeting = forms.CharField(
        label="Meeting ID or link",
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    deployment = forms.CharField(
        label="Deployment",
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"list": "deployment-names", "autocomplete": "off"}),
    )
    action = forms.ChoiceField(label="Action", required=False, choices=_choices(Action.choices))
    outcome = forms.ChoiceField(label="Outcome", required=False, choices=outcome_choices)
    via = forms.ChoiceField(label="Via", required=False, choices=_choices(Via.choices))
    since = date_field("From")
    until = date_field("To")
    refreshes = forms.BooleanField(label="Include live refreshes", required=False)
    audit_views = forms.BooleanField(label="Include audit page views", required=False)

    # The filter each form field feeds, for the pages that fix one of them, and its chip's name.
    FIELD_FOR = {"staff": "staff", "meeting_id": "meeting"}
    FIXED_LABELS = {"staff": "Staff member", "meeting_id": "Meeting"}

    def __init__(self, *args, fixed: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fixed = fixed or {}
        for name in self.fixed:
            del self.fields[self.FIELD_FOR[name]]
        field = self.fields["outcome"]
        asked = self.data.get("outcome", "") if self.is_bound else ""
        if (
            asked
            and asked not in dict(field.choices)
            and len(asked) <= OUTCOME_LENGTH
            and storable(asked) == asked
        ):
            # An outcome an older or newer console wrote: the overview lists it as a link to its
            # entries, so the filter takes it, named as the badges name it. Only what the log
            # could hold: a NUL would reach the database's query, which refuses it.
            field.choices = [*field.choices, (asked, describe(asked).label)]

    def _kept(self) -> QueryDict:
        """The query string's own filters, without the page position: a copy to change."""
        kept = self.data.copy()
        for dropped in CURSOR_PARAMS:
            kept.pop(dropped, None)
        return kept

    def log_query(self) -> str:
        """The whole filter as a query string of the log's own page (and of an export), which has
        no meeting or staff member in its path: the page's fixed filter travels as the field it
        stands for (meeting=…, staff=…), so an export of a meeting's page is of that meeting."""
        query = self._kept()
        for name, value in self.fixed.items():
            query[self.FIELD_FOR[name]] = value
        return query.urlencode()

    def active_filters(self) -> list[ActiveFilter]:
        """The filters the query string sets, in the form's order, each with the query that
        keeps all the others. A value the form refused is named as typed, so it can be removed."""
        kept = self._kept()
        chips = [
            ActiveFilter(name, self.FIXED_LABELS[name], value, kept.urlencode(), fixed=True)
            for name, value in self.fixed.items()
        ]
        for name, field in self.fields.items():
            if not self.data.get(name, "").strip():
                continue
            query = kept.copy()
            query.pop(name, None)
            valid = name not in self.errors
            value = self._shown(name, field) if valid else self.data.get(name, "")[:64]
            if isinstance(field, forms.BooleanField):
                if not (valid and self.cleaned_data.get(name)):
                    continue  # "off" or nonsense is the default, not a filter
                value = ""
            chips.append(ActiveFilter(name, str(field.label), value, query.urlencode(), valid))
        return chips

    def unknown_outcome(self) -> str:
        """The outcome filtered by when this console names no such outcome (taken: an older or
        newer console may have written it), else ""."""
        outcome = getattr(self, "cleaned_data", {}).get("outcome", "")
        return outcome if outcome and outcome not in dict(outcome_choices()) else ""

    def _shown(self, name: str, field: forms.Field) -> str:
        value = self.cleaned_data.get(name)
        if isinstance(value, date):
            return dateformat.format(value, LOG_DAY)
        if isinstance(field, forms.ChoiceField):
            return str(dict(field.choices).get(value, value))
        return str(value).strip() if value is not None else ""

    def clean_meeting(self) -> str:
        """An auditor may paste a link, like an agent; anything else is matched as typed (the log
        also holds the IDs that were not valid)."""
        text = self.cleaned_data["meeting"].strip()
        if not text:
            return ""
        try:
            return parse_meeting_id(text)
        except InvalidMeetingId:
            return text[:64]

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def entry_filter(self) -> EntryFilter:
        """The filter for a valid form, with the page's fixed value (a meeting's or a staff
        member's page)."""
        data = self.cleaned_data
        # Dates are whole days in the viewer's timezone (their browser's, when known).
        zone = timezone.get_current_timezone()
        since = data.get("since")
        until = data.get("until")
        values = {
            "staff": data.get("staff", "").strip(),
            "meeting_id": data.get("meeting", ""),
            "deployment": data.get("deployment", "").strip(),
            "outcome": data.get("outcome", ""),
            "via": data.get("via", ""),
            "action": data.get("action", ""),
            "since": datetime.combine(since, time.min, zone) if since else None,
            "until": datetime.combine(until + timedelta(days=1), time.min, zone) if until else None,
            "include_refreshes": bool(data.get("refreshes")),
            "include_audit_views": bool(data.get("audit_views")),
        }
        return EntryFilter(**(values | self.fixed))
