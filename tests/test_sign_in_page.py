"""The sign-in page as a person meets it: after a wrong password the cursor is back in the
password field, and the page says when sign-in will pause."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client

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
