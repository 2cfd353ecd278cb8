"""How Connvo's numbers and timestamps are shown to agents."""

from datetime import timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.template import Context, Template
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from meetings.templatetags.meeting_format import (
    humanize_duration,
    ms_datetime,
    ms_iso,
    number,
    planned_end,
    relative,
)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (59.5, "1 min"),
        (60, "1 min"),
        (89.999, "1 min"),  # to the nearest minute, once (not to a second, then a minute)
        (150, "3 min"),  # a half up, as the page's script rounds
        (3600, "1 h"),
        (5400, "1 h 30 min"),
        (7170, "2 h"),
    ],
)
def test_durations(seconds, shown):
    assert humanize_duration(seconds) == shown


@pytest.mark.parametrize(
    ("offset", "shown"),
    [
        (timedelta(seconds=20), "just now"),
        (timedelta(minutes=5), "in 5 min"),
        (timedelta(minutes=2, seconds=30), "in 3 min"),
        (-timedelta(hours=2, minutes=30), "3 h ago"),
        (-timedelta(minutes=5), "5 min ago"),
        (timedelta(minutes=59, seconds=50), "in 1 h"),
        (timedelta(hours=2), "in 2 h"),
        (-timedelta(days=3), "3 d ago"),
    ],
)
def test_relative_times(offset, shown):
    with time_machine.travel(timezone.now(), tick=False):  # a half stays a half
        assert relative(timezone.now() + offset) == shown


def test_fractional_millisecond_timestamps():
    at = ms_datetime(1704067200000.5)

    assert at.isoformat().startswith("2024-01-01T00:00:00.000")


@pytest.mark.parametrize(
    ("value", "shown"), [(3, "3"), (3.0, "3"), (4.25, "4.25"), (1200, "1,200")]
)
def test_numbers(value, shown):
    assert number(value) == shown


# Every number JSON can carry as a timestamp, in milliseconds: Convex's floats, and integers of any
# size (Python's JSON reads 10**400 exactly); most often the two days either side of the
# calendar's first and last instants, where a date moved to a viewer's zone leaves the calendar.
CALENDAR_ENDS_MS = (-62_135_596_800_000, 253_402_300_799_999)
TWO_DAYS_MS = 2 * 86_400_000
timestamps = (
    st.sampled_from(CALENDAR_ENDS_MS).flatmap(
        lambda end: (
            st.integers(end - TWO_DAYS_MS, end + TWO_DAYS_MS)
            | st.floats(end - TWO_DAYS_MS, end + TWO_DAYS_MS)
        )
    )
    | st.integers()
    | st.floats()
    | st.integers(min_value=-(2**60), max_value=2**60)
)
# UTC, the zones furthest east and west of it, and ones with odd offsets (India's half hour, and
# Manila's local mean time, 15 h 56 min behind UTC before 1845).
zones = st.sampled_from(
    [
        "UTC",
        "Pacific/Kiritimati",
        "Asia/Tokyo",
        "Pacific/Pago_Pago",
        "America/Sao_Paulo",
        "Asia/Kolkata",
        "Asia/Manila",
        "Etc/GMT-14",
        "Etc/GMT+12",
    ]
)
SHOWN = Template(
    "{% load meeting_format %}{% with at=value|ms_datetime %}{% if at %}"
    "{{ at|date:'c' }} {{ at|date:'D j M Y, H:i:s T' }} {{ at|relative }}{% endif %}{% endwith %}"
)


@given(timestamps, zones)
def test_any_timestamp_is_shown_in_any_zone_or_is_no_date(value, zone):
    with timezone.override(ZoneInfo(zone)):
        shown = SHOWN.render(Context({"value": value}))

    at = ms_datetime(value)
    assert (at is None) == (shown == "")
    if at is not None:
        assert abs(at.timestamp() * 1000 - value) <= 1


@given(st.integers(min_value=-62_135_510_400_000, max_value=253_402_214_399_999))
def test_a_timestamp_a_day_inside_the_calendar_is_a_date(milliseconds):
    assert ms_datetime(milliseconds) is not None


@pytest.mark.parametrize("milliseconds", [253402300799000, -62135596800000, 10**20, 10**400])
def test_a_timestamp_at_or_past_the_calendars_ends_is_no_date(milliseconds):
    assert ms_datetime(milliseconds) is None


@given(timestamps, st.integers() | st.floats(), zones)
def test_any_planned_end_is_shown_in_any_zone_or_is_none(start, duration, zone):
    meeting = SimpleNamespace(scheduled_at=start, duration=duration)

    end = planned_end(meeting)

    if end is not None:
        with timezone.override(ZoneInfo(zone)):
            Template("{{ end|date:'c' }} {{ end|date:'H:i' }}").render(Context({"end": end}))


@given(timestamps)
def test_the_csv_has_a_timestamp_as_a_utc_date_or_as_sent(value):
    at = ms_datetime(value)

    assert ms_iso(value) == (at.isoformat() if at is not None else str(value))
