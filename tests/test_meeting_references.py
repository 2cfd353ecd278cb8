"""Reading one or many meeting references out of a paste: lists, links and blobs of text."""

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meetings.connvo import InvalidMeetingId
from meetings.references import parse_meeting_references

A = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
B = "k17e2a9wz4qh8r3v6t5y0c1xnm2pdf7g"
C = "m5n6p7q8r9s0t1v2w3x4y5z6a7b8c9d0e"
ID_RE = re.compile(r"[0-9a-hjkmnp-tv-z]{31,37}")


@pytest.mark.parametrize(
    "pasted",
    [
        f"{A}\n{B}\n{C}",
        f"{A}, {B}; {C}",
        f"{A} {B}\t{C}",
        f"{A},{B},,;{C}\r\n",
        f"https://app.connvo.example/meetings/{A}\nhttps://app.connvo.example/meetings/{B}/ {C}",
    ],
)
def test_lists_of_ids_and_links_keep_their_order(pasted):
    refs = parse_meeting_references(pasted)

    assert refs.ids == (A, B, C)
    assert refs.rejected == ()


def test_duplicates_collapse_and_are_counted():
    refs = parse_meeting_references(f"{A} {B} {A}\nhttps://app.connvo.example/meetings/{B}")

    assert refs.ids == (A, B)
    assert refs.duplicates == 2


def test_ids_are_found_in_a_log_line():
    line = (
        f"2026-11-30T10:32:01Z ERROR webrtc join failed meeting={A} attempt=3 "
        f"(see also meetingId={B}; req 7f3a)"
    )

    refs = parse_meeting_references(line)

    assert refs.ids == (A, B)
    assert refs.rejected == ()
    assert refs.ignored_words > 0


def test_ids_are_found_in_a_chat_message():
    message = f"Hi team! Customers in {A} and {B} can't hear each other... also {A}?"

    assert parse_meeting_references(message).ids == (A, B)


def test_what_looks_meant_as_an_id_is_listed_with_why():
    typo = A[:28]
    capitals = B.upper()
    refs = parse_meeting_references(
        f"{A}\n{typo}\n{capitals}\nhttps://app.connvo.example/meetings/"
    )

    assert refs.ids == (A,)
    reasons = {r.text: r.reason for r in refs.rejected}
    assert "not a Connvo meeting ID" in reasons[typo]
    assert "lowercase" in reasons[capitals]
    assert "not a Connvo meeting ID" in reasons["https://app.connvo.example/meetings/"]


def test_two_ids_in_one_word_are_both_taken():
    assert parse_meeting_references(f"{A}/{B}").ids == (A, B)


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("", "Enter a meeting ID"),
        ("meeting 42", "is not a Connvo meeting ID"),
        (A[:30], "is not a Connvo meeting ID"),
        (B.upper(), "lowercase"),
        (f"{A[:30]}, {B[:25]}", "None of these is a Connvo meeting ID"),
    ],
)
def test_input_without_any_id_is_refused_with_why(pasted, says):
    with pytest.raises(InvalidMeetingId) as caught:
        parse_meeting_references(pasted)

    assert says in caught.value.message


# --- Properties ---------------------------------------------------------------------------------

ID_CHARS = "0123456789abcdefghjkmnpqrstvwxyz"
meeting_ids = st.text(alphabet=ID_CHARS, min_size=31, max_size=37)
separators = st.text(alphabet=" \n\t,;\r", min_size=1, max_size=4)
# Prose: words that can never contain an ID (too short, or with letters IDs never use).
prose_words = st.text(alphabet=string.ascii_letters + "!?.-'", min_size=1, max_size=12)


@given(st.lists(meeting_ids, min_size=1, max_size=30), st.data())
def test_any_list_of_ids_comes_back_in_order_without_repeats(ids, data):
    pasted = ""
    for meeting_id in ids:
        pasted += meeting_id + data.draw(separators)

    refs = parse_meeting_references(pasted)

    assert refs.ids == tuple(dict.fromkeys(ids))
    assert refs.duplicates == len(ids) - len(set(ids))


@given(st.lists(st.one_of(meeting_ids, prose_words), min_size=1, max_size=40))
def test_ids_among_prose_are_all_found_and_nothing_else(words):
    ids = [w for w in words if ID_RE.fullmatch(w)]
    pasted = " ".join(words)

    if ids:
        assert parse_meeting_references(pasted).ids == tuple(dict.fromkeys(ids))
    else:
        with pytest.raises(InvalidMeetingId):
            parse_meeting_references(pasted)


@given(st.text(max_size=300))
def test_any_text_gives_ids_that_were_in_it_or_a_reason(text):
    try:
        refs = parse_meeting_references(text)
    except InvalidMeetingId as exc:
        assert exc.message
        return
    assert refs.ids
    assert len(set(refs.ids)) == len(refs.ids)
    for meeting_id in refs.ids:
        assert ID_RE.fullmatch(meeting_id)
    for rejected in refs.rejected:
        assert rejected.reason
