"""What the console remembers of an agent's recent work, for the pages that offer it back: the
deployment they last used, and the meetings they looked up (with the title and state they last
saw). One home, so every page that lists recent meetings lists the same thing."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from audit import selectors

from ..connvo import Meeting
from ..deployments import deployments

RECENT_LOOKUPS = 10
SESSION_DEPLOYMENT = "connvo_deployment"
SESSION_SEEN_MEETINGS = "connvo_seen_meetings"


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
    """The agent's recent lookups, newest first, each with what they saw of the meeting (its
    title and state) when this session showed it."""
    seen = request.session.get(SESSION_SEEN_MEETINGS, {})
    return [
        {"entry": entry, "seen": seen.get(f"{entry.deployment}/{entry.meeting_id}")}
        for entry in selectors.recent_lookups(user=request.user, limit=RECENT_LOOKUPS)
    ]


def remember_shown(request: HttpRequest, deployment_name: str, meeting: Meeting) -> None:
    """A meeting page was shown: its deployment becomes the one offered first, and its title and
    state are what the recent lookups show. Kept in the agent's session (the audit log holds no
    titles), the newest few only."""
    request.session[SESSION_DEPLOYMENT] = deployment_name
    seen = request.session.get(SESSION_SEEN_MEETINGS, {})
    seen.pop(f"{deployment_name}/{meeting.id}", None)
    # A meeting Connvo sent in a shape the console does not fully know may lack either.
    seen[f"{deployment_name}/{meeting.id}"] = {
        "title": meeting.title or "",
        "state": "" if meeting.state is None else str(meeting.state),
    }
    request.session[SESSION_SEEN_MEETINGS] = dict(list(seen.items())[-2 * RECENT_LOOKUPS :])
