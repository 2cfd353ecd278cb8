"""How Connvo's numbers and timestamps are shown to agents."""

from datetime import timedelta

import pytest
from django.utils import timezone

from meetings.templatetags.meeting_format import humanize_duration, ms_datetime, number, relative


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (45, "45 s"), (60, "1 min"), (3600, "1 h"), (5400, "1 h 30 min"), (7170, "2 h")],
)
def test_durations(seconds, shown):
    assert humanize_duration(seconds) == shown


@pytest.mark.parametrize(
    ("offset", "shown"),
    [
        (timedelta(seconds=20), "just now"),
        (timedelta(minutes=5), "in 5 min"),
        (-timedelta(minutes=5), "5 min ago"),
        (timedelta(minutes=59, seconds=50), "in 1 h"),
        (timedelta(hours=2), "in 2 h"),
        (-timedelta(days=3), "3 d ago"),
    ],
)
def test_relative_times(offset, shown):
    assert relative(timezone.now() + offset) == shown


def test_fractional_millisecond_timestamps():
    at = ms_datetime(1704067200000.5)

    assert at.isoformat().startswith("2024-01-01T00:00:00.000")


@pytest.mark.parametrize(
    ("value", "shown"), [(3, "3"), (3.0, "3"), (4.25, "4.25"), (1200, "1,200")]
)
def test_numbers(value, shown):
    assert number(value) == shown
