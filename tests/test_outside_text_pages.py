"""Text a stranger chose, on the pages that show it back: a NUL in an audit page's address is read
as the log stored it, and a sign-in the form itself refuses says why instead of a blank page."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page", ["/audit/staff/x%00/", "/audit/meetings/x%00/"])
def test_an_audit_page_for_a_name_holding_a_nul_answers(auditor_client, page):
    response = auditor_client.get(page)

    assert response.status_code == 200


@pytest.mark.parametrize(
    "username, words", [("eve\x00", "Null characters are not allowed"), ("", "required")]
)
def test_a_sign_in_the_form_refuses_says_why(client, username, words):
    response = client.post(
        reverse("accounts:login"), {"username": username, "password": "whatever"}
    )

    assert response.status_code == 200
    assert words in response.content.decode()
