"""Forms for looking up a meeting and saving a Connvo token. They only parse and check input."""

from django import forms

from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id

from . import pasted_tokens
from .deployments import deployments


def deployment_choices() -> list[tuple[str, str]]:
    return [
        (d.name, f"{d.name} (production)" if d.is_production else d.name)
        for d in deployments().values()
    ]


class LookupForm(forms.Form):
    q = forms.CharField(
        label="Meeting ID or link",
        max_length=2000,
        error_messages={"required": "Enter a meeting ID, or paste a link to the meeting."},
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "Paste a meeting ID or a link to the meeting",
            }
        ),
    )
    deployment = forms.ChoiceField(label="Deployment", choices=deployment_choices)

    def __init__(self, *args, autofocus: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only the start page grabs focus; elsewhere "/" jumps to the box.
        if autofocus:
            self.fields["q"].widget.attrs["autofocus"] = True

    def clean_q(self) -> str:
        try:
            return parse_meeting_id(self.cleaned_data["q"])
        except InvalidMeetingId as exc:
            raise forms.ValidationError(exc.message, code="invalid_id") from None


class TokenForm(forms.Form):
    deployment = forms.ChoiceField(choices=deployment_choices, widget=forms.HiddenInput)
    token = forms.CharField(
        label="Connvo token",
        max_length=pasted_tokens.MAX_TOKEN_LENGTH + 16,
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
