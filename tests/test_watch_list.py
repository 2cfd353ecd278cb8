"""The watch list: meetings an agent watches, shown as a live triage table; finished ones apart
and no longer looked up. Pins are per staff member and never shared."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry, Via
from meetings import pasted_tokens
from meetings.deployments import deployments, production_names
from meetings.models import WatchedMeeting

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def watch(client, fake, label: str, deployment: str = "dev"):
    return client.post(reverse("meetings:watch", args=[deployment, fake.meeting_id(label)]))


def pinned(user) -> list[str]:
    return list(WatchedMeeting.objects.filter(user=user).values_list("meeting_id", flat=True))


@pytest.fixture
def other_agent(agent) -> User:
    other = User.objects.create_user("other", password="x")
    other.groups.add(Group.objects.get(name="Support"))
    return other


def test_meeting_page_offers_watch_then_unwatch(agent_client, agent, agent_token, fake_connvo):
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    assert "☆ Watch" in agent_client.get(url).content.decode()

    response = watch(agent_client, fake_connvo, "standup")

    assert response.status_code == 302 and response["Location"] == url
    assert pinned(agent) == [fake_connvo.meeting_id("standup")]
    page = agent_client.get(url).content.decode()
    assert "★ Watching" in page and "Unwatch" in page


def test_watching_twice_keeps_one_pin(agent_client, agent, fake_connvo):
    watch(agent_client, fake_connvo, "standup")
    watch(agent_client, fake_connvo, "standup")

    assert len(pinned(agent)) == 1


def test_database_refuses_a_duplicate_pin(agent, fake_connvo):
    WatchedMeeting.objects.create(user=agent, deployment="dev", meeting_id="m" * 32)

    with pytest.raises(IntegrityError), transaction.atomic():
        WatchedMeeting.objects.create(user=agent, deployment="dev", meeting_id="m" * 32)


def test_watch_needs_post_and_a_real_deployment(agent_client, agent, fake_connvo):
    meeting_id = fake_connvo.meeting_id("standup")

    assert agent_client.get(reverse("meetings:watch", args=["dev", meeting_id])).status_code == 405
    assert (
        agent_client.post(reverse("meetings:watch", args=["nope", meeting_id])).status_code == 404
    )
    assert pinned(agent) == []


def test_watching_page_shows_pins_as_a_live_table(agent_client, agent, agent_token, fake_connvo):
    for label in ("standup", "planning"):
        watch(agent_client, fake_connvo, label)

    html = agent_client.get(reverse("meetings:watching")).content.decode()

    assert "Support Team Daily Standup" in html and "Q3 Product Roadmap Planning" in html
    assert 'id="live-poller"' in html and "hx-trigger" in html
    assert (
        AuditEntry.objects.filter(via=Via.TABLE).count() == 2
    )  # the auditor sees what was watched


def test_finished_meetings_are_listed_apart_and_not_refreshed(
    agent_client, agent, agent_token, fake_connvo
):
    for label in ("standup", "retro"):
        watch(agent_client, fake_connvo, label)

    first = agent_client.get(reverse("meetings:watching"))
    html = first.content.decode()
    vals = json.loads(re.search(r"hx-vals='([^']*)'", html).group(1))
    calls = fake_connvo.call_count
    refresh = agent_client.get(reverse("meetings:watching"), vals, **HTMX)

    finished = html[html.index('id="finished-heading"') :]
    assert "Team Retrospective" in finished or "Retro" in finished
    assert 'id="row-' not in finished
    assert refresh.status_code in (200, 204)
    assert fake_connvo.call_count == calls + 1  # only standup: retro has concluded


def test_a_meeting_finishing_during_a_refresh_shows_concluded_and_is_not_asked_again(
    agent_client, agent, agent_token, fake_connvo
):
    watch(agent_client, fake_connvo, "standup")
    watch(agent_client, fake_connvo, "planning")
    html = agent_client.get(reverse("meetings:watching")).content.decode()
    vals = json.loads(re.search(r"hx-vals='([^']*)'", html).group(1))
    fake_connvo.update_meeting("standup", state="concluded")

    response = agent_client.get(reverse("meetings:watching"), vals, **HTMX)
    after = json.loads(re.search(r"hx-vals='([^']*)'", response.content.decode()).group(1))
    calls = fake_connvo.call_count
    agent_client.get(reverse("meetings:watching"), after, **HTMX)

    assert response.status_code == 200
    assert "HX-Refresh" not in response
    assert 'class="triage__row triage__row--concluded"' in response.content.decode()
    assert fake_connvo.call_count == calls + 1  # planning only


def test_a_pin_added_elsewhere_redraws_the_page_on_refresh(
    agent_client, agent, agent_token, fake_connvo
):
    watch(agent_client, fake_connvo, "standup")
    watch(agent_client, fake_connvo, "planning")
    html = agent_client.get(reverse("meetings:watching")).content.decode()
    list_key = re.search(r'"list": "(\w+)"', html).group(1)
    watch(agent_client, fake_connvo, "onboarding")
    calls = fake_connvo.call_count

    response = agent_client.get(
        reverse("meetings:watching"), {"list": list_key, "seen": "", "failures": 0}, **HTMX
    )

    assert response["HX-Refresh"] == "true"
    assert fake_connvo.call_count == calls


def test_unpin_from_the_watching_page(agent_client, agent, agent_token, fake_connvo):
    watch(agent_client, fake_connvo, "standup")
    meeting_id = fake_connvo.meeting_id("standup")

    response = agent_client.post(
        reverse("meetings:unwatch", args=["dev", meeting_id]),
        {"next": reverse("meetings:watching")},
    )

    assert response["Location"] == reverse("meetings:watching")
    assert pinned(agent) == []
    assert (
        "not watching any meeting"
        in agent_client.get(reverse("meetings:watching")).content.decode()
    )


def test_unwatch_never_follows_a_foreign_next(agent_client, agent, fake_connvo):
    watch(agent_client, fake_connvo, "standup")

    response = agent_client.post(
        reverse("meetings:unwatch", args=["dev", fake_connvo.meeting_id("standup")]),
        {"next": "https://evil.example/"},
    )

    assert response["Location"] == reverse("meetings:watching")


def test_pins_are_never_shared(agent_client, agent, other_agent, agent_token, fake_connvo):
    watch(agent_client, fake_connvo, "standup")
    other = Client()
    other.force_login(other_agent)

    other_page = other.get(reverse("meetings:watching")).content.decode()
    other.post(reverse("meetings:unwatch", args=["dev", fake_connvo.meeting_id("standup")]))

    assert "Support Team Daily Standup" not in other_page
    assert "not watching any meeting" in other_page
    assert pinned(agent) == [fake_connvo.meeting_id("standup")]
    assert pinned(other_agent) == []


def test_watch_list_is_as_long_as_a_table_at_most(agent_client, agent, fake_connvo, settings):
    settings.CONNVO_TABLE_MAX_MEETINGS = 2
    for label in ("standup", "planning", "onboarding"):
        watch(agent_client, fake_connvo, label)

    assert len(pinned(agent)) == 2


def test_outsider_cannot_watch(outsider_client, outsider, fake_connvo):
    response = watch(outsider_client, fake_connvo, "standup")

    assert response.status_code == 403
    assert outsider_client.get(reverse("meetings:watching")).status_code == 403
    assert pinned(outsider) == []


def test_a_watch_list_with_a_finished_meeting_refreshes_without_a_redraw(
    agent_client, agent, agent_token, fake_connvo
):
    for label in ("standup", "retro", "planning"):
        watch(agent_client, fake_connvo, label)
    html = agent_client.get(reverse("meetings:watching")).content.decode()
    vals = json.loads(re.search(r"hx-vals='([^']*)'", html).group(1))

    response = agent_client.get(reverse("meetings:watching"), vals, **HTMX)

    summary = re.search(r'<p id="table-summary".*?</p>', html, re.S).group(0)
    # The summary counts the whole watch list; the finished meeting is listed below the table.
    assert re.sub(r"<[^>]+>|\s+", "", summary) == "1active·1scheduled·1concluded"
    assert re.findall(r'<tr id="row-(\d+)"', html) == ["0", "2"]
    assert response.status_code == 204  # nothing changed: no redraw, no HX-Refresh


def test_the_watch_list_sorts_like_a_table_and_rows_keep_their_place_among_the_pins(
    agent_client, agent, agent_token, fake_connvo
):
    for label in ("standup", "planning", "all-hands", "onboarding"):
        watch(agent_client, fake_connvo, label)

    html = agent_client.get(reverse("meetings:watching"), {"sort": "participants"}).content.decode()

    # Highest first (48, 5, 4, 2); each row still named by its place among the pins, which the
    # live refresh's `done`, `known` and out-of-band rows use.
    assert re.findall(r'<tr id="row-(\d+)"', html) == ["2", "0", "1", "3"]
    assert re.search(r'<a href="/watching/\?sort=participants" aria-current="true">', html)
    assert re.search(r'<option value="participants" selected>', html)
    vals = json.loads(re.search(r"hx-vals='([^']*)'", html).group(1))
    assert vals["known"] == "0a.1s.2s.3a"
    assert 'hx-get="/watching/?sort=participants"' in html


def test_a_sort_the_watch_list_does_not_offer_shows_it_as_watched(
    agent_client, agent, agent_token, fake_connvo
):
    for label in ("standup", "planning"):
        watch(agent_client, fake_connvo, label)

    response = agent_client.get(reverse("meetings:watching"), {"sort": "<script>"})

    assert response.status_code == 200
    assert re.findall(r'<tr id="row-(\d+)"', response.content.decode()) == ["0", "1"]
    assert "<script>" not in response.content.decode()


def test_unwatch_from_a_sorted_list_comes_back_to_it(agent_client, agent, agent_token, fake_connvo):
    watch(agent_client, fake_connvo, "standup")
    html = agent_client.get(reverse("meetings:watching"), {"sort": "rating"}).content.decode()

    assert '<input type="hidden" name="next" value="/watching/?sort=rating">' in html


def deployment_tag(html: str, deployment: str, meeting_id: str) -> str:
    """The deployment tag of the watch list's row (live or finished) for this meeting."""
    detail = reverse("meetings:detail", args=[deployment, meeting_id])
    for item in re.finditer(r'<tr id="row-\d+".*?</tr>|<li>.*?</li>', html, re.S):
        if f'href="{detail}"' in item.group(0):
            return re.search(r'<span class="tag[^"]*">\w+</span>', item.group(0)).group(0)
    raise AssertionError(f"no row for {detail}")


