"""How the audit pages show an outcome and a long ID. Presentation only: what an outcome is called
and how serious it is live in the console's one outcome table, connvo_admin/outcomes.py."""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html

from audit import records
from audit.forms import LOG_DAY
from audit.models import AuditEntry
from connvo_admin.outcomes import Handling, describe

register = template.Library()

# How the log writes a moment (audit/records.py, which says spans in words with it; LOG_DAY, a
# day): the entries' own times, in the viewer's time zone, so that every time and date on the audit
# pages reads the same (the panel, the overview, the chips, a span's words).
LOG_TIME = records.LOG_TIME

# The end of an ID that stays visible when the middle is cut: IDs of one deployment often share a
# prefix, so the end is what tells them apart.
TAIL = 6


@register.filter
def handling(outcome: str) -> Handling:
    """The outcome's row of the table, for its `label` and `severity` (a value this console does
    not know still gets a row: the log keeps what older and newer consoles wrote)."""
    return describe(outcome)


@register.simple_tag(takes_context=True)
def seen_title(context, deployment: str, meeting_id: str) -> str:
    """The title the console last saw of the meeting (`seen_meetings` in the context, read once
    for the whole page), or "" where it never found it."""
    seen = context.get("seen_meetings") or {}
    found = seen.get((deployment, meeting_id))
    return found.title if found else ""


@register.simple_tag(takes_context=True)
def full_id(context, value: str, href: str = "") -> str:
    """The whole ID, cut in the middle by CSS only when space is short, with a copy button (shown
    by static/js/console.js when the clipboard is available)."""
    counter = context.render_context.setdefault("full_id_counter", [0])
    counter[0] += 1
    dom_id = f"full-id-{counter[0]}"
    head, tail = (value[:-TAIL], value[-TAIL:]) if len(value) > 2 * TAIL else (value, "")
    # Screen readers and the copy button read the whole ID once; the two halves are only drawn
    # (split in two, a reader would spell them as two words).
    text = format_html(
        '<code class="full-id__text"><span class="visually-hidden" id="{}">{}</span>'
        '<span class="full-id__shown" aria-hidden="true"><span class="full-id__head">{}</span>'
        '<span class="full-id__tail">{}</span></span></code>',
        dom_id,
        value,
        head,
        tail,
    )
    if href:
        link = '<a class="full-id__link" href="{}" title="{}">{}</a>'
        text = format_html(link, href, value, text)
    return format_html(
        '<span class="full-id">{}<button type="button" class="copy-button js-copy" '
        'data-copy-target="{}" aria-label="Copy {}" hidden>Copy</button>'
        '<span class="copy-status visually-hidden" role="status"></span></span>',
        text,
        dom_id,
        value,
    )


@register.filter
def log_time(moment: datetime | None) -> str:
    """A moment as the log's entries show it, in a `<time>` element."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}">{}</time>', local.isoformat(), dateformat.format(local, LOG_TIME)
    )


@register.filter
def log_day(day: date | None) -> str:
    """A day (the filter's dates are days in the viewer's time zone) as the log writes dates."""
    if day is None:
        return ""
    return format_html(
        '<time datetime="{}">{}</time>', day.isoformat(), dateformat.format(day, LOG_DAY)
    )


@register.filter
def record_words(entry: AuditEntry) -> str:
    """A sealed span part or a counted record in words, in the viewer's time zone ("" for an
    ordinary entry): audit/records.py, as the exports and `audit_insights` say it."""
    return records.record_words(entry)


@register.filter
def open_span_words(item: records.OpenSpan) -> str:
    return records.open_span_words(item)
