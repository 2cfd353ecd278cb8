"""What the console remembers of an agent's recent work, for the pages that offer it back: the
deployment they last used, and the meetings they looked up, named by the title the console last
saw (audit's `SeenMeeting`). One home, so every page that lists recent meetings lists the same
thing."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from audit import selectors
from connvo_admin.outcomes import Outcome

from ..deployments import deployments

RECENT_LOOKUPS = 10
SESSION_DEPLOYMENT = "connvo_deployment"


def preferred_deployment(request: HttpRequest) -> str:
    """The deployment to offer first: where this session last showed a meeting, else where the
    agent's last successful lookup was (the audit log), else the default. An agent who works on
    prod all day does not have to pick it every time."""
    known = deployments()
    name = request.session.get(SESSION_DEPLOYMENT)
    if name not in known:
        name = selectors.last_found_deployment(user=request.user)
    return name if name in known else settings.CONNVO_DEFAULT_DEPLOYMENT


def recent_meetings(request: HttpRequest) -> list[dict]:
    """The agent's recent lookups, newest first, each named by what Connvo showed this agent of
    the meeting: only where their own last lookup found it, and only the title their own
    lookups were shown (not one a colleague's lookup saw later, after the meeting was renamed
    and this agent taken off it): a title Connvo shows others but not this agent stays
    Connvo's to show. Otherwise the meeting is named by its ID."""
    entries = selectors.recent_lookups(user=request.user, limit=RECENT_LOOKUPS)
    seen = selectors.seen_meetings(
        ((e.deployment, e.meeting_id) for e in entries), seen_by=request.user.get_username()
    )
    return [
        {
            "entry": entry,
            "seen": seen.get((entry.deployment, entry.meeting_id))
            if entry.outcome == Outcome.FOUND
            else None,
        }
        for entry in entries
    ]


def remember_deployment(request: HttpRequest, deployment_name: str) -> None:
    """A meeting page was shown: its deployment becomes the one offered first."""
    request.session[SESSION_DEPLOYMENT] = deployment_name
