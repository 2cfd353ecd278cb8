"""Reading one or many meeting references out of a paste: lists, links and blobs of text."""

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connvo_admin.meeting_ids import WHAT_AN_ID_IS, parse_meeting_id
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


def test_what_looks_like_a_mistyped_id_is_listed_with_why():
    typo = A[:28]
    capitals = B.upper()
    refs = parse_meeting_references(
        f"{A}\n{typo}\n{capitals}\nhttps://app.connvo.example/meetings/\n"
        f"https://app.connvo.example/meetings/{C[:-1]}uu"
    )

    assert refs.ids == (A,)
    reasons = {r.text: r.reason for r in refs.rejected}
    assert reasons[typo] == "it has 28 characters, not 31 to 37"
    assert reasons[capitals] == "it has capital letters, and meeting IDs are all lowercase"
    assert reasons["https://app.connvo.example/meetings/"] == (
        "it is a link to a meeting, but the meeting ID is missing"
    )
    assert reasons[f"https://app.connvo.example/meetings/{C[:-1]}uu"] == (
        "it has u, which meeting IDs never contain"
    )
    # The reason never quotes the word: the page puts the word beside it once.
    assert all(text not in reason for text, reason in reasons.items())


def test_log_noise_is_neither_an_id_nor_a_warning_only_an_ignored_token():
    excerpt = (
        f"[10:32:01] ERROR join failed meeting={A}\n"
        "request_id=req_8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d "
        "trace=9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a "
        f"user=usr_{B} span=8a7b6c5d4e3f2a1b 01HF8ZQ3K4W5X6Y7Z8A9B0C1D2 route=/api/meetings/join "
        f"meeting=- sha=8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b ok {C}"
    )

    refs = parse_meeting_references(excerpt)

    assert refs.ids == (A, C)
    assert refs.rejected == ()
    assert refs.ignored_tokens[:2] == (
        "request_id=req_8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
        # Shortened: a 64-character trace ID is listed, not spelled out.
        "trace=" + ("9f8e7d6c5b4a39281706f5e4d3c2b1a0" * 3)[:74] + "…",
    )
    assert f"user=usr_{B}" in refs.ignored_tokens
    assert len(refs.ignored_tokens) == 6


def test_a_hexadecimal_run_is_a_meeting_id_only_where_named_as_one():
    hexadecimal = "8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"

    assert parse_meeting_references(f"{A} {hexadecimal}").ids == (A,)
    for named in (
        f"meeting={hexadecimal}",
        f"meetingId:{hexadecimal}",
        f"https://app.connvo.example/meetings/{hexadecimal}",
    ):
        assert parse_meeting_references(f"{A} {named}").ids == (A, hexadecimal)


def test_a_pasted_request_id_alone_is_explained():
    with pytest.raises(InvalidMeetingId) as caught:
        parse_meeting_references("8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d")

    assert "looks like a request or trace ID" in caught.value.message


def test_two_ids_in_one_word_are_both_taken():
    assert parse_meeting_references(f"{A}/{B}").ids == (A, B)


@pytest.mark.parametrize(
    "link",
    [
        f"https://app.connvo.example/orgs/{B}/meetings/{A}",
        f"https://app.connvo.example/orgs/{B}/meetings/{A}/participants/{C}?compare={B}#top",
        f"https://app.connvo.example/orgs%2F{B}%2Fmeetings%2F{A}",
    ],
    ids=["an organisation's ID before", "IDs after", "escaped"],
)
def test_a_link_that_names_its_meeting_gives_that_meeting_only(link):
    # Both IDs were taken: the box opened a table of two and looked the organisation up too.
    refs = parse_meeting_references(f"see {link} please")

    assert refs.ids == (A,) == (parse_meeting_id(link),)
    assert refs.rejected == ()


def test_a_link_whose_meeting_is_not_an_id_gives_no_other_id():
    link = f"https://app.connvo.example/orgs/{B}/meetings/{A.upper()}"

    with pytest.raises(InvalidMeetingId) as caught:
        parse_meeting_references(link)
    assert "capital letters" in caught.value.message
    with pytest.raises(InvalidMeetingId):
        parse_meeting_id(link)
    # Beside other references it is a warning, and the organisation's ID is still no row.
    refs = parse_meeting_references(f"{link} {C}")
    assert refs.ids == (C,)
    assert [r.text for r in refs.rejected] == [link[:80] + "…"]


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("", "Enter a meeting ID"),
        ("meeting 42", "is not a Connvo meeting ID"),
        (A[:30], "is not a Connvo meeting ID"),
        (B.upper(), "lowercase"),
        (f"{A[:30]}, {B.upper()}", "None of these is a Connvo meeting ID"),
        # Only tokens of something else (a typed request ID, a hash): still no meeting ID.
        (f"request_id=req_{B} sha=8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d", "no Connvo meeting ID"),
    ],
)
def test_input_without_any_id_is_refused_with_why(pasted, says):
    with pytest.raises(InvalidMeetingId) as caught:
        parse_meeting_references(pasted)

    assert says in caught.value.message


