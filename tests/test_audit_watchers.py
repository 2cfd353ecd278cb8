"""The audit pages record who viewed what (the watchers are watched), show the chain's health
(last verification, last checkpoint), and a refused CSRF check is recorded like any refusal."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from audit import chain
from audit.models import Action, AuditEntry, ChainCheckpoint

pytestmark = pytest.mark.django_db

MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


def views() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=Action.AUDIT_VIEWED).order_by("id"))


def shown_ids(response) -> list[int]:
    return [int(n) for n in re.findall(r'href="/audit/entries/(\d+)/"', response.content.decode())]


def test_viewing_the_log_records_the_auditor_and_the_filter(auditor_client, auditor):
    auditor_client.get(reverse("audit:list"), {"staff": "alice"}, REMOTE_ADDR="10.9.8.7")

    (viewed,) = views()
    assert viewed.actor == auditor
    assert viewed.actor_username == "auditor"
    assert viewed.client_ip == "10.9.8.7"
    assert viewed.detail == "Audit log, filter: staff=alice"


def test_viewing_a_meetings_history_records_the_meeting(auditor_client):
    auditor_client.get(reverse("audit:meeting", args=[MEETING]))

    (viewed,) = views()
    assert viewed.meeting_id == MEETING
    assert viewed.detail.startswith("Who looked at the meeting, filter: meeting_id=")


def test_viewing_a_staff_members_activity_and_an_entry_are_recorded(auditor_client, audit_entry):
    entry = audit_entry(username="alice")

    auditor_client.get(reverse("audit:staff", args=["alice"]))
    auditor_client.get(reverse("audit:entry", args=[entry.pk]))

    assert [v.detail for v in views()] == [
        "Activity of alice, filter: staff=alice",
        f"Entry #{entry.pk}",
    ]


def test_a_later_page_and_a_bad_filter_are_recorded_as_such(auditor_client):
    auditor_client.get(reverse("audit:list"), {"before": "1700000000000000.5"})
    auditor_client.get(reverse("audit:list"), {"since": "not a date"})

    assert [v.detail for v in views()] == [
        "Audit log, filter: everything (a later page)",
        "Audit log, with a filter that was not valid",
    ]


def test_htmx_fragments_are_not_recorded_again(auditor_client):
    auditor_client.get(reverse("audit:list"), headers={"HX-Request": "true"})

    assert views() == []


def test_refused_viewers_are_recorded_as_refusals_not_views(agent_client):
    agent_client.get(reverse("audit:list"))

    assert views() == []
    assert AuditEntry.objects.get().action == Action.PERMISSION_DENIED


def test_page_views_are_hidden_from_the_log_unless_asked_for(auditor_client, audit_entry):
    lookup = audit_entry()
    auditor_client.get(reverse("audit:list"))
    (first_view,) = views()

    hidden = auditor_client.get(reverse("audit:list"))
    included = auditor_client.get(reverse("audit:list"), {"audit_views": "on"})
    only_views = auditor_client.get(reverse("audit:list"), {"action": "audit_viewed"})

    assert shown_ids(hidden) == [lookup.pk]
    assert "Audit page views are hidden." in hidden.content.decode()
    assert first_view.pk in shown_ids(included)
    assert lookup.pk in shown_ids(included)
    assert lookup.pk not in shown_ids(only_views)
    assert first_view.pk in shown_ids(only_views)


def test_purges_and_rotations_can_be_filtered(auditor_client, audit_entry):
    purge = audit_entry(action=Action.AUDIT_PURGED, detail="Nothing older than 90 days: count=0")
    rotation = audit_entry(action=Action.AUDIT_KEY_ROTATED, detail="from=a to=b")

    purges = auditor_client.get(reverse("audit:list"), {"action": "audit_purged"})
    rotations = auditor_client.get(reverse("audit:list"), {"action": "audit_key_rotated"})

    assert shown_ids(purges) == [purge.pk]
    assert shown_ids(rotations) == [rotation.pk]
    assert "Audit chain key rotated" in rotations.content.decode()


def test_chain_health_shows_the_last_verification_and_checkpoint(auditor_client, audit_entry):
    entry = audit_entry()
    chain.record_verification(chain.verify(), duration_ms=3)
    chain.checkpoint_now()

    page = auditor_client.get(reverse("audit:list")).content.decode()

    assert f"entry #{entry.pk}: 1 of the log's 1 entry" in page
    assert "last checkpoint" in page
    assert f"at entry #{entry.pk} (1 entry), witnessed outside the database" in page


def test_chain_health_warns_without_a_checkpoint(auditor_client):
    page = auditor_client.get(reverse("audit:list")).content.decode()

    assert "No checkpoint witnessed yet." in page
    assert "every 5 minutes" in page


def test_chain_health_warns_when_the_checkpoint_timer_stopped(settings, auditor_client):
    settings.AUDIT_CHECKPOINT_INTERVAL = 300
    ChainCheckpoint.objects.create(
        at=datetime.now(UTC) - timedelta(minutes=11),
        last_entry_id=7,
        last_mac="0" * 64,
        entries=7,
        key_id="0" * 16,
    )

    page = auditor_client.get(reverse("audit:list")).content.decode()

    assert "more than 10 minutes ago" in page
    assert "Check that the <code>audit_checkpoint</code> timer still runs" in page


def test_a_refused_csrf_check_is_recorded(agent, agent_client):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(agent)

    response = strict.post(
        reverse("meetings:token_save", args=["dev"]), {"token": "x"}, REMOTE_ADDR="10.3.3.3"
    )

    assert response.status_code == 403
    assert "The form could not be accepted" in response.content.decode()
    entry = AuditEntry.objects.get()
    assert entry.action == Action.PERMISSION_DENIED
    assert entry.actor == agent
    assert entry.http_status == 403
    assert entry.client_ip == "10.3.3.3"
    assert entry.deployment == "dev"
    assert entry.detail == "POST /tokens/dev/save/: CSRF check failed (CSRF cookie not set.)"
