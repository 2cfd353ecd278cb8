"""Forms for looking up a meeting and saving a Connvo token. They only parse and check input."""

from django import forms
from django.conf import settings

from connvo_admin.meeting_ids import WHAT_AN_ID_IS, InvalidMeetingId, parse_meeting_id

from . import pasted_tokens
from .deployments import deployments
from .references import References, parse_meeting_references
from .triage import GROUPS


def deployment_choices() -> list[tuple[str, str]]:
    return [
        (d.name, f"{d.name} (production)" if d.is_production else d.name)
        for d in deployments().values()
    ]


# The most one paste is read at a time, in characters as the box counts them (a line break is
# one): a log excerpt of some 800 lines, room for a full table's meetings among the noise around
# them. The form checks it, never the textarea: a `maxlength` makes the browser cut a longer
# paste without a word, and an ID cut there can keep the shape of another one. Form-encoded, any
# ASCII paste this long (at most 6 bytes a character, a line break's `%0D%0A`) stays inside the
# documented nginx's `client_max_body_size 1m` and Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB).
MAX_PASTE = 150_000
# The most a form may send: nginx's `client_max_body_size 1m` (docs/deploy/nginx-site.conf; a test
# holds the two together), below Django's DATA_UPLOAD_MAX_MEMORY_SIZE. A paste mostly outside
# ASCII (%XX for each of its bytes) passes it below MAX_PASTE characters, and would meet nginx's
# bare 413 page (or, without nginx, Django's "Bad Request" from the CSRF check, before any view):
# the page's script says so before sending it (static/js/console.js).
MAX_FORM_BYTES = 1024 * 1024
# Of that, what a paste may take once encoded: the rest is the form's CSRF token and deployment.
MAX_PASTE_BYTES = MAX_FORM_BYTES - 4096
# What an agent is told of a paste over MAX_PASTE, by the form and, before sending it, by the page
# (which fills in {length}).
TOO_LONG = (
    f"That paste is {{length}} characters; the box reads at most {MAX_PASTE:,} at a time. Keep "
    "the part with the meeting IDs (the lines around the incident), or look the rest up in a "
    "second paste."
)