# --- Properties ---------------------------------------------------------------------------------

ID_CHARS = "0123456789abcdefghjkmnpqrstvwxyz"
HEX_CHARS = "0123456789abcdef"
# A run of hexadecimal digits is a request ID or a hash unless the text names it as a meeting
# (meetings/references.py): a real Convex ID of 31+ characters is never one.
meeting_ids = st.text(alphabet=ID_CHARS, min_size=31, max_size=37).filter(
    lambda text: not set(text) <= set(HEX_CHARS)
)
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


@given(st.text(alphabet=ID_CHARS + "ABCXilou_-=/:?&#%. \n,;", max_size=400))
def test_text_made_of_id_letters_and_link_punctuation_never_breaks_the_parser(text):
    try:
        refs = parse_meeting_references(text)
    except InvalidMeetingId as exc:
        assert exc.message
        return
    assert all(ID_RE.fullmatch(meeting_id) for meeting_id in refs.ids)
    assert all(meeting_id in text for meeting_id in refs.ids)


# Noise as log lines carry it: keys that do not name a meeting, hexadecimal request and trace IDs,
# typed IDs of other things (`req_…`, `usr-…`), base64-like and uppercase ULID tokens, timestamps.
keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(
    lambda key: "meeting" not in key.lower()
)
hex_runs = st.text(alphabet=HEX_CHARS, min_size=1, max_size=64)
typed_ids = st.builds(
    "{}{}{}".format,
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=6),
    st.sampled_from("_-"),
    st.text(alphabet=ID_CHARS, min_size=1, max_size=40),
)
base64_like = st.text(
    alphabet=string.ascii_letters + string.digits, min_size=16, max_size=48
).filter(lambda text: any(c.islower() for c in text) and any(c.isupper() for c in text))
ulids = st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26)
timestamps = st.datetimes().map(lambda moment: moment.isoformat() + "Z")
noise_values = st.one_of(hex_runs, typed_ids, base64_like, ulids, timestamps, prose_words)
noise_tokens = st.one_of(
    noise_values, st.builds("{}={}".format, keys, noise_values), st.builds("[{}]".format, hex_runs)
)


@given(st.lists(noise_tokens, max_size=12), st.lists(noise_tokens, max_size=12), keys, meeting_ids)
def test_an_id_given_as_any_key_value_among_noise_is_found_alone(before, after, key, meeting_id):
    pasted = " ".join([*before, f"{key}={meeting_id}", *after])

    refs = parse_meeting_references(pasted)

    assert refs.ids == (meeting_id,)
    assert refs.rejected == ()


@given(st.lists(noise_tokens, min_size=1, max_size=20))
def test_noise_tokens_are_never_ids(tokens):
    with pytest.raises(InvalidMeetingId):
        parse_meeting_references(" ".join(tokens))

    # Nor warnings: beside a real ID, they are only counted.
    refs = parse_meeting_references(" ".join([A, *tokens]))
    assert refs.ids == (A,)
    assert refs.rejected == ()


@pytest.mark.parametrize(
    ("parse", "pasted"),
    [
        (parse_meeting_references, "hello world"),
        (parse_meeting_references, "0123456789abcdef0123456789abcdef"),
        (parse_meeting_references, f"{A.upper()} {B[:28]}"),
        (parse_meeting_id, f"https://app.connvo.example/orgs/{A}/calls/{B}/x"),
    ],
    ids=["prose", "a request ID", "mistyped IDs", "a link with two IDs"],
)
def test_every_refusal_says_what_a_meeting_id_is_in_the_same_words(parse, pasted):
    with pytest.raises(InvalidMeetingId) as caught:
        parse(pasted)

    assert WHAT_AN_ID_IS in caught.value.message


# --- Links -------------------------------------------------------------------------------------

# What a link's path holds around the segment that names its meeting: other IDs (an
# organisation's, a participant's), hexadecimal runs, words, and mistyped IDs.
path_segments = st.one_of(
    meeting_ids,
    hex_runs,
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=40),
    meeting_ids.map(str.upper),
).filter(lambda segment: segment.lower() not in ("meeting", "meetings"))
meeting_keys = st.sampled_from(["meetings", "meeting", "Meetings"])


