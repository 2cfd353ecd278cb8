"""A long paste into the lookup box, pasted as an agent pastes (the clipboard, Ctrl+V): the
browser keeps all of it, and the console reads it whole or says why not, with the paste kept."""

import pytest
from playwright.sync_api import Page, expect

from meetings.forms import MAX_PASTE

pytestmark = pytest.mark.django_db(transaction=True)

FILLER = "2026-12-07T10:00:00Z INFO gateway req=" + "f" * 32 + " latency_ms=12\n"


def paste(page: Page, text: str) -> None:
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    page.locator("#id_q").click()
    page.keyboard.press("Control+V")


def paste_and_look_up(page: Page, text: str) -> list:
    """Paste `text` into the box and press Enter; the forms the page then sends (none, when it
    says why not itself)."""
    sent = []
    page.on("request", lambda request: sent.append(request) if request.method == "POST" else None)
    paste(page, text)
    page.keyboard.press("Enter")
    return sent


@pytest.fixture
def clipboard(page: Page, live_server) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)


@pytest.mark.usefixtures("clipboard")
def test_a_paste_past_20000_characters_is_kept_whole_and_read_whole(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    first, last = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("planning")
    # Character 20,000 falls in the last ID: a maxlength="20000" kept 31 of its 32 characters,
    # still an ID's shape, and the console looked that other "meeting" up.
    head = (f"meeting={first}\n" + FILLER * 240)[: 20_000 - 31 - len(" meeting=")]
    text = f"{head} meeting={last}\n{FILLER}"
    assert text[:20_000].endswith(f"meeting={last[:31]}")
    sign_in("agent")

    paste(page, text)

    assert page.locator("#id_q").input_value() == text
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/table/dev/?ids={first},{last}")
    expect(page.locator("tbody tr")).to_have_count(2)
    screenshot("lookup-paste-read-whole")


@pytest.mark.usefixtures("clipboard")
def test_a_paste_past_the_limit_is_refused_with_why_and_kept(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    meeting = fake_connvo.meeting_id("standup")
    text = FILLER * (MAX_PASTE // len(FILLER) + 1) + f"meeting={meeting}"
    sign_in("agent")

    sent = paste_and_look_up(page, text)

    # Said by the page before sending it, in the form's words (meetings/forms.py TOO_LONG).
    expect(page.locator("#q-error")).to_have_text(
        f"That paste is {len(text):,} characters; the box reads at most {MAX_PASTE:,} at a time. "
        "Keep the part with the meeting IDs (the lines around the incident), or look the rest up "
        "in a second paste."
    )
    assert page.locator("#id_q").input_value() == text
    assert fake_connvo.call_count == 0 and sent == []
    screenshot("lookup-paste-too-long")


@pytest.mark.usefixtures("clipboard")
def test_a_paste_too_large_to_send_is_said_so_before_it_is_sent(
    page: Page, live_server, agent, agent_token, fake_connvo, sign_in, screenshot
):
    """Under the limit in characters, but outside ASCII: 120,000 Chinese characters are 3 bytes
    each, 1.1 MB once the form writes each byte as %XX, past nginx's 1 MB (whose bare 413 page
    the agent would get)."""
    meeting = fake_connvo.meeting_id("standup")
    text = f"会议 {meeting}\n" + "日志记录" * 30_000
    assert len(text) < MAX_PASTE
    sign_in("agent")

    sent = paste_and_look_up(page, text)

    expect(page.locator("#q-error")).to_have_text(
        "That paste is too large to send: 1,055 KB once encoded (characters outside ASCII take up "
        "to nine bytes each), over the 1,020 KB a lookup can send. Keep the part with the meeting "
        "IDs, or look the rest up in a second paste."
    )
    assert page.locator("#id_q").input_value() == text
    assert sent == [] and fake_connvo.call_count == 0
    screenshot("lookup-paste-too-large-to-send")
