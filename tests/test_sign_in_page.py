"""The sign-in page as a person meets it: after a wrong password the cursor is back in the
password field, and the page says when sign-in will pause."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client

from audit.models import Action, AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _input(page: str, name: str) -> str:
    return re.search(rf'<input[^>]*name="{name}"[^>]*>', page).group(0)


def test_the_form_starts_in_the_username_field(client):
    page = client.get("/accounts/login/").content.decode()

    assert "autofocus" in _input(page, "username")
    assert "autofocus" not in _input(page, "password")
    assert "failed sign-ins in a row" not in page


def test_after_a_wrong_password_the_password_field_has_the_focus(agent, settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)

    response = Client().post("/accounts/login/", {"username": "agent", "password": "wrong"})

    page = response.content.decode()
    assert "autofocus" in _input(page, "password")
    assert "autofocus" not in _input(page, "username")
    assert 'value="agent"' in _input(page, "username")
    assert "After 5 failed sign-ins in a row, sign-in pauses for 15 minutes." in page


def test_a_successful_sign_in_ends_the_run_of_failures(agent, settings):
    """The pages say sign-in pauses "after N failed sign-ins in a row"; axes kept counting across
    a sign-in, so N-1 mistakes, a sign-in, and one more mistake within the pause's length (signed
    out in another tab, say) paused the account for 15 minutes."""
    settings.AXES_FAILURE_LIMIT = 3
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = 20
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)

    def sign_in(password: str):
        return Client(REMOTE_ADDR="10.0.0.5").post(
            "/accounts/login/", {"username": "agent", "password": password}
        )

    for _ in range(2):
        assert sign_in("wrong").status_code == 200
    assert sign_in(PASSWORD).status_code == 302

    again = sign_in("wrong")

    assert again.status_code == 200
    assert "Sign-in is paused" not in again.content.decode()
    # Three in a row still pause it.
    sign_in("wrong")
    assert sign_in("wrong").status_code == 429


def test_a_second_tabs_sign_in_form_after_signing_in_in_the_first_takes_the_person_on(agent):
    """Every open page moves to the sign-in page when a sign-in ends. Signing in on one renews
    the CSRF secret, so the next tab's form was refused: "The form could not be accepted. It did
    not come from this console…", recorded as a refused form, though it was the console's own."""
    browser = Client(enforce_csrf_checks=True)  # one browser, two tabs: one cookie jar

    def form_token(page) -> str:
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]

    first = form_token(browser.get("/accounts/login/?next=/tokens/"))
    second = form_token(browser.get("/accounts/login/?next=/watching/"))
    signed_in = browser.post(
        "/accounts/login/?next=/tokens/",
        {"username": "agent", "password": PASSWORD, "csrfmiddlewaretoken": first},
    )
    assert signed_in.status_code == 302

    again = browser.post(
        "/accounts/login/?next=/watching/",
        {"username": "agent", "password": PASSWORD, "csrfmiddlewaretoken": second},
        follow=True,
    )

    assert again.redirect_chain == [("/watching/", 302)]
    assert "You are signed in as agent (in another tab)." in again.content.decode()
    assert not AuditEntry.objects.filter(action=Action.PERMISSION_DENIED).exists()


@pytest.mark.parametrize("elsewhere", ["https://evil.example/", "/accounts/login/"])
def test_a_stale_sign_in_form_of_someone_signed_in_never_leaves_the_console(agent, elsewhere):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent)
    browser.get("/accounts/login/")  # a CSRF cookie

    response = browser.post(
        f"/accounts/login/?next={elsewhere}", {"username": "x", "csrfmiddlewaretoken": "stale"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_a_form_without_the_csrf_token_is_still_refused_when_nobody_is_signed_in(agent):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/accounts/login/")

    response = browser.post(
        "/accounts/login/", {"username": "agent", "password": PASSWORD, "csrfmiddlewaretoken": "x"}
    )

    assert response.status_code == 403


def test_the_sign_in_page_sending_a_signed_in_person_back_to_itself_is_not_a_server_error(
    agent_client,
):
    """`/accounts/login/?next=/accounts/login/` (a link anyone can send), opened signed in:
    Django's view raised "Redirection loop for authenticated user detected", a 500."""
    agent_client.raise_request_exception = False

    response = agent_client.get("/accounts/login/?next=/accounts/login/")

    assert response.status_code == 302
    assert response["Location"] == "/"
