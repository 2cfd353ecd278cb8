"""Sealed spans and counted records in the chain (#22): their counts (`calls`, `repeats`) and
facts (`tally`) are covered by the MAC, so changing a count, an outcome's tally, or clearing them
(back to the encoding of an entry without them) is named by `audit_verify`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection

from audit import chain
from audit.models import Action, AuditEntry
from tests.test_audit_chain import tamper

pytestmark = pytest.mark.django_db


def span_part(**changes) -> dict:
    """A sealed span part, in the shape every helper writes (docs: the brief's fixed shapes)."""
    return {
        "actor_username": "agent",
        "action": Action.LOOKUP,
        "via": "refresh",
        "deployment": "dev",
        "meeting_id": "m1",
        "outcome": "found",
        "calls": 270,
        "tally": {
            "kind": "span",
            "span": "k" * 22,
            "opened": "2026-12-06T10:02:00.000000Z",
            "from": "2026-12-06T10:02:05.000000Z",
            "to": "2026-12-06T10:47:00.000000Z",
            "outcomes": {"found": 268, "timeout": 2},
            "unanswered": 0,
            "first_request": "req-first",
            "last_request": "req-last",
            "final": True,
        },
        **changes,
    }


def counted_record(**changes) -> dict:
    return {
        "actor_username": "",
        "action": Action.SIGN_IN_FAILED,
        "outcome": "locked_out",
        "client_ip": "192.0.2.7",
        "calls": 0,
        "repeats": 48,
        "tally": {
            "kind": "repeats",
            "source": "192.0.2.7",
            "from": "2026-12-06T10:02:01.000000Z",
            "to": "2026-12-06T10:02:59.000000Z",
            "sample": ["alice", "bob"],
            "distinct": 12,
        },
        **changes,
    }


@pytest.fixture
def chained() -> dict[str, AuditEntry]:
    """A plain entry, a sealed span part, a counted record and a plain entry after them."""
    return {
        "before": chain.append(actor_username="agent", action=Action.SIGN_IN),
        "span": chain.append(**span_part()),
        "record": chain.append(**counted_record()),
        "after": chain.append(actor_username="agent", action=Action.SIGN_OUT),
    }


def set_column(entry: AuditEntry, column: str, value) -> None:
    if column == "tally" and value is not None:
        value = json.dumps(value)
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
    else:
        cast = ""
    tamper(
        f"UPDATE audit_auditentry SET {column} = %s{cast} WHERE id = %s",  # noqa: S608 (our names)
        [value, entry.pk],
    )


def verify_names(entry: AuditEntry) -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("audit_verify", stdout=out, stderr=out)
    assert exited.value.code == 1
    assert f"Entry #{entry.pk} does not match its MAC" in out.getvalue()


def test_spans_and_counted_records_verify_as_read_back(chained):
    # Read back through the database's own JSON type (key order, number forms) and still equal.
    span = AuditEntry.objects.get(pk=chained["span"].pk)
    assert span.tally["outcomes"] == {"found": 268, "timeout": 2}
    assert span.call_count == 270
    assert AuditEntry.objects.get(pk=chained["record"].pk).request_count == 48

    result = chain.verify()

    assert result.ok, result.message
    assert result.entries_checked == 4


def bump_outcome(tally: dict) -> dict:
    return {**tally, "outcomes": {**tally["outcomes"], "found": tally["outcomes"]["found"] + 1}}


SPAN_TAMPERING = {
    "more calls": ("calls", lambda entry: entry.calls + 1),
    "fewer calls": ("calls", lambda entry: 1),
    "an outcome's count": ("tally", lambda entry: bump_outcome(entry.tally)),
    "an outcome renamed": (
        "tally",
        lambda entry: {**entry.tally, "outcomes": {"found": 268, "not_found": 2}},
    ),
    "unanswered calls hidden": ("tally", lambda entry: {**entry.tally, "unanswered": 5}),
    "another Connvo request": ("tally", lambda entry: {**entry.tally, "last_request": "req-x"}),
    "calls cleared": ("calls", lambda entry: None),
    "tally cleared": ("tally", lambda entry: None),
}


@pytest.mark.parametrize("change", sorted(SPAN_TAMPERING))
def test_changing_a_sealed_spans_count_or_tally_names_it(chained, change):
    column, new_value = SPAN_TAMPERING[change]
    span = chained["span"]
    set_column(span, column, new_value(span))

    verify_names(span)


COUNTED_TAMPERING = {
    "fewer repeats": ("repeats", lambda entry: 1),
    "more repeats": ("repeats", lambda entry: entry.repeats * 10),
    "repeats cleared": ("repeats", lambda entry: None),
    "another sample": ("tally", lambda entry: {**entry.tally, "sample": ["carol"]}),
    "fewer distinct": ("tally", lambda entry: {**entry.tally, "distinct": 1}),
    "calls made up": ("calls", lambda entry: 3),
}


@pytest.mark.parametrize("change", sorted(COUNTED_TAMPERING))
def test_changing_a_counted_record_names_it(chained, change):
    column, new_value = COUNTED_TAMPERING[change]
    record = chained["record"]
    set_column(record, column, new_value(record))

    verify_names(record)


@pytest.mark.parametrize("kind", ["span", "record"])
def test_clearing_every_counted_field_is_an_encoding_downgrade_and_is_named(chained, kind):
    """With calls, repeats and tally all NULL the entry would be encoded as one from before
    spans (encoding 1): its MAC was computed over encoding 2, so it no longer matches."""
    entry = chained[kind]
    for column in chain.COUNTED_FIELDS:
        set_column(entry, column, None)

    verify_names(entry)


def test_counts_added_to_a_plain_entry_are_named(chained):
    """The other way round: an entry written without counts (encoding 1) given some."""
    plain = chained["before"]
    set_column(plain, "calls", 500)

    verify_names(plain)
