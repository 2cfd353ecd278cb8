"""Text from Connvo cannot disguise itself: direction overrides and invisible characters in a
meeting's title or description are shown as visible escapes, and the text is isolated from the
page around it: `Refund \\u202eexe.tnemyap\\u202c review` must not read "Refund payment.exe
review"."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from meetings.templatetags.meeting_format import reveal_invisible, reveal_invisible_text

pytestmark = pytest.mark.django_db

SPOOFED = "Refund \u202eexe.tnemyap\u202c review"
UNCLOSED = "Weekly \u2066sync"
HIDDEN = "Pay\u200broll \ufeffreview\u00ad"
CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\ufeff"


def page_for(agent_client, fake_connvo, **fields) -> str:
    fake_connvo.update_meeting("planning", **fields)
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("planning")])
    response = agent_client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_a_direction_override_in_the_title_is_shown_not_obeyed(
    agent_client, agent_token, fake_connvo
):
    page = page_for(agent_client, fake_connvo, title=SPOOFED)

    heading = re.search(r'<h1 id="meeting-title"[^>]*>(.*?)</h1>', page, re.S).group(1)
    assert "<bdi>" in heading
    assert "U+202E" in heading and "U+202C" in heading
    assert "\u202e" not in heading and "\u202c" not in heading
    tab_title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "\u202e" not in tab_title
    assert "[U+202E]exe.tnemyap[U+202C]" in tab_title


def test_an_unclosed_isolate_cannot_spill_into_the_page(agent_client, agent_token, fake_connvo):
    page = page_for(agent_client, fake_connvo, title=UNCLOSED, description=UNCLOSED)

    assert "\u2066" not in page.split("Raw JSON from Connvo")[0]
    assert page.count("U+2066") >= 3  # heading, tab title, description


def test_invisible_characters_in_the_description_are_made_visible(
    agent_client, agent_token, fake_connvo
):
    page = page_for(agent_client, fake_connvo, description=HIDDEN)

    details = page.split("Raw JSON from Connvo")[0]
    for code in ("U+200B", "U+FEFF", "U+00AD"):
        assert code in details
    assert 'dir="auto"' in details


def test_a_line_or_paragraph_separator_is_shown_not_obeyed():
    # U+2028 and U+2029 break a line where nothing shows one ("archived<LS>by-admin").
    for char, code in (("\u2028", "U+2028"), ("\u2029", "U+2029")):
        shown = str(reveal_invisible(f"archived{char}by-admin"))
        assert code in shown and char not in shown


@given(st.text())
def test_no_control_or_invisible_character_survives(text):
    for shown in (str(reveal_invisible(text)), reveal_invisible_text(text)):
        assert not set(shown) & set(CONTROLS)


@given(
    st.text(
        st.characters(
            blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"),
            blacklist_characters="\u115f\u1160\u3164\uffa0",
        )
    )
)
def test_ordinary_text_is_left_as_it_is(text):
    assert reveal_invisible_text(text) == text
