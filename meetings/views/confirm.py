"""The question the console asks before looking up for a link from another site, on the start
page: what was asked for, filled into the lookup form, with nothing looked up or recorded yet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from connvo_admin.outcomes import LookupFailed

from ..forms import LookupForm
from ..references import parse_meeting_references
from .recent import preferred_deployment, recent_meetings


@dataclass(frozen=True, slots=True)
class Asked:
    """What a link from another site asked the console to look up (nothing is, until the agent
    confirms)."""

    deployment: str
    meeting_ids: Sequence[str] = ()
    watch_list: bool = False

    @property
    def heading(self) -> str:
        one = len(self.meeting_ids) == 1 and not self.watch_list
        return "Open this meeting?" if one else "Open these meetings?"


def start_page_response(
    request: HttpRequest, form: LookupForm, *, asked: Asked | None = None, status: int = 200
) -> HttpResponse:
    context = {"form": form, "recent": recent_meetings(request), "asked": asked}
    return render(request, "meetings/lookup.html", context, status=status)


def confirm_lookup(request: HttpRequest, *, deployment_name: str, text: str) -> HttpResponse:
    """The start page with the lookup form filled in with what the link asked for, saying that
    nothing has been looked up yet; **Look up** submits it from the console itself."""
    try:
        ids = parse_meeting_references(text).ids
    except LookupFailed:
        ids = ()
    form = LookupForm(initial={"q": text, "deployment": deployment_name}, autofocus=True)
    return start_page_response(request, form, asked=Asked(deployment_name, ids))


def confirm_watch_list(request: HttpRequest) -> HttpResponse:
    form = LookupForm(initial={"deployment": preferred_deployment(request)}, autofocus=True)
    return start_page_response(request, form, asked=Asked("", watch_list=True))
