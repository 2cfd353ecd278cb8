"""The start page: the lookup form and the agent's recent lookups."""

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(reverse("meetings:lookup"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_outsider_is_refused(outsider_client):
    assert outsider_client.get(reverse("meetings:lookup")).status_code == 403


def test_form_defaults_to_the_configured_deployment(agent_client):
    response = agent_client.get(reverse("meetings:lookup"))

    page = response.content.decode()
    assert response.status_code == 200
    assert '<option value="dev" selected>dev</option>' in page
    assert "prod (production)" in page


def test_pasted_link_opens_the_meeting_page(agent_client, fake_connvo):
    meeting_id = fake_connvo.meeting_id("standup")

    response = agent_client.get(
        reverse("meetings:lookup"),
        {
            "q": f"  https://app.connvo.example/meetings/{meeting_id}?tab=chat ",
            "deployment": "prod",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("meetings:detail", args=["prod", meeting_id])
    assert fake_connvo.call_count == 0  # the meeting page makes the call, once


def test_address_without_a_deployment_uses_the_one_the_form_offers(agent_client, fake_connvo):
    # A bookmark or a browser keyword (`/?q=%s`) names only the meeting.
    meeting_id = fake_connvo.meeting_id("standup")

    response = agent_client.get(reverse("meetings:lookup"), {"q": meeting_id})

    assert response.status_code == 302
    assert response["Location"] == reverse("meetings:detail", args=["dev", meeting_id])


def test_unknown_deployment_in_the_address_is_explained(agent_client, fake_connvo):
    meeting_id = fake_connvo.meeting_id("standup")

    response = agent_client.get(
        reverse("meetings:lookup"), {"q": meeting_id, "deployment": "staging"}
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "The console knows no deployment called “staging”: pick one from the list." in page
    assert re.search(rf'<textarea name="q"[^>]*>\s*{meeting_id}</textarea>', page)
    assert fake_connvo.call_count == 0


def test_bad_id_is_explained_and_kept_in_the_box(agent_client, fake_connvo):
    response = agent_client.get(
        reverse("meetings:lookup"), {"q": "meeting 42", "deployment": "dev"}
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "is not a Connvo meeting ID" in page
    # The box is a textarea (it takes a pasted list): what was typed is its content.
    assert re.search(r'<textarea name="q"[^>]*>\s*meeting 42</textarea>', page)
    assert fake_connvo.call_count == 0


def test_recent_lookups_link_back_to_meetings(agent_client, agent_token, fake_connvo):
    opened = [fake_connvo.meeting_id(label) for label in ("standup", "planning", "standup")]
    for meeting_id in opened:
        agent_client.get(reverse("meetings:detail", args=["dev", meeting_id]))

    page = agent_client.get(reverse("meetings:lookup")).content.decode()

    for meeting_id in set(opened):
        assert page.count(reverse("meetings:detail", args=["dev", meeting_id])) == 1


def test_deployment_of_last_lookup_is_remembered(agent, fake_connvo_prod, agent_client):
    from meetings import pasted_tokens

    pasted_tokens.store_token(
        user=agent, deployment_name="prod", raw_token=fake_connvo_prod.token_for("agent")
    )
    agent_client.get(
        reverse("meetings:detail", args=["prod", fake_connvo_prod.meeting_id("retro")])
    )

    page = agent_client.get(reverse("meetings:lookup")).content.decode()

    assert '<option value="prod" selected>' in page


def test_deployment_is_remembered_across_sign_ins(agent, fake_connvo_prod, client):
    from meetings import pasted_tokens

    pasted_tokens.store_token(
        user=agent, deployment_name="prod", raw_token=fake_connvo_prod.token_for("agent")
    )
    client.force_login(agent)
    client.get(reverse("meetings:detail", args=["prod", fake_connvo_prod.meeting_id("retro")]))
    client.logout()
    client.force_login(agent)

    page = client.get(reverse("meetings:lookup")).content.decode()

    assert '<option value="prod" selected>' in page


def test_recent_lookups_show_title_state_and_how_the_last_lookup_ended(
    agent_client, agent_token, fake_connvo
):
    standup, private = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("private")
    agent_client.get(reverse("meetings:detail", args=["dev", standup]))
    agent_client.get(reverse("meetings:detail", args=["dev", private]))

    page = agent_client.get(reverse("meetings:lookup")).content.decode()

    title = fake_connvo.meetings[standup].fields["title"]
    assert f'<strong class="recent__title"><bdi>{title}</bdi></strong>' in page
    assert "badge--active" in page
    assert "Not a participant" in page