class LookupForm(forms.Form):
    """One meeting reference, or many (a list, or a blob of text that contains them)."""

    q = forms.CharField(
        label="Meeting ID or link",
        error_messages={"required": "Enter a meeting ID, or paste a link to the meeting."},
        widget=forms.Textarea(
            attrs={
                "rows": 1,
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "Paste a meeting ID or link, or many of them (or a log excerpt)",
                "class": "lookup-form__q",
                "data-max-paste": MAX_PASTE,
                "data-too-long": TOO_LONG,
                "data-max-bytes": MAX_PASTE_BYTES,
            }
        ),
    )
    deployment = forms.ChoiceField(
        label="Deployment",
        choices=deployment_choices,
        error_messages={
            # Only an address can name another (a bookmark from before a deployment was removed).
            "invalid_choice": "The console knows no deployment called “%(value)s”: pick one from "
            "the list.",
        },
    )

    def __init__(self, *args, autofocus: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only the start page grabs focus; elsewhere "/" jumps to the box.
        if autofocus:
            self.fields["q"].widget.attrs["autofocus"] = True
            self.fields["q"].widget.attrs["rows"] = 3

    def clean_q(self) -> References:
        text = self.cleaned_data["q"]
        # Browsers send a textarea's line breaks as CR LF: count them as the box showed them.
        length = len(text.replace("\r\n", "\n"))
        if length > MAX_PASTE:
            raise forms.ValidationError(TOO_LONG.format(length=f"{length:,}"), code="too_long")
        return clean_references(text)


def clean_references(text: str) -> References:
    """The meetings a box or a table's address holds, at most as many as one table shows."""
    try:
        found = parse_meeting_references(text)
    except InvalidMeetingId as exc:
        raise forms.ValidationError(exc.message, code="invalid_id") from None
    limit = settings.CONNVO_TABLE_MAX_MEETINGS
    if len(found.ids) > limit:
        raise forms.ValidationError(
            f"That is {len(found.ids)} different meeting IDs; a table holds at most {limit}. Split "
            f"them into tables of {limit} or fewer, so that every meeting is looked up.",
            code="too_many",
        )
    return found


SORTS = {
    "": "As pasted",
    "state": "State",
    "participants": "Participants",
    "webrtc": "Active WebRTC sessions",
    "rating": "Average rating",
    "updated": "Last updated",
    "outcome": "Outcome",
}


def _sort_choices(given_order: str) -> list[tuple[str, str]]:
    return [("", given_order), *((key, label) for key, label in SORTS.items() if key)]


class ViewChoiceField(forms.ChoiceField):
    """How a page is shown (a table's order or filter), as its address says. An address is
    bookmarked and pasted into incident channels, so a value the console does not offer (renamed
    since, or mistyped) shows the page as it comes instead of refusing it: cleaned to "", and
    kept in the form's `not_understood` for the page to say so."""

    def clean(self, value):
        try:
            return super().clean(value)
        except forms.ValidationError:
            return ""


class ViewForm(forms.Form):
    """A form of ViewChoiceFields (and others)."""

    def not_understood(self) -> dict[str, str]:
        """The view choices whose value was not one offered (field name: the value, cut short),
        once the form is cleaned."""
        return {
            name: str(self.data.get(name, ""))[:40]
            for name, field in self.fields.items()
            if isinstance(field, ViewChoiceField)
            and self.data.get(name)
            and not self.cleaned_data.get(name)
        }


class TableForm(ViewForm):
    """The triage table's URL: its meetings, and how they are sorted and filtered."""

    ids = forms.CharField(
        max_length=20_000,
        error_messages={"required": "This table's address holds no meeting IDs."},
    )
    sort = ViewChoiceField(choices=_sort_choices("As pasted"), required=False)
    show = ViewChoiceField(
        # The group's words with a capital, as written elsewhere ("Not a meeting ID", not "id").
        choices=[
            ("", "Everything"),
            *((g.name, g.label[:1].upper() + g.label[1:]) for g in GROUPS),
        ],
        required=False,
    )

    def clean_ids(self) -> References:
        text = self.cleaned_data["ids"]
        try:
            return clean_references(text)
        except forms.ValidationError as refused:
            entries = [entry.strip() for entry in text.split(",") if entry.strip()]
            if len(entries) > 1 and refused.messages == [_as_one_id(text)]:
                # The address is a list: "“foo,bar” is not a meeting ID" reads as one ID.
                raise forms.ValidationError(_none_is_an_id(entries), code="invalid_id") from None
            raise


def _as_one_id(text: str) -> str:
    """What the console says of `text` read as one meeting ID (empty if it is one)."""
    try:
        parse_meeting_id(text)
    except InvalidMeetingId as exc:
        return exc.message
    return ""


def _none_is_an_id(entries: list[str], shown: int = 5) -> str:
    quoted = ", ".join(f"“{entry[:40]}”" for entry in entries[:shown])
    more = f" and {len(entries) - shown} more" if len(entries) > shown else ""
    return f"None of this table's IDs is a Connvo meeting ID: {quoted}{more}. {WHAT_AN_ID_IS}"


class WatchListForm(ViewForm):
    """How the watch list is sorted (its meetings are the agent's pins, not the URL's)."""

    sort = ViewChoiceField(choices=_sort_choices("As watched"), required=False)


class TokenForm(forms.Form):
    deployment = forms.ChoiceField(choices=deployment_choices, widget=forms.HiddenInput)
    token = forms.CharField(
        label="Connvo token",
        # No max_length: `inspect_token` says what is wrong with a paste, too long included.
        strip=False,
        error_messages={"required": "Paste your Connvo token."},
        widget=forms.PasswordInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "eyJ…"},
            render_value=False,
        ),
    )

    def clean_token(self) -> str:
        raw = self.cleaned_data["token"]
        try:
            pasted_tokens.inspect_token(raw)
        except pasted_tokens.TokenNotAccepted as exc:
            raise forms.ValidationError(str(exc), code="token") from None
        return raw


class RemoveTokenForm(forms.Form):
    deployment = forms.ChoiceField(choices=deployment_choices, widget=forms.HiddenInput)
