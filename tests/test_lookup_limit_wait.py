"""How long a lookup refused by the console's own limit must wait: the seconds left in the staff
member's window (meetings/ratelimit.py), carried by the refusal to the page's countdown and to
every row of a list the limit cut short."""

from __future__ import annotations

import html
import secrets
from datetime import UTC, datetime

import pytest

from audit.models import Via
from audit.services import Origin
from meetings import lookups, ratelimit
from tests.production import TEST_REDIS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limit_of_one(settings):
    settings.CONNVO_LOOKUPS_PER_MINUTE = 1


def refusal(agent) -> ratelimit.LookupLimitReached:
    with pytest.raises(ratelimit.LookupLimitReached) as refused:
        ratelimit.count_lookup(user=agent)
    return refused.value


def test_the_refusal_says_how_many_seconds_the_window_has_left(agent, time_machine):
    time_machine.move_to(datetime(2027, 3, 1, 9, 0, 0, tzinfo=UTC), tick=False)
    ratelimit.count_lookup(user=agent)  # opens the window

    time_machine.shift(20)

    assert refusal(agent).retry_after == 40


def test_a_part_of_a_second_left_counts_as_a_whole_one(agent, time_machine):
    # Rounded up: a countdown that reached 0 early would offer a lookup still refused.
    time_machine.move_to(datetime(2027, 3, 1, 9, 0, 0, tzinfo=UTC), tick=False)
    ratelimit.count_lookup(user=agent)

    time_machine.shift(59.2)

    assert refusal(agent).retry_after == 1


def test_with_redis_the_seconds_left_are_the_counters_own(agent, settings):
    prefix = f"test-{secrets.token_hex(6)}"
    settings.CACHES = {
        "default": {
            "BACKEND": "connvo_admin.cache.RedisCache",
            "LOCATION": TEST_REDIS,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    client = ratelimit._redis()
    try:
        ratelimit.count_lookup(user=agent)
        key = next(client.scan_iter(match=f"{prefix}:*"))
        client.pexpire(key, 12_300)  # as if the window opened 47.7 s ago

        assert refusal(agent).retry_after == 13
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)


def test_every_row_a_list_could_not_ask_carries_the_same_wait(agent, agent_token, fake_connvo):
    origin = Origin(user=agent, username="agent", client_ip="10.0.0.7", user_agent="pytest")
    wanted = [
        lookups.Wanted("dev", fake_connvo.meeting_id(label)) for label in ("standup", "retro")
    ]
    ratelimit.count_lookup(user=agent)  # the minute's one lookup is spent

    answers = lookups.look_up(user=agent, origin=origin, wanted=wanted, via=Via.TABLE)

    waits = [answer.error.retry_after for answer in answers]
    assert waits[0] == waits[1]
    assert 1 <= waits[0] <= ratelimit.WINDOW_SECONDS


def test_the_page_counts_down_from_the_seconds_left(agent_client, agent_token, fake_connvo):
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    agent_client.get(path)

    response = agent_client.get(path)

    page = html.unescape(response.content.decode())
    assert response.status_code == 429
    # Without JavaScript the button is a plain link, and the steps say how long to wait.
    assert f'href="{path}" data-wait="' in page
    wait = int(page.split('data-wait="')[1].split('"')[0])
    assert 1 <= wait <= ratelimit.WINDOW_SECONDS
    assert f"Wait {wait} s, then look it up again" in page


def test_the_refused_page_says_the_same_seconds_in_retry_after(
    agent_client, agent_token, fake_connvo
):
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    agent_client.get(path)

    response = agent_client.get(path)

    page = html.unescape(response.content.decode())
    wait = int(page.split('data-wait="')[1].split('"')[0])
    assert response["Retry-After"] == str(wait)
