"""Presentation of Connvo values: millisecond timestamps, durations, and the badges for role,
presence and state (text + colour + icon, so no one depends on colour alone)."""

from __future__ import annotations

import json
import math
import unicodedata
from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from connvo_admin.outcomes import Handling
from meetings import connvo
from meetings.connvo import UNKNOWN_VALUE_SHOWN
from meetings.workos_auth import takes_pasted_tokens as takes_pastes

register = template.Library()

BADGES = {
    "role": {
        "host": ("★", "Host"),
        "participant": ("●", "Participant"),
        "observer": ("◐", "Observer"),
    },
    "presence": {
        "invited": ("✉", "Invited"),
        "joined": ("✔", "Joined"),
        "left": ("↩", "Left"),
    },
    "state": {
        "scheduled": ("◷", "Scheduled"),
        "active": ("▶", "Active"),
        "concluded": ("■", "Concluded"),
        "cancelled": ("✕", "Cancelled"),
    },
}
BADGE_LABELS = {"role": "Your role", "presence": "Your presence", "state": "State"}

# Characters that change how text reads without being seen: direction overrides and isolates
# (`Refund \u202eexe.tnemyap\u202c` reads "Refund payment.exe"), zero-width and other format
# characters, control characters, and the blank-looking Hangul fillers. Line breaks and tabs are
# layout, and the zero-width joiner holds emoji sequences together: those stay.
_KEPT = {"\n", "\r", "\t", "\u200d"}
_BLANK_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0"}
# Controls, format characters, private use, unassigned, and the line and paragraph separators
# (U+2028, U+2029: they break a line where nothing shows one).
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cn", "Zl", "Zp"}


def _is_invisible(char: str) -> bool:
    if char in _KEPT:
        return False
    return char in _BLANK_LETTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def _code(char: str) -> str:
    return f"U+{ord(char):04X}"


@register.filter
def reveal_invisible(value: object) -> SafeString:
    """Text from Connvo as HTML, each invisible or direction-control character shown as a marked
    escape (`U+202E`, named in its title). Put it inside `<bdi>` or an element with
    `dir="auto"`, so that its direction cannot affect the page around it."""
    parts = []
    for char in str(value):
        if _is_invisible(char):
            name = unicodedata.name(char, "invisible character").lower()
            parts.append(
                format_html('<span class="invisible-char" title="{}">{}</span>', name, _code(char))
            )
        else:
            parts.append(escape(char))
    return mark_safe("".join(parts))  # noqa: S308 (every part escaped above)


@register.filter
def reveal_invisible_text(value: object) -> str:
    """The same for plain text (the tab title): `[U+202E]`."""
    return "".join(f"[{_code(char)}]" if _is_invisible(char) else char for char in str(value))


# A page shows an instant in the viewer's time zone, which moves it by up to a day (no zone is 24 h
# from UTC): one within a day of the calendar's ends (year 1, 31 Dec 9999) would leave the calendar
# there, and the page would fail while drawing it. Such an instant is shown as no date at all.
_SHOWABLE_FROM = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_SHOWABLE_UNTIL = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


@register.filter
def showable(at: datetime | None) -> datetime | None:
    """`at` if every viewer's time zone can show it, else None."""
    if at is None or not _SHOWABLE_FROM <= at <= _SHOWABLE_UNTIL:
        return None
    return at


def instant(number: object, *, per_second: int = 1) -> datetime | None:
    """The instant `number` seconds (or, with `per_second`, fractions of one) after the epoch, or
    None for what is not a number or not a date every viewer can be shown: the one reading of a
    timestamp from outside (Connvo's answer, a token's claims)."""
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None
    try:
        return showable(datetime.fromtimestamp(number / per_second, tz=UTC))
    except (OverflowError, OSError, ValueError):
        return None  # a number, but no date a calendar has (or NaN)


@register.filter
def ms_datetime(value: object) -> datetime | None:
    """Convex timestamps are float milliseconds since the epoch; None (shown as "—") for one that
    is not a number or not a date every viewer can be shown."""
    return instant(value, per_second=1000)


def ms_iso(value: object) -> str:
    """Connvo's timestamp as ISO 8601 in UTC (the CSV); what is not a timestamp a viewer can be
    shown, as sent."""
    if value is None:
        return ""
    at = ms_datetime(value)
    return at.isoformat() if at is not None else str(value)


# The page's script (static/js/console.js) says these again as the time passes, in the same
# words: `relative` is its relative(), and `humanize_duration` from a minute on its duration();
# tests/browser/test_time_words.py holds the two to each other.


def nearest(amount: float) -> int:
    """`amount` rounded to the nearest whole number, a half up: as the page's script rounds
    (Math.round), not as Python's round() does (a half to even: 2.5 minutes would be "2 min"
    here and "3 min" a tick later)."""
    return math.floor(amount + 0.5)


