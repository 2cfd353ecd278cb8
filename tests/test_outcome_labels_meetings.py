"""One label per outcome on every surface of the meetings pages: the triage table's row, the meeting
page (beside the outcome code in "Details for escalation"), the start page's recent lookups and
the table's CSV all say `Outcome(x).label` (connvo_admin/outcomes.py), and none of them says one
of the older wordings. The meeting page's heading (the outcome's `title`) is the one other text,
and only there."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from connvo_admin.outcomes import HANDLING, Outcome
from fakeconnvo import FakeConnvo
from meetings import pasted_tokens
from tests.pages import row_of, text_of

pytestmark = pytest.mark.django_db


@dataclass
class Scene:
    fake: FakeConnvo
    agent: User
    client: Client
    settings: Any

    def save_token(self, raw: str | None = None) -> None:
        raw = raw or self.fake.token_for("agent")
        pasted_tokens.store_token(user=self.agent, deployment_name="dev", raw_token=raw)

    def meeting(self, label: str) -> str:
        return self.fake.meeting_id(label)


def _with_token(then: Callable[[Scene], str]) -> Callable[[Scene], str]:
    def arrange(scene: Scene) -> str:
        scene.save_token()
        return then(scene)

    return arrange


def _connvo_fails(kind: str, **options) -> Callable[[Scene], str]:
    def then(scene: Scene) -> str:
        scene.fake.misbehave(kind, **options)
        return scene.meeting("standup")

    return _with_token(then)


def _times_out(scene: Scene) -> str:
    scene.settings.CONNVO_READ_TIMEOUT = 0.5
    scene.fake.misbehave("slow", delay=3)
    return scene.meeting("standup")


def _unreachable(scene: Scene) -> str:
    scene.fake.down()
    return scene.meeting("standup")


def _over_the_lookup_limit(scene: Scene) -> str:
    scene.settings.CONNVO_LOOKUPS_PER_MINUTE = 1
    scene.client.get(reverse("meetings:detail", args=["dev", scene.meeting("interview")]))
    return scene.meeting("standup")


def _not_provisioned(scene: Scene) -> str:
    scene.save_token(scene.fake.issue_token(sub=scene.fake.unprovisioned_sub))
    return scene.meeting("standup")


# Each outcome the fake can produce: how to make the next lookup end so; returns the meeting ID
# looked up.
ARRANGE: dict[Outcome, Callable[[Scene], str]] = {
    Outcome.NOT_VISIBLE: _with_token(lambda scene: scene.meeting("private")),
    Outcome.NOT_FOUND: _with_token(lambda scene: scene.fake.unknown_meeting_id()),
    Outcome.INVALID_ID: _with_token(lambda scene: scene.fake.users_table_id()),
    Outcome.NO_TOKEN: lambda scene: scene.meeting("standup"),
    Outcome.TOKEN_REJECTED: _connvo_fails("expired_tokens"),
    Outcome.NOT_PROVISIONED: _not_provisioned,
    Outcome.SERVER_ERROR: _connvo_fails("status", status=500),
    Outcome.TIMEOUT: _with_token(_times_out),
    Outcome.BAD_RESPONSE: _connvo_fails("garbage"),
    Outcome.SCHEMA_MISMATCH: _connvo_fails("schema_drift", field="_id", drop=True),
    Outcome.RATE_LIMITED: _connvo_fails("status", status=429, retry_after=30),
    Outcome.OVERLOADED: _connvo_fails("overloaded"),
    Outcome.UNREACHABLE: _with_token(_unreachable),
    Outcome.LOOKUP_LIMIT: _with_token(_over_the_lookup_limit),
}
# What the table, its CSV, the recent lookups or the audit pages said before there was one label.
OLDER: dict[Outcome, tuple[str, ...]] = {
    Outcome.NOT_VISIBLE: ("You are not a participant", "Not visible to them"),
    Outcome.NOT_FOUND: ("Not found",),
    Outcome.NO_TOKEN: ("Console refused", "no token for the deployment"),
    Outcome.TOKEN_REJECTED: ("Connvo refused their token",),
    Outcome.NOT_PROVISIONED: ("Connvo account not set up", "No Connvo user for their token"),
    Outcome.SERVER_ERROR: ("Connvo failed",),
    Outcome.TIMEOUT: ("Connvo did not answer in time", "Connvo failed"),
    Outcome.BAD_RESPONSE: ("unexpected answer from Connvo", "Connvo failed"),
    Outcome.SCHEMA_MISMATCH: ("Console failed",),
    Outcome.RATE_LIMITED: ("Connvo was limiting lookups", "Connvo failed"),
    Outcome.OVERLOADED: ("Connvo failed",),
    Outcome.UNREACHABLE: ("Connvo failed",),
    Outcome.LOOKUP_LIMIT: ("the console's lookup limit", "Console refused"),
}
outcomes = pytest.mark.parametrize("outcome", list(ARRANGE), ids=str)


@pytest.fixture
def scene(agent, agent_client, fake_connvo, settings) -> Scene:
    return Scene(fake=fake_connvo, agent=agent, client=agent_client, settings=settings)


def label(outcome: Outcome) -> str:
    return HANDLING[outcome].label


def assert_no_older_wording(outcome: Outcome, text: str) -> None:
    said = [words for words in OLDER.get(outcome, ()) if words.lower() in text.lower()]
    assert said == [], f"older wording in {text!r}"


@outcomes
def test_the_table_row_says_the_outcomes_label(outcome, scene):
    target = ARRANGE[outcome](scene)

    page = scene.client.get(
        reverse("meetings:table", args=["dev"]), {"ids": f"{target},{scene.meeting('retro')}"}
    ).content.decode()

    cell = text_of(row_of(page, target))
    assert label(outcome) in cell
    assert_no_older_wording(outcome, cell)


@outcomes
def test_the_csv_says_the_outcomes_label(outcome, scene):
    target = ARRANGE[outcome](scene)

    response = scene.client.get(
        reverse("meetings:table", args=["dev"]),
        {"ids": f"{target},{scene.meeting('retro')}", "format": "csv"},
    )

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    cells = next(list(row.values()) for row in rows if row["meeting_id"] == target)
    assert label(outcome) in cells
    assert outcome.value in cells
    assert_no_older_wording(outcome, " | ".join(cells))


def escalation_details(page: str) -> str:
    start = page.index("Details for escalation")
    return page[start : page.index("</details>", start)]


@outcomes
def test_the_meeting_page_gives_the_label_beside_the_outcome_code(outcome, scene):
    target = ARRANGE[outcome](scene)

    page = scene.client.get(reverse("meetings:detail", args=["dev", target])).content.decode()

    details = escalation_details(page)
    assert outcome.value in details
    assert label(outcome) in text_of(details)


# An ID that is not a meeting's is left out of the recent lookups (there is nothing to go back to).
@pytest.mark.parametrize("outcome", [o for o in ARRANGE if o != Outcome.INVALID_ID], ids=str)
def test_the_recent_lookups_say_the_outcomes_label(outcome, scene):
    target = ARRANGE[outcome](scene)
    scene.client.get(reverse("meetings:detail", args=["dev", target]))

    page = scene.client.get(reverse("meetings:lookup")).content.decode()

    recent = page[page.index("recent lookups") :]
    item = next((li for li in re.findall(r"<li\b.*?</li>", recent, re.S) if target in li), None)
    assert item, "the lookup is not among the recent lookups"
    assert label(outcome) in text_of(item)
    assert_no_older_wording(outcome, text_of(item))


def test_not_a_participant_heads_the_meeting_page_and_is_never_a_table_cell(scene):
    target = ARRANGE[Outcome.NOT_VISIBLE](scene)

    page = scene.client.get(reverse("meetings:detail", args=["dev", target])).content.decode()
    table = scene.client.get(
        reverse("meetings:table", args=["dev"]), {"ids": f"{target},{scene.meeting('retro')}"}
    ).content.decode()

    assert HANDLING[Outcome.NOT_VISIBLE].title in text_of(page)
    cells = re.findall(r"<t[dh]\b.*?</t[dh]>", table, re.S)
    assert [cell for cell in cells if "You are not a participant" in text_of(cell)] == []
