"""The audit log as CSV or JSON Lines, streamed: rows are read from a database cursor in chunks
and written out as they come, so an export of millions of entries needs constant memory.

Every record says how many Connvo calls it stands for (`calls`: 1 for a lookup, a sealed span
part's calls, 0 for anything else) and, in words, what a span or counted record holds
(`summary`). Spans still open come first, marked `"sealed": false`, with their calls not yet in
the chain (README, "Exports")."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from django.db.models import QuerySet

from . import records
from .chain import CHAINED_FIELDS, COUNTED_FIELDS, MAC_FIELDS
from .models import Action, AuditEntry

# Every field the chain covers, so an export can be verified offline with the key: the MAC
# covers CHAINED_FIELDS alone for an entry of `encoding` 1, also calls, repeats and tally (as
# stored) for one of encoding 2.
FIELDS = ("id", *CHAINED_FIELDS, "mac")
# After them, so a reader of the columns above finds them where they were.
ADDED = ("calls", "repeats", "tally", "encoding", "sealed", "summary")
COLUMNS = (*FIELDS, *ADDED)
READ = ("id", *MAC_FIELDS, "mac")
CHUNK_SIZE = 2000  # rows per database round trip
ROWS_PER_WRITE = 500
# A spreadsheet runs a cell that starts with one of these as a formula; user agents and
# attempted usernames come from strangers.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _documents(
    entries: QuerySet[AuditEntry],
    open_spans: Iterable[records.OpenSpan],
    counting: Iterable[AuditEntry] = (),
    outcome: str = "",
) -> Iterator[dict]:
    """One document per record, COLUMNS in order: the open spans first (the newest calls), the
    refusals still being counted, then the entries as the chain holds them. `outcome`: the
    filter's, whose calls alone an open span's document then holds."""
    for item in open_spans:
        yield _open_span(item, outcome)
    for record in counting:
        yield _counting(record)
    for row in entries.values_list(*READ).iterator(chunk_size=CHUNK_SIZE):
        values = dict(zip(READ, row, strict=True))
        stored = {name: values[name] for name in COUNTED_FIELDS}
        document = {name: values[name] for name in FIELDS}
        document["calls"] = (
            stored["calls"]
            if stored["calls"] is not None
            else (1 if values["action"] == Action.LOOKUP else 0)
        )
        document["repeats"] = stored["repeats"]
        document["tally"] = stored["tally"]
        document["encoding"] = 2 if any(v is not None for v in stored.values()) else 1
        document["sealed"] = True
        document["summary"] = (
            records.record_words(AuditEntry(**values), zone=UTC)
            if stored["tally"] is not None or stored["repeats"] is not None
            else ""
        )
        yield document


def _open_span(item: records.OpenSpan, outcome: str = "") -> dict:
    """An open span as a record: its calls not yet sealed into the chain (so the `calls` of an
    export add up to the calls on record), its whole count so far in the tally. No id, no MAC:
    nothing of it is chained yet. With `outcome` (an export filtered on one), only its calls of
    that outcome, as the record of that outcome it will be sealed as: an export by outcome then
    adds up to that outcome's calls on record."""
    span, facts = item.span, item.facts
    unsealed = dict(item.unsealed)
    calls = item.unsealed_calls
    if outcome:
        unsealed = {outcome: unsealed.get(outcome, 0)}
        calls = unsealed[outcome]
    unanswered = unsealed.pop(records.UNANSWERED, 0)
    document = dict.fromkeys(FIELDS, None) | {
        "at": span.last_at,
        "actor_username": span.actor_username,
        "action": Action.LOOKUP.value,
        "via": span.via,
        "deployment": span.deployment,
        "meeting_id": span.meeting_id,
        "outcome": outcome or (facts.outcomes[0][0] if facts.outcomes else ""),
        "connvo_request_id": "",
        "client_ip": span.client_ip,
        "user_agent": span.user_agent,
        "detail": "",
        "request_id": "",
    }
    return document | {
        "calls": calls,
        "repeats": None,
        "tally": {
            "kind": "open_span",
            "span": span.key,
            "opened": _timestamp(span.opened_at),
            "to": _timestamp(span.last_at),
            "outcomes": unsealed,
            "unanswered": unanswered,
            "calls_so_far": span.calls,
            "outcomes_so_far": dict(facts.outcomes),
            "sealed_calls": facts.sealed,
            "first_request": span.first_request_id,
            "last_request": span.last_request_id,
        },
        "encoding": None,
        "sealed": False,
        "summary": records.open_span_words(item, zone=UTC),
    }


def _counting(record: AuditEntry) -> dict:
    """Refusals still being counted, as the counted record they will be sealed as
    (`selectors.counting_now`): `repeats` so far, and no id or MAC, as nothing of it is chained
    yet."""
    document = {name: getattr(record, name) for name in FIELDS} | {"id": None, "mac": None}
    return document | {
        "calls": 0,
        "repeats": record.repeats,
        "tally": record.tally,
        "encoding": None,
        "sealed": False,
        "summary": records.record_words(record, zone=UTC),
    }


def _batched(lines: Iterable[str]) -> Iterator[str]:
    """Fewer, larger writes: one per few hundred rows rather than one per row."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == ROWS_PER_WRITE:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


# Characters JSON leaves as they are that many line readers (Python's `splitlines`, JavaScript
# before ES2019) take for a line break: escaped, so a line of JSON Lines is one record whatever a
# stranger typed. They can only occur inside strings, where the escape means the same.
_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")


def _escaped(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(
    entries: QuerySet[AuditEntry],
    open_spans: Iterable[records.OpenSpan] = (),
    counting: Iterable[AuditEntry] = (),
    *,
    outcome: str = "",
) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    yield from _batched(
        writer.writerow([_csv_cell(document[name]) for name in COLUMNS])
        for document in _documents(entries, open_spans, counting, outcome)
    )


def jsonl_lines(
    entries: QuerySet[AuditEntry],
    open_spans: Iterable[records.OpenSpan] = (),
    counting: Iterable[AuditEntry] = (),
    *,
    outcome: str = "",
) -> Iterator[str]:
    def line(document: dict) -> str:
        document["at"] = _timestamp(document["at"])
        return _LINE_BREAKS.sub(_escaped, json.dumps(document, ensure_ascii=False)) + "\n"

    documents = _documents(entries, open_spans, counting, outcome)
    yield from _batched(line(document) for document in documents)


WRITERS = {"csv": csv_lines, "jsonl": jsonl_lines}
