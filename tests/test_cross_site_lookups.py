"""A lookup is a GET that calls Connvo and writes an audit entry in the agent's name. A link on
another site must not do that with one click: a request the browser marks cross-site gets the
lookup form filled in ("Open this meeting?") instead; direct navigation and the console's own
links work as before."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import Action, AuditEntry

pytestmark = pytest.mark.django_db


def detail_url(fake_connvo) -> str:
    return reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])


def test_a_cross_site_link_asks_before_looking_up(agent_client, agent_token, fake_connvo):
    meeting_id = fake_connvo.meeting_id("standup")

    response = agent_client.get(detail_url(fake_connvo), headers={"Sec-Fetch-Site": "cross-site"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Open this meeting?" in page
    # The lookup box (a textarea: it takes one or many references) holds the meeting's ID.
    box = re.search(r'<textarea[^>]*name="q"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert box.strip() == meeting_id
    assert '<option value="dev" selected>' in page
    assert fake_connvo.call_count == 0
    assert not AuditEntry.objects.filter(action=Action.LOOKUP).exists()


def test_a_cross_site_refresh_is_not_a_lookup_either(agent_client, agent_token, fake_connvo):
    response = agent_client.get(
        detail_url(fake_connvo), headers={"Sec-Fetch-Site": "cross-site", "HX-Request": "true"}
    )

    assert fake_connvo.call_count == 0
    assert "Open this meeting?" in response.content.decode()


@pytest.mark.parametrize("site", ["same-origin", "none", None])
def test_own_links_bookmarks_and_typed_addresses_look_up_as_before(
    agent_client, agent_token, fake_connvo, site
):
    headers = {"Sec-Fetch-Site": site} if site else {}

    response = agent_client.get(detail_url(fake_connvo), headers=headers)

    assert response.status_code == 200
    assert "Open this meeting?" not in response.content.decode()
    assert fake_connvo.call_count == 1
    assert AuditEntry.objects.filter(action=Action.LOOKUP).count() == 1


def test_confirming_looks_the_meeting_up(agent_client, agent_token, fake_connvo):
    meeting_id = fake_connvo.meeting_id("standup")

    confirmed = agent_client.get(
        reverse("meetings:lookup"),
        {"q": meeting_id, "deployment": "dev"},
        headers={"Sec-Fetch-Site": "same-origin"},
        follow=True,
    )

    assert confirmed.redirect_chain[-1][0] == detail_url(fake_connvo)
    assert fake_connvo.call_count == 1
