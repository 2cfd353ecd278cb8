"""The audit log as CSV or JSON Lines, streamed: rows are read from a database cursor in chunks
and written out as they come, so an export of millions of entries needs constant memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from django.db.models import QuerySet

from .chain import CHAINED_FIELDS
from .models import AuditEntry

# Every field the chain covers, so an export can be verified offline with the key.
FIELDS = ("id", *CHAINED_FIELDS, "mac")
CHUNK_SIZE = 2000  # rows per database round trip
ROWS_PER_WRITE = 500
# A spreadsheet runs a cell that starts with one of these as a formula; user agents and
# attempted usernames come from strangers.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rows(entries: QuerySet[AuditEntry]) -> Iterator[tuple]:
    return entries.values_list(*FIELDS).iterator(chunk_size=CHUNK_SIZE)


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


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(entries: QuerySet[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(FIELDS)
    yield from _batched(writer.writerow([_csv_cell(v) for v in row]) for row in _rows(entries))


def jsonl_lines(entries: QuerySet[AuditEntry]) -> Iterator[str]:
    def line(row: tuple) -> str:
        document = dict(zip(FIELDS, row, strict=True))
        document["at"] = _timestamp(document["at"])
        return json.dumps(document, ensure_ascii=False) + "\n"

    yield from _batched(line(row) for row in _rows(entries))


WRITERS = {"csv": csv_lines, "jsonl": jsonl_lines}
