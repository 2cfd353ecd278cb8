"""The console's own lookup limit per staff member (CONNVO_LOOKUPS_PER_MINUTE): pages, live
refreshes and the command line count together; over the limit nothing reaches Connvo, the agent
is told it is the console's limit, and the refusal is audited."""

from __future__ import annotations

import html
import io
import json
import secrets
from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from audit.models import Action, AuditEntry
from connvo_admin import settings as defaults
from meetings import pasted_tokens, ratelimit
from tests.conftest import _user
from tests.production import TEST_REDIS

pytestmark = pytest.mark.django_db

LIMIT = 3
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.CONNVO_LOOKUPS_PER_MINUTE = LIMIT


def test_lookups_over_the_limit_are_refused_before_connvo(agent_client, agent_token, fake_connvo):
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    for _ in range(LIMIT):
        assert agent_client.get(path).status_code == 200

    response = agent_client.get(path)

    assert response.status_code == 429
    page = html.unescape(response.content.decode())
    assert "Too many lookups from your account" in page
    assert f"more than {LIMIT} lookups in the last minute" in page
    assert "this is the console's own limit, not Connvo's" in page
    assert "Close meeting pages you no longer need" in page
    assert "escalate" not in page
    assert fake_connvo.call_count == LIMIT


def test_the_refusal_is_audited(agent_client, agent_token, fake_connvo):
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    for _ in range(LIMIT + 1):
        agent_client.get(path)

    outcomes = list(
        AuditEntry.objects.filter(action=Action.LOOKUP).values_list("outcome", flat=True)
    )
    assert outcomes == ["lookup_limit"] + ["found"] * LIMIT  # newest first


def test_live_refreshes_count_and_back_off(agent_client, agent_token, fake_connvo):
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    agent_client.get(path)
    for _ in range(LIMIT - 1):
        agent_client.get(path, {"failures": 0, "seen": ""}, **HTMX)

    response = agent_client.get(path, {"failures": 0, "seen": ""}, **HTMX)

    # The page keeps its last values and tries again later, more slowly.
    assert response.status_code == 200
    assert "Too many lookups from your account" in response.content.decode()
    assert 'data-status="failing"' in response.content.decode()


def test_each_person_has_their_own_limit(agent_client, agent_token, fake_connvo):
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    for _ in range(LIMIT + 1):
        agent_client.get(path)
    colleague = _user("colleague", "Support")
    pasted_tokens.store_token(
        user=colleague, deployment_name="dev", raw_token=fake_connvo.token_for("agent")
    )
    client = Client()
    client.force_login(colleague)

    assert client.get(path).status_code == 200


def test_the_command_line_counts_too(agent, agent_token, fake_connvo):
    for _ in range(LIMIT):
        ratelimit.count_lookup(user=agent)
    out = io.StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command(
            "connvo_lookup",
            fake_connvo.meeting_id("standup"),
            "--user",
            "agent",
            "--json",
            stdout=out,
        )

    assert exit_.value.code == 1
    assert json.loads(out.getvalue())["error"] == "lookup_limit"


def test_the_limit_starts_again_a_minute_after_the_first_lookup(agent, time_machine):
    time_machine.move_to(datetime(2027, 12, 31, 23, 59, 30, tzinfo=UTC), tick=False)
    for _ in range(LIMIT):
        ratelimit.count_lookup(user=agent)
    with pytest.raises(ratelimit.LookupLimitReached):
        ratelimit.count_lookup(user=agent)

    time_machine.shift(59)
    with pytest.raises(ratelimit.LookupLimitReached):
        ratelimit.count_lookup(user=agent)

    time_machine.shift(2)
    ratelimit.count_lookup(user=agent)


