"""The meeting page's live refresh: the same URL answers htmx with its `metrics` partial, and the
server decides whether and when the page polls again."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import unescape as html_unescape

import pytest
from django.conf import settings as django_settings
from django.conf import settings as settings_module
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEntry, Span, Via
from connvo_admin.outcomes import HANDLING, LiveStatus, LookupFailed
from meetings.connvo import RateLimited
from meetings.live import PollPlan, Shown, plan_after_failure
from tests.conftest import examples

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def detail_url(fake, label: str) -> str:
    return reverse("meetings:detail", args=["dev", fake.meeting_id(label)])


def poll_state(html: str) -> dict:
    """What the rendered poller tells htmx to do next."""
    poller = re.search(r'<div id="live-poller"[^>]*>', html).group(0)
    trigger = re.search(r'hx-trigger="every (\d+)s', poller)
    vals = re.search(r"hx-vals='(\{[^']*\})'", poller)
    vals = json.loads(vals.group(1)) if vals else {}
    if vals:
        # The page sends back the interval it polls at, which is the one in its trigger.
        assert vals["interval"] == int(trigger.group(1))
    return {
        "interval": int(trigger.group(1)) if trigger else None,
        "seen": vals.get("seen"),
        "failures": vals.get("failures"),
        "status": re.search(r'data-status="(\w+)"', poller).group(1),
        "span": vals.get("span"),
    }


def refresh(client, url, **params):
    """A refresh as the page sends it: by default, from a page polling at the normal interval."""
    params.setdefault("interval", django_settings.CONNVO_POLL_INTERVAL)
    return client.get(url, params, **HTMX)


def test_full_page_starts_polling_at_the_configured_interval(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLL_INTERVAL = 7

    response = agent_client.get(detail_url(fake_connvo, "standup"))

    html = response.content.decode()
    assert "<html" in html
    assert poll_state(html) | {"seen": None, "span": None} == {
        "interval": 7,
        "seen": None,
        "failures": 0,
        "status": "live",
        "span": None,
    }
    assert response["Vary"].count("HX-Request") == 1


def test_htmx_request_gets_only_the_fragment(agent_client, agent_token, fake_connvo):
    response = refresh(agent_client, detail_url(fake_connvo, "standup"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="metric-values"' in html and 'hx-swap-oob="innerHTML"' in html
    assert poll_state(html)["status"] == "live"


def test_refresh_is_counted_in_the_pages_span_not_chained(agent_client, agent_token, fake_connvo):
    page = poll_state(agent_client.get(detail_url(fake_connvo, "standup")).content.decode())
    refresh(agent_client, detail_url(fake_connvo, "standup"), span=page["span"])

    # The first look is the one chained entry; the refresh is counted in the page's span.
    assert list(AuditEntry.objects.values_list("via", "calls")) == [(Via.PAGE, 1)]
    span = Span.objects.get()
    assert (span.key, span.via, span.calls, span.sealed_calls) == (
        page["span"],
        Via.REFRESH,
        2,
        1,
    )


def test_unchanged_meeting_answers_204_without_rendering(agent_client, agent_token, fake_connvo):
    url = detail_url(fake_connvo, "standup")
    page = poll_state(agent_client.get(url).content.decode())

    response = refresh(agent_client, url, seen=page["seen"], failures=0, span=page["span"])

    assert response.status_code == 204
    assert response.content == b""
    assert fake_connvo.call_count == 2  # it still asked Connvo
    assert Span.objects.get().calls == 2  # and counted the call


def test_unchanged_meeting_from_a_page_without_its_span_is_redrawn_with_one(
    agent_client, agent_token, fake_connvo
):
    url = detail_url(fake_connvo, "standup")
    page = poll_state(agent_client.get(url).content.decode())

    response = refresh(agent_client, url, seen=page["seen"], failures=0)

    # A page that lost its key (or an older page) gets one, so its next refreshes find it.
    assert response.status_code == 200
    assert poll_state(response.content.decode())["span"] not in ("", None, page["span"])


def test_changed_meeting_is_rendered(agent_client, agent_token, fake_connvo):
    url = detail_url(fake_connvo, "standup")
    seen = poll_state(agent_client.get(url).content.decode())["seen"]
    fake_connvo.update_meeting("standup", participantCount=9)

    response = refresh(agent_client, url, seen=seen, failures=0)

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'data-metric="participants">9<', html)
    assert poll_state(html)["seen"] != seen


def test_a_changed_answer_redraws_the_title_details_and_raw_json_too(
    agent_client, agent_token, fake_connvo
):
    """The page shows all of Connvo's answer, not only its figures: a title or description that
    changes while the page is open changes on it, and its raw JSON is the answer now shown."""
    url = detail_url(fake_connvo, "standup")
    first = agent_client.get(url).content.decode()
    fake_connvo.update_meeting("standup", title="Standup (moved)", description="Now at 10:30")

    html = refresh(agent_client, url, seen=poll_state(first)["seen"], failures=0).content.decode()

    oob = {
        name: re.search(rf'<(\w+) id="{name}" hx-swap-oob="innerHTML">(.*?)</\1>', html, re.S)
        for name in ("meeting-title", "meeting-details", "raw-json")
    }
    assert "Standup (moved)" in oob["meeting-title"].group(2)
    assert "Now at 10:30" in oob["meeting-details"].group(2)
    raw = json.loads(html_unescape(oob["raw-json"].group(2)))
    assert (raw["title"], raw["description"]) == ("Standup (moved)", "Now at 10:30")
    assert 'id="meeting-title" hx-swap-oob' not in first  # the first page has them in place


@pytest.mark.parametrize("state", ["concluded", "cancelled"])
def test_finished_meeting_stops_polling_with_286(agent_client, agent_token, fake_connvo, state):
    fake_connvo.update_meeting("standup", state=state)

    response = refresh(agent_client, detail_url(fake_connvo, "standup"))

    html = response.content.decode()
    assert response.status_code == 286
    assert "hx-trigger" not in html
    assert "live updates have stopped" in html
    assert f"badge--{state}" in html


def test_finished_meeting_page_does_not_poll_at_all(agent_client, agent_token, fake_connvo):
    html = agent_client.get(detail_url(fake_connvo, "retro")).content.decode()

    assert poll_state(html)["interval"] is None
    assert "has concluded" in html


def test_upstream_failure_backs_off_then_recovers(agent_client, agent_token, fake_connvo, settings):
    settings.CONNVO_POLL_INTERVAL = 10
    settings.CONNVO_POLL_MAX_INTERVAL = 300
    url = detail_url(fake_connvo, "standup")
    seen = poll_state(agent_client.get(url).content.decode())["seen"]
    fake_connvo.misbehave("status", status=500)

    intervals = []
    failures = 0
    for _ in range(5):
        response = refresh(agent_client, url, seen=seen, failures=failures)
        assert response.status_code == 200  # htmx swaps it; a 5xx would be ignored
        state = poll_state(response.content.decode())
        intervals.append(state["interval"])
        failures = state["failures"]
        assert state["seen"] == seen  # the last good values stay on the page
        assert 'id="metric-values"' not in response.content.decode()
    assert intervals == [20, 40, 80, 160, 300]  # doubling, up to the cap
    assert "Could not refresh" in response.content.decode()
    assert "Connvo had an internal error" in response.content.decode()

    fake_connvo.reset_behaviour()
    response = refresh(agent_client, url, seen=seen, failures=failures)

    assert response.status_code == 200  # not 204: the page must leave its failing state
    assert poll_state(response.content.decode()) | {"seen": None, "span": None} == {
        "interval": 10,
        "seen": None,
        "failures": 0,
        "status": "live",
        "span": None,
    }


def test_a_refresh_refused_by_the_lookup_limit_waits_until_it_would_pass(
    agent_client, agent_token, fake_connvo, settings, time_machine
):
    settings.CONNVO_POLL_INTERVAL = 10
    settings.CONNVO_LOOKUPS_PER_MINUTE = 1
    time_machine.move_to(datetime.now(UTC), tick=False)  # the sign-in stays fresh
    url = detail_url(fake_connvo, "standup")
    seen = poll_state(agent_client.get(url).content.decode())["seen"]  # opens the minute
    time_machine.shift(5)

    response = refresh(agent_client, url, seen=seen)

    # Not 20 s (the back-off), when the limit lets lookups through again in 55.
    assert poll_state(response.content.decode())["interval"] == 55
    assert 'trying again <span data-retry-in="55">in 55 s</span>' in response.content.decode()


def test_connvos_rate_limit_is_asked_again_no_sooner_than_its_retry_after(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLL_INTERVAL = 10
    url = detail_url(fake_connvo, "standup")
    seen = poll_state(agent_client.get(url).content.decode())["seen"]
    fake_connvo.misbehave("status", status=429, retry_after=30)

    response = refresh(agent_client, url, seen=seen)

    assert poll_state(response.content.decode())["interval"] == 30


@pytest.mark.parametrize(("failures", "retry_after", "interval"), [(0, 30, 30), (2, 30, 80)])
def test_a_failure_that_says_how_long_to_wait_is_not_asked_again_sooner(
    failures, retry_after, interval, settings
):
    settings.CONNVO_POLL_INTERVAL = 10
    settings.CONNVO_POLL_MAX_INTERVAL = 300
    refused = RateLimited("Connvo is limiting.", http_status=429, retry_after=retry_after)

    plan = plan_after_failure(refused, failures=failures, seen="")

    # At least what Connvo asked; a longer back-off stays.
    assert (plan.status, plan.interval) == (LiveStatus.FAILING, interval)


def test_token_expiring_while_polling_shows_a_banner_and_stops(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.misbehave("expired_tokens")

    response = refresh(agent_client, detail_url(fake_connvo, "standup"))

    html = response.content.decode()
    assert response.status_code == 286
    assert "Live updates stopped" in html
    assert reverse("meetings:tokens") + "#deployment-dev" in html


def test_meeting_no_longer_visible_stops_polling(agent_client, agent_token, fake_connvo):
    fake_connvo.remove_participant("standup", "agent")

    response = refresh(agent_client, detail_url(fake_connvo, "standup"))

    assert response.status_code == 286
    assert "participants" in response.content.decode()


def test_expired_session_moves_the_whole_page_to_sign_in(client, fake_connvo):
    url = detail_url(fake_connvo, "standup")

    response = client.get(url, **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('accounts:login')}?next={url}"
    assert fake_connvo.call_count == 0


def test_tampered_poll_state_is_ignored(agent_client, agent_token, fake_connvo):
    response = refresh(
        agent_client, detail_url(fake_connvo, "standup"), seen="<script>", failures="lots"
    )

    assert response.status_code == 200
    assert "<script>" not in response.content.decode()


def test_refresh_after_losing_the_support_role_reloads_the_page(
    agent_client, agent, agent_token, fake_connvo
):
    agent.groups.clear()

    response = refresh(agent_client, detail_url(fake_connvo, "standup"))

    assert response["HX-Refresh"] == "true"
    assert fake_connvo.call_count == 0


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    failures=st.one_of(st.text(max_size=12), st.integers().map(str)),
    seen=st.text(max_size=80),
)
def test_any_refresh_query_gives_a_fragment_never_an_error(
    agent_client, agent_token, fake_connvo, failures, seen
):
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])

    response = agent_client.get(
        url, {"failures": failures, "seen": seen}, headers={"HX-Request": "true"}
    )

    assert response.status_code in {200, 204, 286}
    if response.status_code == 200:
        interval = int(re.search(r'data-interval="(\d+)"', response.content.decode()).group(1))
        assert 1 <= interval <= settings_module.CONNVO_POLL_MAX_INTERVAL


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661\u0662", "\U0001d7d7", "0" * 6])
def test_digits_python_reads_but_int_refuses_are_unknown(digits):
    shown = Shown.from_query({"failures": digits, "interval": digits})

    assert (shown.failures, shown.interval) == (0, None)


@given(failures=st.text(max_size=8), interval=st.text(max_size=8), span=st.text(max_size=40))
def test_what_a_poller_sends_is_read_without_raising(failures, interval, span):
    shown = Shown.from_query({"failures": failures, "interval": interval, "span": span})

    assert 0 <= shown.failures <= 30
    assert shown.interval is None or 0 <= shown.interval < 100_000


# --- Stopped for the agent's token --------------------------------------------------------------

TOKEN_OUTCOMES = [o for o in HANDLING if HANDLING[o].live == LiveStatus.TOKEN]


@pytest.mark.parametrize("outcome", TOKEN_OUTCOMES, ids=str)
def test_the_live_line_stopped_for_a_token_says_the_problem_s_own_next_step(outcome):
    """In the words of the problem's page (its primary-* partial: "Add your token for dev" when
    there is none, not "Update your token"), and as a link: the page's one primary action stays
    the lookup form's."""
    failed = type("Failed", (LookupFailed,), {"outcome": outcome})("It failed.")
    context = {
        "deployment_name": "dev",
        "page_url": "/meetings/dev/m1/",
        "request": RequestFactory().get("/meetings/dev/m1/"),
        "live": PollPlan(LiveStatus.TOKEN, 10, 0),
        "refresh_error": failed,
        "checked_at": timezone.now(),
    }
    step = HANDLING[outcome].next_steps
    primary = render_to_string(f"meetings/meeting_detail.html#primary-{step}", context)

    fragment = render_to_string("meetings/meeting_detail.html#metrics", context)

    words = re.sub(r"<[^>]+>", "", primary).strip()
    link = re.search(rf"<a [^>]*>{re.escape(words)}</a>, then", fragment)
    assert link, f"{words!r} is not the live line's link: {fragment}"
    assert 'class="button' not in link.group(0)
    assert 'href="/tokens/#deployment-dev"' in link.group(0)
