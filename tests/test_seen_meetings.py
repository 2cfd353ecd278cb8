"""Meetings named by their title wherever the console has seen them: a lookup that found a meeting
keeps its title and state (audit's SeenMeeting), the start page names the agent's recent meetings
by it in any later session, and the titles go with the audit entries at purge time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from audit import selectors
from audit.models import SeenMeeting
from audit.services import purge_old_entries, remember_seen
from meetings import pasted_tokens
from tests.conftest import _user

pytestmark = pytest.mark.django_db


def test_a_found_lookup_keeps_the_meetings_title_and_state(agent_client, agent_token, fake_connvo):
    standup = fake_connvo.meeting_id("standup")

    agent_client.get(reverse("meetings:detail", args=["dev", standup]))

    seen = SeenMeeting.objects.get(deployment="dev", meeting_id=standup)
    assert seen.title == fake_connvo.meetings[standup].fields["title"]
    assert seen.state == "active"


def test_a_lookup_that_found_nothing_keeps_no_title(agent_client, agent_token, fake_connvo):
    agent_client.get(reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("private")]))

    assert not SeenMeeting.objects.exists()


def test_a_table_names_its_meetings_for_later(agent_client, agent_token, fake_connvo):
    ids = [fake_connvo.meeting_id(label) for label in ("standup", "planning")]

    agent_client.get(reverse("meetings:table", args=["dev"]), {"ids": ",".join(ids)})

    assert set(SeenMeeting.objects.values_list("meeting_id", flat=True)) == set(ids)


def test_a_live_refresh_does_not_rewrite_the_title(agent_client, agent_token, fake_connvo):
    standup = fake_connvo.meeting_id("standup")
    agent_client.get(reverse("meetings:detail", args=["dev", standup]))
    first = SeenMeeting.objects.get().seen_at

    agent_client.get(reverse("meetings:detail", args=["dev", standup]), HTTP_HX_REQUEST="true")

    assert SeenMeeting.objects.get().seen_at == first


def test_recent_lookups_are_named_in_a_new_session_too(agent, agent_token, fake_connvo):
    standup = fake_connvo.meeting_id("standup")
    first = Client()
    first.force_login(agent)
    first.get(reverse("meetings:detail", args=["dev", standup]))
    later = Client()
    later.force_login(agent)

    page = later.get(reverse("meetings:lookup")).content.decode()

    title = fake_connvo.meetings[standup].fields["title"]
    assert f'<strong class="recent__title"><bdi>{title}</bdi></strong>' in page
    assert "badge--active" in page


def test_a_title_others_saw_is_not_shown_to_an_agent_connvo_refuses(
    agent_client, agent_token, fake_connvo
):
    private = fake_connvo.meeting_id("private")
    remember_seen([("dev", private, "Board meeting: layoffs", "active")], username="bob")

    agent_client.get(reverse("meetings:detail", args=["dev", private]))
    page = agent_client.get(reverse("meetings:lookup")).content.decode()

    assert "Board meeting" not in page
    assert private in page


def test_titles_seen_before_the_purges_cutoff_go_with_the_entries(audit_entry, settings):
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    now = datetime.now(UTC)
    audit_entry(at=now - timedelta(days=40))
    remember_seen([("dev", "a" * 32, "Old meeting", "concluded")], username="agent")
    SeenMeeting.objects.update(seen_at=now - timedelta(days=40))
    remember_seen([("dev", "b" * 32, "Recent meeting", "active")], username="agent")

    purge_old_entries(retention_days=30)

    assert list(SeenMeeting.objects.values_list("title", flat=True)) == ["Recent meeting"]


def test_titles_from_outside_are_stored_whatever_they_hold(db):
    remember_seen([("dev", "c" * 32, "x\x00" + "é" * 400, "archived\x00")], username="agent")

    seen = SeenMeeting.objects.get()
    assert seen.title == "x\ufffd" + "é" * 298
    assert seen.state == "archived\ufffd"


def test_recent_lookups_never_show_a_title_given_after_the_agent_lost_the_meeting(
    agent_client, agent_token, fake_connvo
):
    """One title per meeting, whoever saw it: the agent's last lookup found the meeting; then the
    agent was taken off it and it was renamed; a colleague who still takes part opened it, and
    the agent's start page showed the new title, which Connvo never showed the agent (review)."""
    standup = fake_connvo.meeting_id("standup")
    agent_client.get(reverse("meetings:detail", args=["dev", standup]))  # found, as the agent
    shown = fake_connvo.meetings[standup].fields["title"]
    fake_connvo.remove_participant("standup", "agent")
    fake_connvo.update_meeting("standup", title="Reorg: who is let go")
    bob = _user("bob", "Support")
    pasted_tokens.store_token(
        user=bob, deployment_name="dev", raw_token=fake_connvo.token_for("bob")
    )
    colleague = Client()
    colleague.force_login(bob)
    assert colleague.get(reverse("meetings:detail", args=["dev", standup])).status_code == 200

    page = agent_client.get(reverse("meetings:lookup")).content.decode()
    audit_title = selectors.seen_title(meeting_id=standup)

    assert "Reorg" not in page
    # Named by the title the agent was shown; the audit pages by the newest anyone saw.
    assert f'<strong class="recent__title"><bdi>{shown}</bdi></strong>' in page
    assert audit_title == "Reorg: who is let go"
