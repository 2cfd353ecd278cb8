"""One cross-site rule on every GET that would look up: the meeting page and its live refresh, the
start page with `?q=`, the triage table, its CSV and its refresh, the watch list and its refresh.

A request the browser marks "cross-site" or "same-site" (a link on another site, or on a sibling
subdomain) gets a confirmation page instead: nothing is asked of Connvo, nothing is audited, and
the agent's lookup limit is not touched. "same-origin", "none" (a bookmark, a typed address) and
no header at all (an old browser, a script) look up as before."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit import spans
from fakeconnvo import FakeConnvo
from meetings.models import WatchedMeeting
from tests.pages import MEETING_ID, headings, lookup_box, main_part, selected_deployment

pytestmark = pytest.mark.django_db

ONE = "Open this meeting?"
MANY = "Open these meetings?"
ASKS_FIRST = ["cross-site", "same-site"]
LOOKS_UP = ["same-origin", "none", None]
FIRST_LOOK = {"seen": "", "failures": 0}  # what a refresh sends before it has seen anything


def detail_path(fake: FakeConnvo, label: str) -> str:
    return reverse("meetings:detail", args=["dev", fake.meeting_id(label)])


def pin(agent: User, fake: FakeConnvo, *labels: str) -> None:
    for label in labels:
        WatchedMeeting.objects.create(
            user=agent, deployment="dev", meeting_id=fake.meeting_id(label)
        )


def refresh_values(page: str) -> dict:
    return json.loads(re.search(r"hx-vals='([^']*)'", page).group(1))


@dataclass(frozen=True)
class Door:
    """A GET that would look meetings up: how to open it, what it would ask Connvo for, and what
    its confirmation says."""

    name: str
    labels: tuple[str, ...]  # the meetings it would look up
    heading: str
    # Arranges what the request needs; returns its path and query.
    prepare: Callable[[Client, FakeConnvo, User], tuple[str, dict]]
    htmx: bool = False
    # How the confirmation lets the agent go on: the lookup box filled in ("form"), or a way back
    # to the same address ("link"); a live refresh's answer is not checked for either.
    confirm: str = "form"


def _meeting_page(client, fake, agent):
    return detail_path(fake, "standup"), {}


def _meeting_refresh(client, fake, agent):
    return detail_path(fake, "standup"), FIRST_LOOK


def _start_page_one(client, fake, agent):
    return reverse("meetings:lookup"), {"q": fake.meeting_id("standup"), "deployment": "dev"}


def _start_page_two(client, fake, agent):
    ids = f"{fake.meeting_id('standup')} {fake.meeting_id('planning')}"
    return reverse("meetings:lookup"), {"q": ids, "deployment": "dev"}


def _table_query(fake) -> dict:
    return {"ids": f"{fake.meeting_id('standup')},{fake.meeting_id('planning')}"}


def _table(client, fake, agent):
    return reverse("meetings:table", args=["dev"]), _table_query(fake)


def _table_csv(client, fake, agent):
    return reverse("meetings:table", args=["dev"]), _table_query(fake) | {"format": "csv"}


def _table_refresh(client, fake, agent):
    return reverse("meetings:table", args=["dev"]), _table_query(fake) | FIRST_LOOK | {"done": ""}


def _watch_list(client, fake, agent):
    pin(agent, fake, "standup", "planning")
    return reverse("meetings:watching"), {}


def _watch_list_refresh(client, fake, agent):
    pin(agent, fake, "standup", "planning")
    # The refresh names the list it was drawn for: draw it first, from the console itself.
    page = client.get(reverse("meetings:watching"), headers={"Sec-Fetch-Site": "same-origin"})
    return reverse("meetings:watching"), refresh_values(page.content.decode())


DOORS = [
    Door("meeting page", ("standup",), ONE, _meeting_page),
    Door("meeting refresh", ("standup",), ONE, _meeting_refresh, htmx=True, confirm=""),
    Door("start page, one id", ("standup",), ONE, _start_page_one),
    Door("start page, two ids", ("standup", "planning"), MANY, _start_page_two),
    Door("table", ("standup", "planning"), MANY, _table),
    Door("table csv", ("standup", "planning"), MANY, _table_csv),
    Door("table refresh", ("standup", "planning"), MANY, _table_refresh, htmx=True, confirm=""),
    Door("watch list", ("standup", "planning"), MANY, _watch_list, confirm="link"),
    Door(
        "watch list refresh",
        ("standup", "planning"),
        MANY,
        _watch_list_refresh,
        htmx=True,
        confirm="",
    ),
]
PAGES = [door for door in DOORS if not door.htmx]


def open_door(client: Client, door: Door, path: str, query: dict, site: str | None, **kwargs):
    headers = {"Sec-Fetch-Site": site} if site else {}
    if door.htmx:
        headers["HX-Request"] = "true"
    return client.get(path, query, headers=headers, **kwargs)


def lookups_audited() -> int:
    """Connvo lookups on record: a first look's chained entry, a refresh's count in its span."""
    return spans.calls_on_record()


def by_name(door: Door) -> str:
    return door.name


@pytest.mark.parametrize("site", ASKS_FIRST)
@pytest.mark.parametrize("door", DOORS, ids=by_name)
def test_a_request_from_another_site_asks_first_and_looks_nothing_up(
    door, site, agent_client, agent, agent_token, fake_connvo
):
    path, query = door.prepare(agent_client, fake_connvo, agent)
    calls, audited = fake_connvo.call_count, lookups_audited()

    response = open_door(agent_client, door, path, query, site)

    assert response.status_code == 200
    assert door.heading in headings(response.content.decode())
    assert fake_connvo.call_count == calls
    assert lookups_audited() == audited


@pytest.mark.parametrize("site", ASKS_FIRST)
@pytest.mark.parametrize("door", [d for d in PAGES if d.confirm == "form"], ids=by_name)
def test_the_confirmation_holds_the_lookup_form_filled_in(
    door, site, agent_client, agent, agent_token, fake_connvo
):
    path, query = door.prepare(agent_client, fake_connvo, agent)

    page = main_part(open_door(agent_client, door, path, query, site).content.decode())

    assert door.heading in headings(page)
    box = lookup_box(page)
    assert box is not None, "no lookup box"
    assert set(MEETING_ID.findall(box)) == {fake_connvo.meeting_id(label) for label in door.labels}
    assert selected_deployment(page) == "dev"


@pytest.mark.parametrize("site", ASKS_FIRST)
def test_the_watch_list_confirmation_leads_back_to_the_watch_list(
    site, agent_client, agent, agent_token, fake_connvo
):
    door = next(d for d in DOORS if d.name == "watch list")
    path, query = door.prepare(agent_client, fake_connvo, agent)

    page = main_part(open_door(agent_client, door, path, query, site).content.decode())

    assert MANY in headings(page)
    watching = re.escape(reverse("meetings:watching"))
    assert re.search(rf'<a\b[^>]*\bhref="{watching}"', page) or re.search(
        rf'<form\b[^>]*\baction="{watching}"', page
    ), "no link or button back to the watch list"


@pytest.mark.parametrize("site", ASKS_FIRST)
@pytest.mark.parametrize("door", DOORS, ids=by_name)
def test_a_request_from_another_site_leaves_the_lookup_limit_alone(
    door, site, agent_client, agent, agent_token, fake_connvo, settings
):
    path, query = door.prepare(agent_client, fake_connvo, agent)
    # Room for exactly one more lookup: the one the agent makes next.
    settings.CONNVO_LOOKUPS_PER_MINUTE = fake_connvo.call_count + 1

    open_door(agent_client, door, path, query, site)
    following = agent_client.get(
        detail_path(fake_connvo, "planning"), headers={"Sec-Fetch-Site": "same-origin"}
    )

    assert following.status_code == 200
    assert "Q3 Product Roadmap Planning" in following.content.decode()


@pytest.mark.parametrize("door", PAGES, ids=by_name)
def test_the_confirmation_renders_for_an_agent_with_earlier_lookups(
    door, agent_client, agent, agent_token, fake_connvo
):
    for label in ("retro", "planning", "private"):
        agent_client.get(detail_path(fake_connvo, label), headers={"Sec-Fetch-Site": "same-origin"})
    assert lookups_audited() == 3
    path, query = door.prepare(agent_client, fake_connvo, agent)

    response = open_door(agent_client, door, path, query, "cross-site")

    assert response.status_code == 200
    assert door.heading in headings(response.content.decode())


@pytest.mark.parametrize("site", LOOKS_UP)
@pytest.mark.parametrize("door", DOORS, ids=by_name)
def test_own_links_bookmarks_and_scripts_look_up_as_before(
    door, site, agent_client, agent, agent_token, fake_connvo
):
    path, query = door.prepare(agent_client, fake_connvo, agent)
    calls, audited = fake_connvo.call_count, lookups_audited()

    # The start page sends an ID on to the page that looks it up.
    response = open_door(agent_client, door, path, query, site, follow=True)

    # A refresh of a page that has not changed answers 204 (nothing to swap).
    assert response.status_code in ((200, 204) if door.htmx else (200,))
    page = response.content.decode()
    assert ONE not in page and MANY not in page
    asked = len(door.labels)
    assert fake_connvo.call_count == calls + asked
    assert lookups_audited() == audited + asked
