"""Nothing behind sign-in is kept by the browser: a shared or kiosk browser must not show a
meeting, a token row or the audit log to the next person after sign-out."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def assert_not_stored(response) -> None:
    directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    assert "no-store" in directives, (response.status_code, response.get("Cache-Control"))
    assert "private" in directives


@pytest.mark.parametrize("path", ["/", "/tokens/"])
def test_agent_pages_are_not_stored(agent_client: Client, path):
    response = agent_client.get(path)

    assert response.status_code == 200
    assert_not_stored(response)


def test_meeting_page_and_its_live_fragment_are_not_stored(
    agent_client: Client, agent_token, fake_connvo
):
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("planning")])

    page = agent_client.get(url)
    fragment = agent_client.get(url, headers={"HX-Request": "true"})

    assert page.status_code == 200
    assert_not_stored(page)
    assert fragment.status_code in {200, 204}
    assert_not_stored(fragment)


def test_a_refused_page_is_not_stored(outsider_client: Client):
    response = outsider_client.get("/audit/")

    assert response.status_code == 403
    assert_not_stored(response)


@pytest.mark.parametrize(
    "path",
    [
        "/audit/",
        "/audit/meetings/m1/",
        "/audit/staff/agent/",
        "/audit/export.csv",
        "/audit/export.jsonl",
    ],
)
def test_audit_pages_and_exports_are_not_stored(auditor_client: Client, audit_entry, path):
    audit_entry(username="agent", meeting_id="m1", deployment="dev")

    response = auditor_client.get(path)

    assert response.status_code == 200
    assert_not_stored(response)


def test_an_audit_entry_page_is_not_stored(auditor_client: Client, audit_entry):
    entry = audit_entry(username="agent", meeting_id="m1", deployment="dev")

    response = auditor_client.get(f"/audit/entries/{entry.pk}/")

    assert response.status_code == 200
    assert_not_stored(response)