def test_when_the_cache_is_down_lookups_go_on_uncounted(
    agent_client, agent_token, fake_connvo, settings, caplog
):
    """Without its cache the console cannot count, and it keeps serving rather than refuse
    everyone; the outage is logged (and shows on /readyz)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # the discard port: nothing answers
        }
    }
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"

    responses = [agent_client.get(path) for _ in range(LIMIT + 2)]

    assert [response.status_code for response in responses] == [200] * (LIMIT + 2)
    title = fake_connvo.meetings[fake_connvo.meeting_id("standup")].fields["title"]
    assert title in responses[-1].content.decode()
    assert fake_connvo.call_count == LIMIT + 2
    outcomes = AuditEntry.objects.filter(action=Action.LOOKUP).values_list("outcome", flat=True)
    assert list(outcomes) == ["found"] * (LIMIT + 2)
    assert "lookup rate limit not checked: the cache did not answer" in caplog.text


def test_an_open_meeting_page_stays_far_below_the_default_limit():
    refreshes_per_minute = 60 / defaults.CONNVO_POLL_INTERVAL
    open_pages_within_the_limit = defaults.CONNVO_LOOKUPS_PER_MINUTE / refreshes_per_minute
    assert open_pages_within_the_limit >= 5


@pytest.fixture
def redis_cache(settings):
    """The production cache: Redis (DB 5, as tests/production.py), under a prefix of this test's."""
    prefix = f"test-{secrets.token_hex(6)}"
    settings.CACHES = {
        "default": {
            "BACKEND": "connvo_admin.cache.RedisCache",
            "LOCATION": TEST_REDIS,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    yield
    client = ratelimit._redis()
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def test_with_redis_the_limit_is_counted_in_one_window_that_expires(agent, redis_cache):
    for _ in range(LIMIT):
        ratelimit.count_lookup(user=agent)
    with pytest.raises(ratelimit.LookupLimitReached):
        ratelimit.count_lookup(user=agent)

    key = cache.make_and_validate_key(ratelimit._key(agent))
    assert 0 < ratelimit._redis().ttl(key) <= ratelimit.WINDOW_SECONDS
    # The cache API reads the same counter (its prefix and version).
    assert cache.get(ratelimit._key(agent)) == LIMIT + 1
    cache.delete(ratelimit._key(agent))
    ratelimit.count_lookup(user=agent)


def test_with_redis_a_counter_left_without_an_expiry_gets_one(agent, redis_cache):
    # A counter without a TTL would refuse the agent for ever once over the limit.
    key = cache.make_and_validate_key(ratelimit._key(agent))
    ratelimit._redis().set(key, LIMIT - 2)

    ratelimit.count_lookup(user=agent)

    assert cache.get(ratelimit._key(agent)) == LIMIT - 1
    assert 0 < ratelimit._redis().ttl(key) <= ratelimit.WINDOW_SECONDS


@pytest.mark.parametrize("cache_kind", ["locmem", "redis"])
def test_a_counter_in_a_window_of_its_own_length(cache_kind, request, settings):
    """ratelimit.count_in_window also counts a push page's failed streams (FAILURES_KEPT, a
    quarter of an hour): counted in the shared cache, in the window it was given."""
    if cache_kind == "redis":
        request.getfixturevalue("redis_cache")
    cache.delete("failures-of-a-page")

    assert [ratelimit.count_in_window("failures-of-a-page", 900) for _ in range(3)] == [1, 2, 3]
    if cache_kind == "redis":
        ttl = ratelimit._redis().ttl(cache.make_and_validate_key("failures-of-a-page"))
        assert ratelimit.WINDOW_SECONDS < ttl <= 900
    cache.delete("failures-of-a-page")
    assert ratelimit.count_in_window("failures-of-a-page", 900) == 1


def test_the_console_cache_reuses_one_redis_client_and_reads_what_it_wrote(redis_cache):
    from django.core.cache import caches

    backend = caches["default"]
    backend.set("reused", {"a": 1}, 30)

    assert backend.get("reused") == {"a": 1}
    assert backend._cache.get_client(write=True) is backend._cache.get_client(write=False)
    assert backend.get_many(["reused", "missing"]) == {"reused": {"a": 1}}
    backend.delete("reused")
    assert backend.get("reused") is None
