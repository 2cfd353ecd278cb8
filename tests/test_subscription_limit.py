"""What opening a push stream counts against the agent's lookup limit (meetings/lookups.py
`open_subscriptions`): one lookup per meeting it follows, except that a page's first stream,
opened within the minute after the page looked its meetings up, counts none of the meetings that
look counted. Every later stream of the page, another staff member's, a look over a minute old,
or a meeting the page has asked about since, counts in full."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from audit import spans
from audit.models import Span
from audit.services import Origin
from meetings import ratelimit
from meetings.lookups import open_subscriptions
from tests.conftest import _user

pytestmark = pytest.mark.django_db

MEETINGS = [("dev", "m-standup"), ("dev", "m-planning"), ("prod", "m-retro")]


@pytest.fixture(autouse=True)
def fresh_limit(settings):
    settings.CONNVO_LOOKUPS_PER_MINUTE = 1000
    cache.clear()


def looked_up(user, meetings=MEETINGS) -> str:
    """The page's first look: one call per meeting counted in its spans; returns the page's key."""
    counted = spans.count_calls(
        key="",
        origin=Origin(user=user, username=user.username),
        via="table",
        meetings=meetings,
        quiet_after=60,
    )
    return counted.key


def lookups_counted(user) -> int:
    return cache.get(ratelimit._key(user)) or 0


def test_a_pages_first_stream_counts_none_of_the_meetings_its_look_counted(agent):
    page = looked_up(agent)
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)
    assert lookups_counted(agent) == 0


def test_a_pages_later_streams_count_every_meeting(agent):
    page = looked_up(agent)
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)
    open_subscriptions(user=agent, meetings=MEETINGS[:2], span=page)
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)
    assert lookups_counted(agent) == 5


def test_a_meeting_the_look_did_not_count_is_counted(agent):
    page = looked_up(agent, MEETINGS[:2])
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)
    assert lookups_counted(agent) == 1


def test_a_meeting_asked_about_since_the_look_is_counted(agent):
    page = looked_up(agent)
    Span.objects.filter(key=page, meeting_id="m-planning").update(calls=2)  # a refresh since
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)
    assert lookups_counted(agent) == 1


def test_a_look_over_a_minute_old_does_not_count_for_the_stream(agent):
    page = looked_up(agent)
    Span.objects.filter(key=page).update(
        opened_at=timezone.now() - timedelta(seconds=ratelimit.WINDOW_SECONDS + 1)
    )
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)
    assert lookups_counted(agent) == 3


def test_another_staff_members_page_key_counts_in_full(agent):
    alice = _user("alice", "Support")
    page = looked_up(alice)
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)
    assert lookups_counted(agent) == 3
    # ... and does not use up alice's first stream.
    open_subscriptions(user=alice, meetings=MEETINGS, span=page)
    assert lookups_counted(alice) == 0


@pytest.mark.parametrize("key", ["", "not-a-key-of-any-page", "x" * 500])
def test_a_stream_without_the_pages_key_counts_in_full(agent, key):
    looked_up(agent)
    open_subscriptions(user=agent, meetings=MEETINGS, span=key)
    assert lookups_counted(agent) == 3


def test_over_the_limit_a_later_stream_is_refused_before_it_subscribes(agent, settings):
    settings.CONNVO_LOOKUPS_PER_MINUTE = 3
    page = looked_up(agent)
    for _ in MEETINGS:
        ratelimit.count_lookup(user=agent)  # the look itself, at the limit now
    open_subscriptions(user=agent, meetings=MEETINGS, span=page)  # the first stream: free
    with pytest.raises(ratelimit.LookupLimitReached):
        open_subscriptions(user=agent, meetings=MEETINGS, span=page)
