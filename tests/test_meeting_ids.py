"""Reading a meeting id out of what an agent types or pastes (no upstream call is involved)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id

MEETING_ID = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


@pytest.mark.parametrize(
    "pasted",
    [
        MEETING_ID,
        f"  {MEETING_ID}\n",
        f'"{MEETING_ID}"',
        f"https://app.connvo.example/meetings/{MEETING_ID}",
        f"https://app.connvo.example/meetings/{MEETING_ID}/?tab=notes#top",
        f"https://app.connvo.example/m?meetingId={MEETING_ID}&ref=email",
        # A log's colour codes and escaped line breaks are not part of the ID after them.
        f"\x1b[31m{MEETING_ID}\x1b[0m",
        f"\\u001b[1m{MEETING_ID}\\u001b[22m",
        f"error:\\n{MEETING_ID}",
    ],
)
def test_ids_and_links_are_accepted(pasted):
    assert parse_meeting_id(pasted) == MEETING_ID


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("", "Enter a meeting ID"),
        ("   ", "Enter a meeting ID"),
        ("meeting_123example", "not a Connvo meeting ID"),
        (MEETING_ID[:30], "not a Connvo meeting ID"),
        (MEETING_ID + "x" * 6, "not a Connvo meeting ID"),
        (MEETING_ID.upper(), "lowercase"),
        ("jd7f3s4h7yvxqrw0c8h5k3x2kn6r1mio", "not a Connvo meeting ID"),  # i and o are not base32
        (f"{MEETING_ID} {MEETING_ID[::-1]}", "more than one ID"),
    ],
)
def test_bad_input_is_explained(pasted, says):
    with pytest.raises(InvalidMeetingId) as caught:
        parse_meeting_id(pasted)

    assert says in caught.value.message


def test_meeting_segment_wins_in_a_link_with_other_ids():
    other = "k" * 32
    link = f"https://app.connvo.example/orgs/{other}/meetings/{MEETING_ID}"

    assert parse_meeting_id(link) == MEETING_ID


# --- Anything a person can paste --------------------------------------------------------------

ID_CHARS = "0123456789abcdefghjkmnpqrstvwxyz"
IDS = st.text(st.sampled_from(ID_CHARS), min_size=31, max_size=37)


@given(st.text())
def test_any_text_gives_an_id_or_a_reason(text):
    try:
        found = parse_meeting_id(text)
    except InvalidMeetingId as refusal:
        assert refusal.message
        assert len(refusal.message) < 400  # a long paste is cut, not echoed whole
        return
    assert len(found) in range(31, 38)
    assert set(found) <= set(ID_CHARS)


@given(IDS, st.sampled_from(["", " ", "\n"]), st.sampled_from(["", "/", "?tab=1"]))
def test_an_id_in_a_link_is_found_again(meeting_id, space, suffix):
    assert parse_meeting_id(f"{space}{meeting_id}{space}") == meeting_id
    assert (
        parse_meeting_id(f"https://app.connvo.example/meetings/{meeting_id}{suffix}") == meeting_id
    )
