"""The watch list's rough edges: any `next` after Watch/Unwatch lands on the meeting page or the
watch list, never a server error; the cap (CONNVO_TABLE_MAX_MEETINGS) holds under concurrent
Watch presses; opening the watch list (a GET, or its live refresh) writes nothing; and the
console says Watch/Unwatch everywhere, as the meeting page's button does."""

from __future__ import annotations

import ast
import json
import re
import secrets
import threading
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from meetings.models import WatchedMeeting
from tests.pages import main_part, text_of

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
HTMX = {"HX-Request": "true"}
PIN_WORDS = re.compile(r"\b(?:un)?pin(?:s|ned|ning)?\b", re.I)
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Convex's base32: no i, l, o or u


def new_meeting_id() -> str:
    """A well-formed meeting ID no one has used (Watch does not ask Connvo)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def pin(agent, *meeting_ids: str) -> None:
    for meeting_id in meeting_ids:
        WatchedMeeting.objects.create(user=agent, deployment="dev", meeting_id=meeting_id)


def all_pins() -> list[dict]:
    return list(WatchedMeeting.objects.order_by("pk").values())


def messages_in(page: str) -> str:
    shown = re.search(r'<ul class="messages".*?</ul>', page, re.S)
    return text_of(shown.group(0)) if shown else ""


def messages_shown(client: Client) -> str:
    """The messages the next page shows the agent (the start page, which asks Connvo nothing)."""
    return messages_in(client.get(reverse("meetings:lookup")).content.decode())


# --- Where Watch and Unwatch go next (defect 6) -------------------------------------------------

NEXTS = {
    "a word": "foo",
    "another host": "//evil.example",
    "a script": "javascript:alert(1)",
    "3000 characters": "a" * 3000,
}


@pytest.mark.parametrize("next_url", list(NEXTS.values()), ids=list(NEXTS))
def test_watch_with_any_next_lands_on_the_meeting_page_or_the_watch_list(
    next_url, agent_client, agent
):
    meeting_id = new_meeting_id()

    response = agent_client.post(
        reverse("meetings:watch", args=["dev", meeting_id]), {"next": next_url}
    )

    assert response.status_code in (302, 303)
    assert response["Location"] in (
        reverse("meetings:detail", args=["dev", meeting_id]),
        reverse("meetings:watching"),
    )
    assert WatchedMeeting.objects.filter(user=agent, meeting_id=meeting_id).exists()


@pytest.mark.parametrize("next_url", list(NEXTS.values()), ids=list(NEXTS))
def test_unwatch_with_any_next_lands_on_the_meeting_page_or_the_watch_list(
    next_url, agent_client, agent
):
    meeting_id = new_meeting_id()
    pin(agent, meeting_id)

    response = agent_client.post(
        reverse("meetings:unwatch", args=["dev", meeting_id]), {"next": next_url}
    )

    assert response.status_code in (302, 303)
    assert response["Location"] in (
        reverse("meetings:detail", args=["dev", meeting_id]),
        reverse("meetings:watching"),
    )
    assert not WatchedMeeting.objects.filter(user=agent, meeting_id=meeting_id).exists()


# --- The cap under concurrent presses (defect 7) ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_watches_never_take_the_list_past_its_cap(agent, settings):
    settings.CONNVO_TABLE_MAX_MEETINGS = 100
    WatchedMeeting.objects.bulk_create(
        WatchedMeeting(user=agent, deployment="dev", meeting_id=new_meeting_id()) for _ in range(95)
    )
    wanted = [new_meeting_id() for _ in range(30)]
    clients = {}
    for meeting_id in wanted:
        clients[meeting_id] = Client(raise_request_exception=False)
        clients[meeting_id].force_login(agent)
    start = threading.Barrier(len(wanted))
    answers: dict[str, object] = {}
    told: dict[str, str] = {}

    # Both databases make concurrent writers wait (PostgreSQL's row locks, SQLite's busy timeout
    # on the file): no press may be answered "try again" (503).
    def press_watch(meeting_id: str) -> None:
        client = clients[meeting_id]
        url = reverse("meetings:watch", args=["dev", meeting_id])
        try:
            start.wait(timeout=30)
            answers[meeting_id] = client.post(url).status_code
            page = client.get(reverse("meetings:lookup"))
            told[meeting_id] = messages_in(page.content.decode())
        except Exception as error:  # asserted below
            answers[meeting_id] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press_watch, args=(m,)) for m in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert {m: a for m, a in answers.items() if a not in (302, 303)} == {}
    pinned = set(WatchedMeeting.objects.filter(user=agent).values_list("meeting_id", flat=True))
    # At most the cap; and exactly the cap, since every refusal says the list is full.
    assert len(pinned) == 100
    refused = [m for m in wanted if m not in pinned]
    assert len(refused) == 25
    for meeting_id in refused:
        assert "already watching 100" in told[meeting_id]


# --- GET views write nothing ----------------------------------------------------------------


def test_opening_the_watch_list_changes_no_pin_even_when_a_meeting_concluded(
    agent_client, agent, agent_token, fake_connvo
):
    pin(agent, *(fake_connvo.meeting_id(label) for label in ("standup", "retro", "planning")))
    before = all_pins()

    response = agent_client.get(reverse("meetings:watching"))

    assert response.status_code == 200
    assert all_pins() == before


def test_the_watch_list_refresh_changes_no_pin_when_a_meeting_concludes(
    agent_client, agent, agent_token, fake_connvo
):
    pin(agent, *(fake_connvo.meeting_id(label) for label in ("standup", "planning")))
    page = agent_client.get(reverse("meetings:watching")).content.decode()
    values = re.search(r"hx-vals='([^']*)'", page).group(1)
    before = all_pins()
    fake_connvo.update_meeting("standup", state="concluded")

    response = agent_client.get(reverse("meetings:watching"), json.loads(values), headers=HTMX)

    assert response.status_code < 500
    assert all_pins() == before


def finished_part(page: str) -> str:
    match = re.search(r"<h[1-6]\b[^>]*>\s*Finished\s*</h[1-6]>(.*?)(?:</section>|$)", page, re.S)
    assert match, "no Finished part"
    return match.group(1)


def test_a_meeting_that_concluded_is_shown_under_finished_with_its_title(
    agent_client, agent, agent_token, fake_connvo
):
    pin(agent, *(fake_connvo.meeting_id(label) for label in ("standup", "retro")))

    first = agent_client.get(reverse("meetings:watching")).content.decode()
    second = agent_client.get(reverse("meetings:watching")).content.decode()

    for page in (first, second):
        finished = text_of(finished_part(page))
        assert "Sprint 42 Retrospective" in finished
        assert "Support Team Daily Standup" not in finished


# --- One word pair: Watch / Unwatch ----------------------------------------------------------


def test_the_watch_list_says_unwatch_and_never_pin(agent_client, agent, agent_token, fake_connvo):
    pin(agent, *(fake_connvo.meeting_id(label) for label in ("standup", "retro")))

    page = agent_client.get(reverse("meetings:watching")).content.decode()

    assert "Unwatch" in text_of(main_part(page))
    assert PIN_WORDS.findall(page) == []


def test_watching_and_unwatching_say_so_in_the_same_words(agent_client, agent):
    meeting_id = new_meeting_id()

    agent_client.post(reverse("meetings:watch", args=["dev", meeting_id]))
    on_watch = messages_shown(agent_client)
    agent_client.post(reverse("meetings:unwatch", args=["dev", meeting_id]))
    on_unwatch = messages_shown(agent_client)

    assert on_watch and on_unwatch
    assert PIN_WORDS.findall(on_watch + " " + on_unwatch) == []


def _template_text(source: str) -> str:
    """What a template can show: its text and HTML, without template tags, variables and
    comments (a loop variable may be called `pin`; the agent never reads it)."""
    return re.sub(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", " ", source, flags=re.S)


def test_no_template_of_the_meeting_pages_says_pin():
    found = {
        path.name: PIN_WORDS.findall(_template_text(path.read_text()))
        for path in sorted((ROOT / "templates" / "meetings").rglob("*.html"))
    }

    assert {name: words for name, words in found.items() if words} == {}


MESSAGE_FUNCTIONS = {"debug", "info", "success", "warning", "error", "add_message"}


def _message_texts(tree: ast.AST) -> list[str]:
    """The text of every `messages.<level>(...)` call: its string literals and f-string parts."""
    texts = []
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in MESSAGE_FUNCTIONS
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "messages"
        ):
            texts += [
                node.value
                for arg in (*call.args, *(k.value for k in call.keywords))
                for node in ast.walk(arg)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
            ]
    return texts


def test_no_message_of_the_meetings_app_says_pin():
    found = {}
    for path in sorted((ROOT / "meetings").rglob("*.py")):
        texts = _message_texts(ast.parse(path.read_text()))
        words = [text for text in texts if PIN_WORDS.search(text)]
        if words:
            found[str(path.relative_to(ROOT))] = words

    assert found == {}


def test_the_message_finder_finds_the_messages_it_looks_for():
    source = 'messages.success(request, f"Pinned {n} to your list")\nmessages.error(r, "Unpin")'

    assert _message_texts(ast.parse(source)) == ["Pinned ", " to your list", "Unpin"]
