"""Whatever a stranger types at sign-in (a username longer than any column, characters a database
cannot hold), the sign-in is refused with the usual message, audited as a failed sign-in, and
counted towards the lockout (accounts/lockouts.py); never "database unavailable"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import repeats
from audit.models import Action, AuditEntry
from audit.repeats import requests_on_record
from tests.conftest import examples

pytestmark = pytest.mark.django_db

LIMIT = 3
REFUSED = "Please enter a correct username and password."
OVERLONG = "u" * 256


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = 100
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(username: str, *, ip: str = "10.0.0.5", **headers):
    return Client(REMOTE_ADDR=ip, **headers).post(
        "/accounts/login/", {"username": username, "password": "wrong"}
    )


def failures_counted() -> int:
    return AccessAttempt.objects.aggregate(total=Sum("failures_since_start"))["total"] or 0


def test_an_overlong_username_is_refused_audited_cut_and_counted(agent):
    response = sign_in(OVERLONG)

    assert response.status_code == 200
    assert REFUSED in response.content.decode()
    entry = AuditEntry.objects.get(action=Action.SIGN_IN_FAILED)
    assert entry.actor_username == "u" * 150
    assert entry.detail == "Wrong username or password."
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.failures_since_start) == ("u" * 255, 1)


def test_an_overlong_username_tried_too_often_is_paused_and_the_lockout_audited(agent):
    for _ in range(LIMIT - 1):
        assert sign_in(OVERLONG).status_code == 200

    response = sign_in(OVERLONG)

    assert response.status_code == 429
    assert "Sign-in is paused" in response.content.decode()
    assert sign_in(OVERLONG).status_code == 429
    repeats.seal_past(now=timezone.now() + timedelta(minutes=1))
    locked = AuditEntry.objects.filter(action=Action.SIGN_IN_FAILED, detail="locked out")
    assert locked.exists()
    assert {entry.actor_username for entry in locked} == {"u" * 150}
    # Another address is not paused by it.
    assert sign_in(OVERLONG, ip="10.0.0.6").status_code == 200


def test_a_nul_in_the_user_agent_is_stored_readably_and_counted(agent):
    response = sign_in("agent", HTTP_USER_AGENT="curl\x00/8")

    assert response.status_code == 200
    assert REFUSED in response.content.decode()
    entry = AuditEntry.objects.get(action=Action.SIGN_IN_FAILED)
    assert entry.user_agent == "curl\ufffd/8"
    assert AccessAttempt.objects.get().user_agent == "curl\ufffd/8"


# What a browser can send: a form body is decoded with replacement, so no lone surrogate.
USERNAMES = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


@settings(max_examples=examples(30), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=USERNAMES)
@example(username=OVERLONG)
@example(username="a\x00b")
@example(username="ü" * 200)
def test_any_username_is_refused_and_every_attempt_checked_is_audited_and_counted(agent, username):
    AccessAttempt.objects.all().delete()
    audited_before = requests_on_record(action=Action.SIGN_IN_FAILED)

    response = sign_in(username)

    assert response.status_code == 200
    # An entry of its own or counted with the minute's others (audit/repeats.py).
    audited = requests_on_record(action=Action.SIGN_IN_FAILED) - audited_before
    # The form refuses some usernames before any password is checked (blank, a NUL): those are
    # neither attempts nor audited. Every one that was checked is both.
    assert audited == failures_counted()
    if audited:
        assert REFUSED in response.content.decode()