@register.filter
def relative(value: datetime | None) -> str:
    """ "in 2 h", "5 min ago": precise enough for an agent on the phone."""
    if value is None:
        return ""
    seconds = (value - timezone.now()).total_seconds()
    amount = abs(seconds)
    if amount < 60:
        return "just now"
    if nearest(amount / 60) < 60:
        count, unit = nearest(amount / 60), "min"
    elif nearest(amount / 3600) < 24:
        count, unit = nearest(amount / 3600), "h"
    else:
        count, unit = nearest(amount / 86400), "d"
    return f"in {count} {unit}" if seconds > 0 else f"{count} {unit} ago"


@register.filter
def humanize_duration(seconds: float | None) -> str:
    """ "45 s", "12 min", "1 h 5 min": under a minute in seconds, else to the nearest minute."""
    if seconds is None:
        return ""
    if (whole := nearest(seconds)) < 60:
        return f"{whole} s"
    hours, minutes = divmod(nearest(seconds / 60), 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes else [])
    return " ".join(parts)


@register.filter
def pretty_json(value: object) -> str:
    """Connvo's answer as the page shows it raw: indented, its keys in order."""
    return json.dumps(value, indent=2, sort_keys=True)


@register.filter
def number(value: float | None) -> str:
    """Convex numbers are floats: show 3, not 3.0; keep real fractions."""
    if value is None:
        return ""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


@register.simple_tag
def badge(kind: str, value: str | None) -> str:
    # Built here rather than from a template: a triage table draws three per row.
    known = BADGES[kind].get(str(value)) if value is not None else None
    name = BADGE_LABELS[kind]
    if known is not None:
        icon, label = known
        return format_html(
            '<span class="badge badge--{kind} badge--{value}" title="{name}: {label}">'
            '<span class="badge__icon" aria-hidden="true">{icon}</span>'
            '<span class="visually-hidden">{name}: </span>{label}</span>',
            kind=kind,
            value=value,
            icon=icon,
            label=label,
            name=name,
        )
    # A value Connvo added since the console was written (or none at all): neutral, as sent, and
    # cut as its drift note is (a table draws one per row).
    label = "—" if value is None else Truncator(str(value)).chars(UNKNOWN_VALUE_SHOWN)
    return format_html(
        '<span class="badge badge--{kind} badge--unknown" '
        'title="{name}: {label} (a value the console does not know yet)">'
        '<span class="badge__icon" aria-hidden="true">?</span>'
        '<span class="visually-hidden">{name}: </span><bdi>{shown}</bdi></span>',
        kind=kind,
        name=name,
        label=reveal_invisible_text(label),
        shown=reveal_invisible(label),
    )


@register.simple_tag
def missing(meeting, attribute: str, reason: str) -> SafeString:
    """A "—" for a value Connvo did not send, and why: what Connvo sent instead when it was not
    what the contract says (meeting.drift), else `reason`.

    The why is text, not only a tooltip: a phone has no hover. It is read by screen readers in
    place of the dash, shown on hover on a wide screen, and shown under the dash on a narrow or
    touch screen (static/css/console.css)."""
    why = meeting.drift_reasons.get(attribute) if meeting is not None else None
    sent = getattr(meeting, attribute, None)
    if why is None and isinstance(sent, int | float) and not isinstance(sent, bool):
        # A number shown as "—" is a timestamp that no date (in every time zone) can show.
        why = f"is {sent}, a date beyond the calendar"
    title = f"Connvo's answer: {attribute.replace('_', ' ')} {why}" if why else reason
    return format_html(
        '<span class="missing" title="{}"><span aria-hidden="true">—</span>'
        '<span class="missing__why">{}</span></span>',
        title,
        title,
    )


@register.filter
def planned_end(meeting) -> datetime | None:
    """When the meeting is planned to end: its scheduled start plus its planned duration, when
    Connvo sent both (and they make sense)."""
    start, duration = getattr(meeting, "scheduled_at", None), getattr(meeting, "duration", None)
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
        return None
    begins = ms_datetime(start)
    if begins is None:
        return None
    try:
        return showable(begins + timedelta(seconds=duration))
    except (OverflowError, ValueError):
        return None  # a duration past the calendar's end (or NaN)


@register.filter
def overrun(end: datetime | None, now: datetime | None) -> str:
    """How long past its planned end a meeting is still running: "12 min", "1 h 5 min"."""
    if end is None or now is None or now <= end:
        return ""
    return humanize_duration(max(60.0, (now - end).total_seconds()))


@register.filter
def outcome_handling(outcome: str, deployment_name: str) -> Handling:
    """How a lookup on the deployment that ended so is labelled on every page, in the words of
    that deployment's agents ("Account not connected" where they connect their Connvo account, not
    "No token saved"), with its table group: meetings/connvo.py words it."""
    return connvo.outcome_handling(outcome, deployment_name)


@register.filter
def takes_pasted_tokens(deployment_name: str) -> bool:
    """Whether the agent's next step for a missing credential is to paste a token, or (WorkOS set
    up for the deployment) to connect their Connvo account: meetings/workos_auth.py decides."""
    return takes_pastes(deployment_name)
