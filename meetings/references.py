"""Reading one or many meeting references out of what an agent pastes: a list of IDs or links
(separated by lines, spaces, commas or semicolons) or a blob of text that contains them, such as
a log line or a chat message. No upstream call is involved.

What is not a meeting ID falls in one of two heaps: what looks like a mistyped one (a link to a
meeting without a usable ID, a run that is almost an ID), which the agent is told about with why,
and everything else (request and trace IDs, hashes, words), which is only counted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from connvo_admin.meeting_ids import (
    ID_LENGTHS,
    LONGEST_ID,
    NEVER_IN_IDS,
    SHORTEST_ID,
    WHAT_AN_ID_IS,
    InvalidMeetingId,
    meeting_in_link,
    parse_meeting_id,
    undecorated,
)

_SEPARATORS = re.compile(r"[\s,;|]+")
# Punctuation that sentences, chat messages and Markdown put around a reference.
_SURROUNDING = "\"'`<>()[]{}.!?:*_~"
# A word falls apart into pieces at anything but letters, digits, `_` and `-`: a link into its
# path segments, `key=value` into its key and value. `_` and `-` hold a piece together, so
# `req_8a7b…` or `usr-k17e…` stays one identifier of something else, never a meeting ID.
_PIECE = re.compile(r"[0-9A-Za-z_-]+")
# What names the piece after it as a meeting: `/meetings/<id>`, `meeting=<id>`, `meetingId: <id>`.
_MEETING_KEY = re.compile(r"meetings?(?:[-_]?ids?)?", re.IGNORECASE)
# Request IDs, trace IDs and hashes are hexadecimal. A Convex ID uses 32 symbols, so one of 31
# or more characters without a letter beyond f (a chance of 1 in 2^31) is not believable: such a
# run is a meeting ID only where the text names it as one.
_HEX = re.compile(r"[0-9a-f]+")
# A word with a run this long is a token (an ID of something), not prose: listed when ignored.
_LONG_RUN = re.compile(r"[0-9A-Za-z]{16,}")
# How far from an ID's length a run may be and still look like a mistyped one: a few characters
# lost or added when copying. Uppercase ULIDs (26) stay outside.
_ALMOST_LENGTHS = range(SHORTEST_ID - 3, LONGEST_ID + 4)
MAX_SHOWN = 80  # characters of a word quoted back to the agent


@dataclass(frozen=True, slots=True)
class Rejected:
    """A piece of the input that looks meant as a reference but is not one, and why."""

    text: str
    reason: str  # short, without the text: "it has capital letters (…)"


@dataclass(frozen=True, slots=True)
class References:
    ids: tuple[str, ...]  # in the order first given, each once
    rejected: tuple[Rejected, ...]
    duplicates: int  # how many repeated IDs were collapsed
    ignored_words: int  # prose around the references
    # Tokens that are not meeting IDs (request IDs, trace IDs, hashes), each once, shortened.
    ignored_tokens: tuple[str, ...] = ()


def _shorten(word: str, limit: int = MAX_SHOWN) -> str:
    return word if len(word) <= limit else word[:limit] + "…"


def _is_meeting_id(piece: str) -> bool:
    # The shape of an ID is defined once, in connvo_admin/meeting_ids.py.
    try:
        return parse_meeting_id(piece) == piece
    except InvalidMeetingId:
        return False


def _almost_an_id(piece: str) -> str:
    """Why `piece` is not a meeting ID when it looks like a mistyped one; "" when it does not.

    Mistyped means: in one case (capitals throughout, as from caps lock or a spreadsheet; mixed
    case is base64 or similar), not hexadecimal, near an ID's length, and with at most two of the
    letters IDs never have."""
    if len(piece) not in _ALMOST_LENGTHS or not piece.isalnum():
        return ""
    lowered = piece.lower()
    if piece not in (lowered, piece.upper()) or _HEX.fullmatch(lowered):
        return ""
    foreign = [char for char in lowered if char in NEVER_IN_IDS]
    if len(foreign) > 2:
        return ""
    problems = []
    if piece != lowered:
        problems.append("it has capital letters, and meeting IDs are all lowercase")
    if foreign:
        letters = " and ".join(sorted(set(foreign)))
        problems.append(f"it has {letters}, which meeting IDs never contain")
    if not SHORTEST_ID <= len(piece) <= LONGEST_ID:
        problems.append(f"it has {len(piece)} characters, not {ID_LENGTHS}")
    return "; ".join(problems)


def _read_word(word: str) -> tuple[list[str], str]:
    """The meeting IDs in one pasted word; when it holds none, why it looks like a mistyped
    reference ("" when it does not look like one at all)."""
    text = unquote(word)
    named = meeting_in_link(text)
    if named is not None:
        # A link that names its meeting gives that one only (as in connvo_admin/meeting_ids.py):
        # `/orgs/<orgId>/meetings/<meetingId>` is one meeting, not a table of two.
        return _read_named(named)
    pieces = _PIECE.findall(text)
    # Whether the piece before each piece names it as a meeting.
    named = [bool(_MEETING_KEY.fullmatch(before)) for before in ["", *pieces][: len(pieces)]]
    ids = [
        piece
        for piece, is_named in zip(pieces, named, strict=True)
        if _is_meeting_id(piece) and (is_named or not _HEX.fullmatch(piece))
    ]
    if ids:
        return ids, ""
    for piece, is_named in zip(pieces, named, strict=True):
        why = _almost_an_id(piece)
        if why:
            return [], why
        if is_named and len(piece) >= 20:
            return [], f"it has {len(piece)} characters where the meeting ID should be"
    if "://" in word and pieces and _MEETING_KEY.fullmatch(pieces[-1]):
        return [], "it is a link to a meeting, but the meeting ID is missing"
    return [], ""


def _read_named(segment: str) -> tuple[list[str], str]:
    """What `_read_word` says of a word whose link names `segment` as its meeting."""
    if _is_meeting_id(segment):
        return [segment], ""
    why = _almost_an_id(segment)
    if not why and len(segment) >= 20:
        why = f"it has {len(segment)} characters where the meeting ID should be"
    return [], why


def parse_meeting_references(text: str) -> References:
    """Every meeting ID in `text`, in order and without repeats, plus what was not an ID.

    Raises InvalidMeetingId (saying why) when `text` holds no meeting ID at all.
    """
    ids: dict[str, None] = {}
    rejected: dict[str, Rejected] = {}
    tokens: dict[str, None] = {}
    duplicates = prose = 0
    for raw in _SEPARATORS.split(undecorated(text or "")):
        word = raw.strip(_SURROUNDING)
        if not word:
            continue
        found, why = _read_word(word)
        if why:
            rejected.setdefault(word, Rejected(_shorten(word), why))
        elif not found and _LONG_RUN.search(word):
            tokens[_shorten(word)] = None
        elif not found:
            prose += 1
        for meeting_id in found:
            if meeting_id in ids:
                duplicates += 1
            ids[meeting_id] = None

    if not ids:
        _refuse(text, list(rejected.values()), list(tokens))
    return References(
        ids=tuple(ids),
        rejected=tuple(rejected.values()),
        duplicates=duplicates,
        ignored_words=prose,
        ignored_tokens=tuple(tokens),
    )


def _refuse(text: str, rejected: list[Rejected], tokens: list[str]) -> None:
    """Raise InvalidMeetingId saying why `text`, which holds no meeting ID, is not one."""
    if len(rejected) == 1:
        (only,) = rejected
        raise InvalidMeetingId(f"“{only.text}” is not a Connvo meeting ID: {only.reason}.")
    if rejected:
        listed = "; ".join(f"“{r.text}” ({r.reason})" for r in rejected)
        raise InvalidMeetingId(f"None of these is a Connvo meeting ID: {listed}. {WHAT_AN_ID_IS}")
    if len(tokens) == 1 and _HEX.fullmatch(tokens[0]):
        raise InvalidMeetingId(
            f"“{tokens[0]}” looks like a request or trace ID (only digits and the letters a to "
            f"f), not a meeting ID. {WHAT_AN_ID_IS}"
        )
    if tokens:
        raise InvalidMeetingId(
            "There is no Connvo meeting ID in what you entered: request IDs, trace IDs and other "
            "such tokens are not meeting IDs."
        )
    # No word looked like a reference: explain the input as one (the single-ID box's message).
    parse_meeting_id(text)
    raise InvalidMeetingId("There is no Connvo meeting ID in what you entered.")
