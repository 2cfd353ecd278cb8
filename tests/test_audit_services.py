"""audit/services.py's record() and record_many(): one list of an entry's fields, and a field
that is not one of them fails loudly instead of being dropped."""

from __future__ import annotations

import pytest

from audit.models import Action, AuditEntry
from audit.services import Origin, record, record_many

pytestmark = pytest.mark.django_db


def test_record_writes_every_field_it_is_given(agent):
    entry = record(
        origin=Origin(user=agent, username=agent.username, client_ip="192.0.2.7"),
        action=Action.LOOKUP,
        via="refresh",
        deployment="dev",
        meeting_id="m-1",
        outcome="found",
        http_status=200,
        latency_ms=12,
        connvo_request_id="req-1",
        detail="a note",
        calls=1,
        tally={"kind": "span"},
        request_id="console-1",
    )

    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.actor, stored.actor_username, stored.client_ip) == (agent, "agent", "192.0.2.7")
    assert (stored.action, stored.via, stored.deployment, stored.meeting_id) == (
        "lookup",
        "refresh",
        "dev",
        "m-1",
    )
    assert (stored.outcome, stored.http_status, stored.latency_ms) == ("found", 200, 12)
    assert (stored.connvo_request_id, stored.detail, stored.calls) == ("req-1", "a note", 1)
    assert (stored.tally, stored.request_id) == ({"kind": "span"}, "console-1")


def test_record_refuses_a_field_an_entry_does_not_have(agent):
    with pytest.raises(TypeError, match="meeting"):
        record(origin=Origin(user=agent, username="agent"), action=Action.LOOKUP, meeting="m-1")
    assert not AuditEntry.objects.exists()


def test_record_many_refuses_a_field_an_entry_does_not_have(agent):
    with pytest.raises(TypeError, match="call_count"):
        record_many(
            origin=Origin(user=agent, username="agent"),
            entries=[{"action": Action.LOOKUP}, {"action": Action.LOOKUP, "call_count": 1}],
        )
    assert not AuditEntry.objects.exists()


def test_record_needs_an_origin_and_an_action(agent):
    with pytest.raises(TypeError):
        record(action=Action.LOOKUP)
    with pytest.raises(TypeError):
        record(origin=Origin(user=agent, username="agent"))
