"""Sign-ins, sign-outs and failed sign-ins are written to the audit log (audit/signals.py)."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from audit import chain, repeats
from audit.models import Action, AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client, username: str, password: str = PASSWORD):
    return client.post(
        reverse("accounts:login"),
        {"username": username, "password": password},
        HTTP_USER_AGENT="Mozilla/5.0 (test)",
    )


def test_sign_in_is_recorded_with_who_and_from_where(client, agent):
    response = sign_in(client, "agent")

    assert response.status_code == 302
    entry = AuditEntry.objects.get()
    assert entry.action == Action.SIGN_IN
    assert entry.actor == agent
    assert entry.actor_username == "agent"
    assert entry.client_ip == "127.0.0.1"
    assert entry.user_agent == "Mozilla/5.0 (test)"
    assert chain.verify().ok


def test_sign_out_is_recorded(client, agent):
    sign_in(client, "agent")

    client.post(reverse("accounts:logout"))

    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_username")) == [
        (Action.SIGN_IN, "agent"),
        (Action.SIGN_OUT, "agent"),
    ]


def test_failed_sign_in_records_the_username_tried_but_never_the_password(client, agent):
    response = sign_in(client, "agent", password="hunter2-wrong-password")

    assert response.status_code == 200
    entry = AuditEntry.objects.get()
    assert entry.action == Action.SIGN_IN_FAILED
    assert entry.actor is None
    assert entry.actor_username == "agent"
    assert entry.detail == "Wrong username or password."
    stored = repr(list(AuditEntry.objects.values()))
    assert "hunter2" not in stored
    assert PASSWORD not in stored


def test_failed_sign_in_for_an_unknown_username_is_recorded(client, db):
    sign_in(client, "nobody-here")

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_username) == (Action.SIGN_IN_FAILED, "nobody-here")


def test_admin_sign_in_is_recorded_too(client, admin_user):
    client.post(reverse("admin:login"), {"username": "admin", "password": PASSWORD})

    assert AuditEntry.objects.get().action == Action.SIGN_IN


def test_test_clients_force_login_is_not_a_sign_in(agent_client):
    assert not AuditEntry.objects.exists()


def test_sign_in_still_works_when_the_log_cannot_be_written(client, agent):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry RENAME TO audit_auditentry_away")

    response = sign_in(client, "agent")

    assert response.status_code == 302


@pytest.mark.time_machine("2026-12-06T10:00:10Z", tick=False)
def test_attempts_refused_by_a_lockout_are_recorded_once_as_lockouts(client, agent, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(4):
        sign_in(client, "agent", password="wrong")

    # The minute's first refused sign-in is an entry of its own; the lockouts that follow it in
    # that minute are counted from their first (audit/repeats.py: one full entry per action and
    # source a minute), and sealed into one counted record once the minute is over.
    details = list(AuditEntry.objects.order_by("id").values_list("detail", flat=True))
    assert details == ["Wrong username or password."]
    repeats.seal_past(now=datetime(2026, 12, 6, 10, 1, tzinfo=UTC))
    counted = AuditEntry.objects.order_by("id").last()
    assert (counted.detail, counted.repeats, counted.actor_username) == ("locked out", 3, "agent")
    assert chain.verify().ok