def both_parsers_read(link: str, named: str) -> bool:
    """Both parsers read `link` as the meeting it names (True), or both refuse it (False)."""
    try:
        meeting_id = parse_meeting_id(link)
    except InvalidMeetingId:
        with pytest.raises(InvalidMeetingId):
            parse_meeting_references(link)
        return False
    assert meeting_id == named
    assert parse_meeting_references(link).ids == (named,)
    return True


@given(
    st.sampled_from(["https://app.connvo.example", "http://localhost:3000", "app.connvo.example"]),
    st.lists(path_segments, max_size=4),
    meeting_keys,
    st.one_of(meeting_ids, hex_runs, path_segments),
    st.lists(path_segments, max_size=3),
    st.lists(st.builds("{}={}".format, keys, path_segments), max_size=3),
)
def test_a_link_whose_path_names_a_meeting_reads_the_same_in_both_parsers(
    site, before, key, named, after, query
):
    link = "/".join([site, *before, key, named, *after])
    if query:
        link += "?" + "&".join(query)

    if both_parsers_read(link, named):
        # Among other references, it is still that one meeting.
        assert parse_meeting_references(f"{A} {link}, {B}").ids == tuple(
            dict.fromkeys([A, named, B])
        )


query_keys = st.sampled_from(["meetingId", "meeting_id", "meeting", "MeetingID", "meetings-id"])


@given(
    st.sampled_from(["https://app.connvo.example/join", "http://localhost:3000/m", "/join"]),
    st.lists(st.builds("{}={}".format, keys, path_segments), max_size=3),
    query_keys,
    st.one_of(meeting_ids, hex_runs, path_segments),
    st.lists(st.builds("{}={}".format, keys, path_segments), max_size=3),
)
def test_a_link_whose_query_names_a_meeting_reads_the_same_in_both_parsers(
    site, before, key, named, after
):
    """`?orgId=<org>&meetingId=<id>`: the meeting the query names, as a path's `/meetings/<id>`
    (the table looked the organisation's ID up too, and the single-ID box refused the link)."""
    link = site + "?" + "&".join([*before, f"{key}={named}", *after])

    both_parsers_read(link, named)


def test_an_organisations_id_before_the_meeting_in_a_links_query_is_not_looked_up():
    link = f"https://app.connvo.example/join?orgId={B}&meetingId={A}"

    assert parse_meeting_id(link) == A
    assert parse_meeting_references(link).ids == (A,)


# --- Decorated logs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pasted",
    [
        f"meeting:\x1b[1m{A}\x1b[22m, meeting:\x1b[1m{B}\x1b[22m",
        f"\x01\x02\x1b[31m{A}\x1b[0m\x7f \x1b[38;5;208m{B}\x1b(B\x1b[m",
        f'{{"level":"warn","msg":"retrying\\n{A}\\t{B}\\r\\n"}}',
        f'{{"msg":"\\u001b[1m{A}\\u001b[22m joined \\x1b[32m{B}\\033[0m"}}',
    ],
    ids=["bold", "colours", "escaped line breaks", "escaped colours"],
)
def test_colour_codes_and_escaped_line_breaks_in_a_log_are_separators(pasted):
    # Left in, `\x1b[31m` before an ID would be read as part of it: the ID `31mjd7f…` (35
    # characters, the shape of an ID too), looked up, audited and counted.
    assert parse_meeting_references(pasted).ids == (A, B)


# What a log puts around a word: a terminal's escape sequences (colours, cursor moves), raw or
# escaped as JSON, C or a shell writes them, and line breaks and tabs escaped in a JSON string.
escape_starts = st.sampled_from(["\x1b", "\\u001b", "\\u001B", "\\x1b", "\\x1B", "\\033", "\\e"])
control_sequences = st.builds(
    "{}[{}{}{}".format,
    escape_starts,
    st.text(st.characters(min_codepoint=0x30, max_codepoint=0x3F), max_size=8),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2F), max_size=2),
    st.characters(min_codepoint=0x40, max_codepoint=0x7E),
)
# ESC followed by `[` is the start of a control sequence, never one whole.
other_escapes = st.builds(
    "\x1b{}{}".format,
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2F), max_size=2),
    st.characters(min_codepoint=0x30, max_codepoint=0x7E, exclude_characters="["),
)
decorations = st.lists(
    st.one_of(control_sequences, other_escapes, st.sampled_from(["\\n", "\\t", "\\r"])),
    min_size=1,
    max_size=3,
).map("".join)


@given(
    st.sampled_from(["", "meeting:", "meetingId=", "msg=", '"', "x "]),
    decorations,
    meeting_ids,
    decorations,
)
def test_an_id_with_any_decoration_around_it_is_found_exactly(key, before, meeting_id, after):
    assert parse_meeting_references(f"{key}{before}{meeting_id}{after}").ids == (meeting_id,)
