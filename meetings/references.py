"""Reading one or many meeting references out of what an agent pastes: a list of IDs or links
(separated by lines, spaces, commas or semicolons) or a blob of text that contains them, such as
a log line or a chat message. No upstream call is involved."""

from __future__ import annotations

import re
from dataclasses import dataclass

from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id

_SEPARATORS = re.compile(r"[\s,;|]+")
# Punctuation that sentences and chat messages put around a reference.
_SURROUNDING = "\"'`<>()[]{}.!?:*"
# A word that an agent plausibly meant as a reference (a link, or a long run of letters and
# digits such as an ID with a typo), as opposed to the prose around the references in a blob.
_LONG_RUN = re.compile(r"[A-Za-z0-9]{20,}")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A piece of the input that looks meant as a reference but is not one, and why."""

    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class References:
    ids: tuple[str, ...]  # in the order first given, each once
    rejected: tuple[Rejected, ...]
    duplicates: int  # how many repeated IDs were collapsed
    ignored_words: int  # prose around the references


def _looks_meant_as_reference(word: str) -> bool:
    return "://" in word or "/meeting" in word or bool(_LONG_RUN.search(word))


def _shorten(word: str, limit: int = 80) -> str:
    return word if len(word) <= limit else word[:limit] + "…"


def _ids_in_word(word: str) -> list[str]:
    try:
        return [parse_meeting_id(word)]
    except InvalidMeetingId:
        return []


def parse_meeting_references(text: str) -> References:
    """Every meeting ID in `text`, in order and without repeats, plus what was not an ID.

    Raises InvalidMeetingId (saying why) when `text` holds no meeting ID at all.
    """
    ids: dict[str, None] = {}
    rejected: dict[str, Rejected] = {}
    duplicates = ignored = 0
    for raw in _SEPARATORS.split(text or ""):
        word = raw.strip(_SURROUNDING)
        if not word:
            continue
        try:
            found = [parse_meeting_id(word)]
        except InvalidMeetingId as exc:
            # A link to something else, or a phrase like "meeting=<id>/<id>": each of its parts
            # may still be an ID.
            found = [i for part in re.split(r"[/=&?#]+", word) for i in _ids_in_word(part)]
            if not found:
                if _looks_meant_as_reference(word):
                    rejected.setdefault(word, Rejected(_shorten(word), exc.message))
                else:
                    ignored += 1
                continue
        for meeting_id in found:
            if meeting_id in ids:
                duplicates += 1
            ids[meeting_id] = None

    if not ids:
        if len(rejected) == 1:
            raise InvalidMeetingId(next(iter(rejected.values())).reason)
        if rejected:
            listed = "; ".join(f"“{r.text}”" for r in rejected.values())
            raise InvalidMeetingId(
                f"None of these is a Connvo meeting ID: {listed}. A meeting ID is 31 to 37 "
                "lowercase letters and digits (never i, l, o or u)."
            )
        # No word looked like a reference: explain the input as one (the single-ID box's message).
        parse_meeting_id(text)
        raise InvalidMeetingId("There is no Connvo meeting ID in what you entered.")
    return References(
        ids=tuple(ids),
        rejected=tuple(rejected.values()),
        duplicates=duplicates,
        ignored_words=ignored,
    )
