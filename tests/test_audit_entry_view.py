"""One audit entry (/audit/entries/<id>/), every field of it."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from audit.models import Action
from connvo_admin.outcomes import Outcome

pytestmark = pytest.mark.django_db


def test_shows_every_field_and_links_to_the_meeting_and_staff_member(auditor_client, audit_entry):
    entry = audit_entry(
        username="alice",
        meeting_id="jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a",
        deployment="prod",
        via="page",
        outcome="not_visible",
        http_status=200,
        latency_ms=87,
        connvo_request_id="req-123",
        detail="Connvo said FORBIDDEN",
    )

    response = auditor_client.get(reverse("audit:entry", args=[entry.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    for text in ("not_visible", "87 ms", "req-123", "Connvo said FORBIDDEN", "10.0.0.7", entry.mac):
        assert text in page
    assert reverse("audit:meeting", args=[entry.meeting_id]) in page
    assert reverse("audit:staff", args=["alice"]) in page


def test_failed_sign_in_says_the_username_was_only_tried(auditor_client, audit_entry):
    entry = audit_entry(username="root", action=Action.SIGN_IN_FAILED)

    page = auditor_client.get(reverse("audit:entry", args=[entry.pk])).content.decode()

    assert "(the username that was tried)" in page


def test_unknown_entry_is_404(auditor_client):
    assert auditor_client.get(reverse("audit:entry", args=[999])).status_code == 404


def test_steps_to_the_previous_and_next_entry(auditor_client, audit_entry):
    first = audit_entry(username="alice")
    middle = audit_entry(username="bob", action=Action.SIGN_IN)
    last = audit_entry(username="carol", via="refresh")  # refreshes are entries like any other

    page = auditor_client.get(reverse("audit:entry", args=[middle.pk])).content.decode()
    newest = auditor_client.get(reverse("audit:entry", args=[last.pk])).content.decode()

    assert f'href="/audit/entries/{last.pk}/" rel="prev">\u2039 Newer entry' in page
    assert f'href="/audit/entries/{first.pk}/" rel="next">Older entry' in page
    assert 'rel="prev"' not in newest
    assert f'href="/audit/entries/{middle.pk}/" rel="next"' in newest


def test_outcome_in_plain_words_with_its_code(auditor_client, audit_entry):
    entry = audit_entry(username="alice", outcome="lookup_limit")

    page = auditor_client.get(reverse("audit:entry", args=[entry.pk])).content.decode()

    assert (
        f'<span class="outcome outcome--refused">{escape(Outcome.LOOKUP_LIMIT.label)}'
        '<span class="visually-hidden"> (refused as designed)</span></span> '
        '<code class="muted">lookup_limit</code>' in page
    )
