"""What a Connvo meeting ID looks like, and finding one in what a person typed or pasted.

Shared by the lookup (meetings/) and the audit log's filters (audit/): it depends on nothing but
the standard library and `connvo_admin.outcomes`.
"""

from __future__ import annotations

import re
import string
from urllib.parse import unquote

from .outcomes import LookupFailed, Outcome

# Convex document ids are lowercase Crockford base32, 31 to 37 characters. The shape, and the
# words that describe it to agents, are defined here only (meetings/references.py uses them).
SHORTEST_ID, LONGEST_ID = 31, 37
# Letters an ID never has (Crockford's base32 leaves them out: they read as 1 and 0).
NEVER_IN_IDS = "ilou"
ID_LENGTHS = f"{SHORTEST_ID} to {LONGEST_ID}"
ID_SHAPE = f"{ID_LENGTHS} lowercase letters and digits (never i, l, o or u)"
EXAMPLE_ID = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
WHAT_AN_ID_IS = f"A meeting ID is {ID_SHAPE}, for example {EXAMPLE_ID}."

_ID_CHARS = "".join(sorted(set(string.digits + string.ascii_lowercase) - set(NEVER_IN_IDS)))
_ID = rf"[{_ID_CHARS}]{{{SHORTEST_ID},{LONGEST_ID}}}"
_ID_RE = re.compile(_ID)
_ID_IN_TEXT_RE = re.compile(rf"(?<![{_ID_CHARS}]){_ID}(?![{_ID_CHARS}])")
# A link names its meeting in its path: the segment after `/meetings/` (or `/meeting/`), read as
# meetings/references.py reads a piece of a word (letters, digits, `_` and `-`). Whatever else
# the link holds, such as an organisation's ID before it, is not the meeting.
# A link's query may name it instead (`?orgId=<org>&meetingId=<id>`), with the keys a log uses.
_MEETING_IN_LINK_RE = re.compile(
    r"(?<![0-9A-Za-z_-])(?i:meetings?)/([0-9A-Za-z_-]+)"
    r"|[?&;](?i:meetings?(?:[-_]?ids?)?)=([0-9A-Za-z_-]+)"
)


# What a log puts between words without a space: a terminal's escape sequences (colours, cursor
# moves: ESC [ 1 m), raw or escaped as JSON, C or a shell writes them, and line breaks and tabs
# escaped in a JSON string. Their letters and digits would otherwise join the ID after them:
# `\x1b[31mjh78…` read as the ID `31mjh78…`, still the length of one.
_DECORATION_RE = re.compile(
    r"(?:\x1b|\\(?:u001[bB]|x1[bB]|033|e))\[[0-?]*[ -/]*[@-~]"  # a control sequence
    r"|\x1b[ -/]*[0-~]"  # any other escape sequence
    r"|\\[ntr]"  # an escaped line break or tab
)


def undecorated(text: str) -> str:
    """`text` with each escape sequence and escaped line break or tab a space: the separator it
    stood for in the log it was copied from."""
    return _DECORATION_RE.sub(" ", text)


def meeting_in_link(text: str) -> str | None:
    """The segment a link's path names as its meeting (`…/meetings/<segment>`), or its query
    (`?meetingId=<segment>`), whether or not it is an ID; None when no link in `text` names one.
    The first one counts.

    The one rule for links, for both parsers: a link that names its meeting gives that meeting
    or nothing, never another ID it holds."""
    named = _MEETING_IN_LINK_RE.search(text)
    return (named.group(1) or named.group(2)) if named else None


class InvalidMeetingId(LookupFailed):
    """Raised before any call to Connvo, or when Connvo says the ID is not a meeting's."""

    outcome = Outcome.INVALID_ID


def parse_meeting_id(text: str) -> str:
    """Return the meeting id in what an agent typed or pasted: an id, or a link that contains one.

    Raises InvalidMeetingId (with a message saying why) without any upstream call.
    """
    cleaned = undecorated(unquote(text or "")).strip().strip("\"'<>")
    if not cleaned:
        raise InvalidMeetingId("Enter a meeting ID, or paste a link to the meeting.")
    if _an_id(cleaned, which="this one", copy="it"):
        return cleaned
    named = meeting_in_link(cleaned)
    if named is not None:
        return _named_meeting(named)
    candidates = list(dict.fromkeys(_ID_IN_TEXT_RE.findall(cleaned)))
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise InvalidMeetingId(
            f"That link contains more than one ID. Paste just the meeting ID. {WHAT_AN_ID_IS}"
        )
    if len(cleaned) > 200:
        cleaned = cleaned[:200] + "…"
    raise InvalidMeetingId(f"“{cleaned}” is not a Connvo meeting ID. {WHAT_AN_ID_IS}")


def _an_id(text: str, *, which: str, copy: str) -> bool:
    """Whether `text` is a meeting ID; InvalidMeetingId when it is one but for its capitals (as
    a spreadsheet or caps lock leaves it), naming it as `which` and what to copy again."""
    if _ID_RE.fullmatch(text):
        return True
    if _ID_RE.fullmatch(text.lower()):
        raise InvalidMeetingId(
            f"Meeting IDs are all lowercase; {which} has capital letters. Copy {copy} again from "
            "Connvo rather than retyping it."
        )
    return False


def _named_meeting(segment: str) -> str:
    """The meeting ID a link's path names, or InvalidMeetingId saying why `segment` is not one."""
    if _an_id(segment, which="the one in this link", copy="the link"):
        return segment
    if len(segment) > 80:
        segment = segment[:80] + "…"
    raise InvalidMeetingId(
        f"That link is to a meeting, but “{segment}” is not a Connvo meeting ID. {WHAT_AN_ID_IS}"
    )
