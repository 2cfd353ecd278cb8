"""Sign-in throttling (django-axes): too many failures for one account from one address pause that
account's sign-in from that address, and more failures from one address (whatever the accounts)
pause that address; guesses from elsewhere never lock a person out of their own desk. The lockout
page says what happened and what to do, the lockout is audited, and it ends by itself or when an
administrator lifts it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit import repeats
from audit.models import Action, AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 3
ADDRESS_LIMIT = 5


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = ADDRESS_LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(username: str, password: str, *, ip: str = "10.0.0.5"):
    return Client(REMOTE_ADDR=ip).post(
        "/accounts/login/", {"username": username, "password": password}
    )


def test_wrong_passwords_lock_the_account_with_a_readable_page(agent):
    for _ in range(LIMIT - 1):
        assert sign_in("agent", "wrong").status_code == 200

    response = sign_in("agent", "wrong")

    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in is paused" in page
    assert (
        f"There were {LIMIT} failed sign-ins in a row for <strong>agent</strong> from this" in page
    )
    assert "Wait 15 minutes and try again" in page
    assert "console administrator" in page
    # Locked means locked: the right password does not get in either.
    assert sign_in("agent", PASSWORD).status_code == 429


def test_the_lockout_is_audited_under_the_username_tried(agent):
    for _ in range(LIMIT):
        sign_in("agent", "wrong", ip="10.0.0.7")

    # Counted after the minute's first refused sign-in, and sealed once the minute is over.
    repeats.seal_past(now=timezone.now() + timedelta(minutes=1))
    entry = AuditEntry.objects.get(action=Action.SIGN_IN_FAILED, detail="locked out")
    assert entry.actor_username == "agent"
    assert entry.client_ip == "10.0.0.7"
    assert entry.repeats == 1


def test_guesses_from_elsewhere_do_not_lock_the_account_out(agent):
    # An outsider trying to keep staff out during an incident, from several addresses.
    for number in range(LIMIT):
        for _ in range(LIMIT):
            sign_in("agent", "wrong", ip=f"10.0.1.{number}")

    assert sign_in("agent", "wrong", ip="10.0.1.0").status_code == 429
    assert sign_in("agent", PASSWORD, ip="10.0.2.1").status_code == 302


def test_guesses_through_the_admin_sign_in_do_not_lock_the_account_out(db):
    User.objects.create_superuser("root", password=PASSWORD)
    attacker = Client(REMOTE_ADDR="10.0.6.6")
    for _ in range(LIMIT):
        attacker.post("/admin/login/", {"username": "root", "password": "wrong"})

    assert (
        attacker.post("/admin/login/", {"username": "root", "password": PASSWORD}).status_code
        == 429
    )
    desk = Client(REMOTE_ADDR="10.0.2.2")
    response = desk.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_an_address_is_locked_whatever_accounts_it_guesses(agent, outsider):
    for number in range(ADDRESS_LIMIT):
        sign_in(f"someone{number}", "wrong", ip="10.0.3.1")

    response = sign_in("agent", PASSWORD, ip="10.0.3.1")
    assert response.status_code == 429
    assert "failed sign-ins from this computer" in response.content.decode()
    # The same person from their own desk is not affected.
    assert sign_in("agent", PASSWORD, ip="10.0.3.2").status_code == 302


def test_an_address_below_its_own_limit_is_not_locked(agent):
    for number in range(ADDRESS_LIMIT - 1):
        sign_in(f"someone{number}", "wrong", ip="10.0.3.1")

    assert sign_in("agent", PASSWORD, ip="10.0.3.1").status_code == 302


def test_the_lockout_ends_after_the_cool_off(agent):
    for _ in range(LIMIT):
        sign_in("agent", "wrong")

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert sign_in("agent", PASSWORD).status_code == 302


def test_an_administrator_can_lift_a_lockout(agent):
    for _ in range(LIMIT):
        sign_in("agent", "wrong")

    call_command("axes_reset_username", "agent")

    assert sign_in("agent", PASSWORD).status_code == 302


def test_failures_below_the_limit_show_the_usual_form_error(agent):
    response = sign_in("agent", "wrong")

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_sign_ins_refused_by_a_lockout_keep_it_going_without_growing_its_record(
    agent, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    for _ in range(LIMIT):
        sign_in("agent", "wrong")
    attempt = AccessAttempt.objects.get()
    time_machine.shift(timedelta(minutes=10))

    for _ in range(10):
        assert sign_in("agent", "wrong").status_code == 429

    refused = AccessAttempt.objects.get()
    # Each one counted, and the pause starts again from the last (as axes does)...
    assert refused.failures_since_start == LIMIT + 10
    assert refused.attempt_time == timezone.now()
    # ...but a flood's requests are not appended to the record one by one.
    assert (refused.get_data, refused.post_data) == (attempt.get_data, attempt.post_data)
    # Audited as lockouts, never as wrong passwords.
    assert not AuditEntry.objects.filter(detail="Wrong username or password.").exclude(
        at__lt=refused.attempt_time
    )
    time_machine.shift(timedelta(minutes=14))
    assert sign_in("agent", PASSWORD).status_code == 429