def test_production_names_are_the_deployments_marked_production(settings):
    settings.CONNVO_PRODUCTION_DEPLOYMENTS = ["prod"]
    assert production_names() == {"prod"}
    assert production_names() == {d.name for d in deployments().values() if d.is_production}

    settings.CONNVO_PRODUCTION_DEPLOYMENTS = []
    assert production_names() == frozenset()


def test_the_watch_list_tags_production_meetings_as_the_meeting_page_does(
    agent_client, agent, agent_token, fake_connvo, fake_connvo_prod
):
    pasted_tokens.store_token(
        user=agent, deployment_name="prod", raw_token=fake_connvo_prod.token_for("agent")
    )
    fakes = {"dev": fake_connvo, "prod": fake_connvo_prod}
    pins = [
        (deployment, fake.meeting_id(label))
        for deployment, fake in fakes.items()
        for label in ("standup", "retro")  # live, and concluded (listed apart)
    ]
    for deployment, meeting_id in pins:
        WatchedMeeting.objects.create(user=agent, deployment=deployment, meeting_id=meeting_id)

    page = agent_client.get(reverse("meetings:watching")).content.decode()
    list_key = re.search(r'"list": "(\w+)"', page).group(1)
    refresh = agent_client.get(
        reverse("meetings:watching"), {"list": list_key, "seen": "", "failures": 0}, **HTMX
    ).content.decode()

    tags = {
        "prod": '<span class="tag tag--prod">prod</span>',
        "dev": '<span class="tag">dev</span>',
    }
    for deployment, meeting_id in pins:
        assert deployment_tag(page, deployment, meeting_id) == tags[deployment]
    for deployment, fake in fakes.items():  # the refresh redraws the live rows only
        standup = fake.meeting_id("standup")
        assert deployment_tag(refresh, deployment, standup) == tags[deployment]


def test_an_old_sort_order_shows_the_watch_list_as_watched_and_says_so(
    agent_client, agent, agent_token, fake_connvo
):
    response = agent_client.get(reverse("meetings:watching"), {"sort": "duration"})

    assert response.status_code == 200
    assert "a sort order the console does not have (“duration”)" in response.content.decode()


def test_a_pin_on_a_deployment_the_console_no_longer_has_says_so_in_the_summary(
    agent_client, agent, agent_token, fake_connvo
):
    """Its row said "Unknown deployment" while the summary counted it as "no such meeting"."""
    watch(agent_client, fake_connvo, "standup")
    WatchedMeeting.objects.create(user=agent, deployment="retired", meeting_id="j" * 32)

    html = agent_client.get(reverse("meetings:watching")).content.decode()

    summary = re.search(r'<p id="table-summary".*?</p>', html, re.S).group(0)
    assert re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", summary)).strip() == (
        "1 active · 1 unknown deployment"
    )
    assert 'data-group="unknown_deployment"' in html
