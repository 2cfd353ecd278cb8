"""Reading a Connvo access token's claims (meetings/credentials.py): what the console shows and
schedules renewals by. Tokens come from agents' pastes and WorkOS answers, so anything goes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jwt
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from meetings.credentials import Claims, read_claims

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def unsigned(payload: dict) -> str:
    return jwt.encode(payload, key="", algorithm="none")


def test_claims_of_a_token_are_read():
    token = unsigned(
        {"sub": "user_01", "sid": "session_01", "iat": 1_899_999_700, "exp": 1_900_000_000}
    )

    assert read_claims(token) == Claims(
        subject="user_01",
        session_id="session_01",
        issued_at=datetime.fromtimestamp(1_899_999_700, tz=UTC),
        expires_at=datetime.fromtimestamp(1_900_000_000, tz=UTC),
    )


def test_something_that_is_not_a_token_has_no_claims():
    assert read_claims("hunter2") is None
    assert read_claims("a.b.c") is None


@given(st.text(max_size=300))
def test_any_text_is_read_or_refused_without_an_error(text):
    claims = read_claims(text)

    assert claims is None or isinstance(claims, Claims)


@given(st.dictionaries(st.sampled_from(["sub", "sid", "exp", "iat", "aud"]), json_values))
def test_claims_of_the_wrong_type_are_left_out(payload):
    claims = read_claims(unsigned(payload))

    assert claims is not None
    assert claims.subject == (payload["sub"] if isinstance(payload.get("sub"), str) else "")
    assert claims.session_id == (payload["sid"] if isinstance(payload.get("sid"), str) else "")
    for name, read in (("exp", claims.expires_at), ("iat", claims.issued_at)):
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            assert read is None
        elif abs(value) < 10**10:
            assert read is not None
            assert abs(read.timestamp() - value) < 1


# The two days either side of the calendar's first and last seconds, where an expiry moved to an
# agent's zone leaves the calendar.
near_the_calendars_ends = st.sampled_from([-62_135_596_800, 253_402_300_799]).flatmap(
    lambda end: (
        st.integers(end - 2 * 86_400, end + 2 * 86_400)
        | st.floats(end - 2 * 86_400, end + 2 * 86_400)
    )
)


@given(
    near_the_calendars_ends | st.integers() | st.floats(allow_nan=False),
    st.sampled_from(["UTC", "Pacific/Kiritimati", "Asia/Tokyo", "Pacific/Pago_Pago"]),
)
def test_an_expiry_is_read_only_when_every_agents_zone_can_show_it(exp, zone):
    claims = read_claims(unsigned({"exp": exp}))

    if claims.expires_at is not None:
        timezone.localtime(claims.expires_at, ZoneInfo(zone))
