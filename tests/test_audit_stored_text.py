"""Text from outside (a URL path, a username tried at sign-in, a header, what Connvo answered) is
stored by the audit writer (audit/services.py) so that every database can hold it: PostgreSQL's
text types refuse NUL, and no database can encode a lone surrogate. Such a character is stored as
U+FFFD, the entry is written, and the chain still verifies."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import chain
from audit.models import Action, AuditEntry
from audit.services import Origin, record, record_many, storable
from connvo_admin.logs import request_id_var
from tests.conftest import examples

pytestmark = pytest.mark.django_db

REPLACEMENT = "\ufffd"
# Every character Python can hold, lone surrogates included (Connvo's JSON can carry "\udc00").
ANY_CHARACTER = st.characters(exclude_categories=())
UNSTORABLE = st.sampled_from(["\x00", "\ud800", "\udfff"])


def any_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(ANY_CHARACTER | UNSTORABLE, max_size=max_size)


FIELDS = st.fixed_dictionaries(
    {
        "username": any_text(160),
        "deployment": any_text(70),
        "meeting_id": any_text(70),
        "outcome": any_text(40),
        "connvo_request_id": any_text(70),
        "request_id": any_text(70),
        "user_agent": any_text(520),
        "detail": any_text(510),
    }
)
COLUMNS = {
    "username": "actor_username",
    "deployment": "deployment",
    "meeting_id": "meeting_id",
    "outcome": "outcome",
    "connvo_request_id": "connvo_request_id",
    "request_id": "request_id",
    "user_agent": "user_agent",
    "detail": "detail",
}


def expected(value: str, column: str) -> str:
    """What the writer promises to store: the same text, each unstorable character as U+FFFD,
    cut to the column."""
    cleaned = "".join(REPLACEMENT if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in value)
    return cleaned[: AuditEntry._meta.get_field(column).max_length]


def write(values: dict[str, str]) -> AuditEntry:
    values = dict(values)
    origin = Origin(
        user=None,
        username=values.pop("username"),
        client_ip="10.0.0.7",
        user_agent=values.pop("user_agent"),
    )
    reset = request_id_var.set(values.pop("request_id"))
    try:
        return record(origin=origin, action=Action.SIGN_IN_FAILED, **values)
    finally:
        request_id_var.reset(reset)


@settings(
    max_examples=examples(40),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=FIELDS)
@example(values=dict.fromkeys(COLUMNS, "x\x00y"))
@example(values=dict.fromkeys(COLUMNS, "\udc00"))
@example(values={**dict.fromkeys(COLUMNS, ""), "meeting_id": "\x00" * 65})
def test_any_text_is_stored_as_promised_and_the_chain_verifies(values):
    entry = write(values)

    stored = AuditEntry.objects.get(pk=entry.pk)
    for name, column in COLUMNS.items():
        assert getattr(stored, column) == expected(values[name], column), name
    result = chain.verify()
    assert result.ok, result.message


def test_a_table_of_lookups_with_a_nul_in_a_reference_is_written_whole(db):
    origin = Origin(user=None, username="agent\x00", client_ip="10.0.0.7", user_agent="pytest")

    entries = record_many(
        origin=origin,
        entries=[
            {"action": Action.LOOKUP, "meeting_id": "a\x00b", "detail": "\udc00"},
            {"action": Action.LOOKUP, "meeting_id": "plain"},
        ],
    )

    stored = list(AuditEntry.objects.filter(pk__in=[e.pk for e in entries]).order_by("pk"))
    assert [(e.actor_username, e.meeting_id, e.detail) for e in stored] == [
        ("agent\ufffd", "a\ufffdb", "\ufffd"),
        ("agent\ufffd", "plain", ""),
    ]
    assert chain.verify().ok


@given(st.text(ANY_CHARACTER | UNSTORABLE))
def test_storable_text_encodes_in_utf8_and_keeps_its_length(value):
    stored = storable(value)

    assert "\x00" not in stored
    stored.encode("utf-8")  # raises for a lone surrogate
    assert len(stored) == len(value)
    assert storable(stored) == stored


def test_a_nul_in_a_refused_path_is_still_audited(outsider_client):
    response = outsider_client.get("/audit/staff/x%00/")

    assert response.status_code == 403
    entry = AuditEntry.objects.get(action=Action.PERMISSION_DENIED)
    assert entry.actor_username == "outsider"
    assert entry.detail == "GET /audit/staff/x\ufffd/"
    assert chain.verify().ok


def test_a_nul_meeting_reference_is_not_a_meeting_id(agent_client):
    response = agent_client.get("/meetings/dev/%00/")

    assert response.status_code == 400
    assert "That is not a meeting ID" in response.content.decode()
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert (entry.meeting_id, entry.outcome) == ("\ufffd", "invalid_id")
    assert chain.verify().ok
