"""Reading what an agent sees on the console's pages, for tests that check pages as a whole: the
headings, the lookup box, the triage table's rows and summary. Plain text in, plain text out."""

from __future__ import annotations

import html
import re

# What a Connvo meeting ID looks like (connvo_admin/meeting_ids.py), to find the IDs in a box.
MEETING_ID = re.compile(r"(?<![0-9a-hjkmnp-tv-z])[0-9a-hjkmnp-tv-z]{31,37}(?![0-9a-hjkmnp-tv-z])")


def text_of(fragment: str) -> str:
    """The words of an HTML fragment as shown: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def headings(page: str) -> list[str]:
    return [text_of(h) for h in re.findall(r"<h1\b[^>]*>(.*?)</h1>", page, re.S)]


def main_part(page: str) -> str:
    """The page's own content, without the top bar's navigation (which links everywhere)."""
    match = re.search(r"<main\b.*?</main>", page, re.S)
    return match.group(0) if match else page


def lookup_box(page: str) -> str | None:
    """What the lookup box (the textarea named q) holds, as the agent sees it."""
    match = re.search(r'<textarea\b[^>]*\bname="q"[^>]*>(.*?)</textarea>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def selected_deployment(page: str) -> str | None:
    match = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', page)
    return match.group(1) if match else None


def table_rows(page: str) -> list[str]:
    """Every row of the page's tables but their header rows (which link to the table sorted):
    the triage table's rows, or the rows a refresh sends alone."""
    without_headers = re.sub(r"<thead\b.*?</thead>", "", page, flags=re.S)
    return re.findall(r"<tr\b.*?</tr>", without_headers, re.S)


def rows_of(page: str, meeting_id: str) -> list[str]:
    """The rows of one meeting (not the filtered table's note, whose link holds every ID)."""
    return [
        row for row in table_rows(page) if meeting_id in row and 'id="table-no-match"' not in row
    ]


def hidden(row: str) -> bool:
    """Whether a table row is drawn hidden (a filtered table's row outside its filter)."""
    return bool(re.match(r"<tr\b[^>]*?\shidden(?=[\s>])", row))


def shown_rows(page: str) -> list[str]:
    """The rows the agent sees: a filtered table draws its other rows hidden."""
    return [row for row in table_rows(page) if not hidden(row)]


def group_of(row: str) -> str:
    """The group a triage row is in ("active", "not_visible"), as it names it."""
    match = re.search(r'data-group="([^"]*)"', row)
    assert match, "not a triage row"
    return match.group(1)


def row_of(page: str, meeting_id: str) -> str:
    rows = rows_of(page, meeting_id)
    assert len(rows) == 1, f"{len(rows)} rows for meeting {meeting_id}"
    return rows[0]


def summary_total(page: str) -> int:
    """The sum of the counts in the table's summary line ("2 active · 1 not visible to you")."""
    match = re.search(r'<p id="table-summary".*?</p>', page, re.S)
    assert match, "no summary line"
    return sum(int(n) for n in re.findall(r"\b(\d+)\b", text_of(match.group(0))))
