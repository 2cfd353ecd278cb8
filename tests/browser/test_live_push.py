"""The meeting page live by push in a real browser: a change at the fake shows on the page through
the page's stream and the console's subscription to the fake's sync WebSocket; when that WebSocket
drops and cannot be opened again, the page says it polls and does; once it can, it is pushed again.

The console is served from its ASGI entry under uvicorn (pytest-django's live server is WSGI,
which cannot hold a stream open), on loopback, in this process: its settings are the test's. The
pages poll every 60 s here, so a change that shows within the wait came by push."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.handlers.asgi import ASGIHandler
from playwright.sync_api import Page, expect

from connvo_admin.asgi import with_openings_at_once
from tests.conftest import PASSWORD
from tests.production import free_port
from tests.push_streams import relay_in_a_thread

pytestmark = pytest.mark.django_db(transaction=True)

POLL_INTERVAL = 60


@dataclass
class PushServer:
    url: str


@pytest.fixture
def push_server(request, django_db_setup, settings, tmp_path) -> Iterator[PushServer]:
    """The whole console (pages, static files, push streams) under uvicorn on a loopback port;
    recording pushed answers itself, or (`relay` as the fixture's parameter) through a push relay
    as production does (meetings/relay.py)."""
    settings.CONNVO_PUSH = True
    settings.CONNVO_POLL_INTERVAL = POLL_INTERVAL
    if getattr(request, "param", "") == "relay":
        settings.CONNVO_PUSH_RELAY = str(tmp_path / "relay.sock")
        relayed = relay_in_a_thread(settings.CONNVO_PUSH_RELAY)
    else:
        relayed = contextlib.nullcontext()
    with relayed:
        yield from _served()


def _served() -> Iterator[PushServer]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            # As the push server serves it (connvo_admin/asgi.py), static files added.
            with_openings_at_once(ASGIStaticFilesHandler(ASGIHandler())),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, name="push-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield PushServer(url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def pushed_page(push_server, page: Page, agent, agent_token, fake_connvo):
    # The server first, so that it stops last, once the page and its stream are gone.
    page.goto(f"{push_server.url}/accounts/login/")
    page.get_by_label("Username").fill("agent")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    def open_meeting(label: str) -> Page:
        page.goto(f"{push_server.url}/meetings/dev/{fake_connvo.meeting_id(label)}/")
        page.evaluate("window.__notReloaded = true")
        return page

    return open_meeting


@pytest.mark.parametrize("push_server", ["worker", "relay"], indirect=True)
def test_a_change_is_pushed_to_the_page_and_again_after_the_websocket_drops(
    push_server, pushed_page, fake_connvo, screenshot
):
    page = pushed_page("standup")
    poller = page.locator("#live-poller")
    participants = page.locator('[data-metric="participants"]')
    expect(participants).to_have_text("5")
    # The stream's first fragment puts the page on push.
    expect(poller).to_have_attribute("data-mode", "push")
    expect(poller.locator(".live__mode")).to_have_text("Live")
    expect(poller).not_to_have_attribute("hx-trigger", f"every {POLL_INTERVAL}s, refresh-now")

    fake_connvo.update_meeting("standup", participantCount=42)

    expect(participants).to_have_text("42")
    expect(participants).to_have_class("is-changed")
    screenshot("60-meeting-live-by-push")

    # The WebSocket drops and cannot be opened again: the page says it polls.
    fake_connvo.misbehave("sync_refuse")
    fake_connvo.drop_sync_connections()
    expect(poller).to_have_attribute("data-mode", "poll")
    expect(poller.locator(".live__mode")).to_have_text(f"Live (polling every {POLL_INTERVAL} s)")
    expect(poller).to_have_attribute("hx-trigger", f"every {POLL_INTERVAL}s, refresh-now")
    screenshot("61-meeting-live-polling-fallback")

    # Once it can, the page is pushed again, and the next change shows.
    fake_connvo.reset_behaviour()
    expect(poller).to_have_attribute("data-mode", "push", timeout=20_000)
    fake_connvo.update_meeting("standup", participantCount=43)
    expect(participants).to_have_text("43")
    assert page.evaluate("window.__notReloaded") is True


def test_a_drift_pushed_to_an_open_page_brings_its_notice(pushed_page, fake_connvo, screenshot):
    page = pushed_page("standup")
    expect(page.locator("#live-poller")).to_have_attribute("data-mode", "push")

    fake_connvo.update_meeting("standup", state="archived")

    notice = page.locator("#drift-notice [data-drift]")
    expect(notice).to_contain_text("does not fully know yet")
    expect(notice).to_contain_text("archived")
    screenshot("62-meeting-drift-pushed")


def test_a_new_title_and_description_are_pushed_to_the_whole_page(pushed_page, fake_connvo):
    page = pushed_page("standup")
    expect(page.locator("#live-poller")).to_have_attribute("data-mode", "push")

    fake_connvo.update_meeting("standup", title="Standup (moved)", description="Now at 10:30")

    expect(page.locator("#meeting-title")).to_have_text("Standup (moved)")
    expect(page.locator("#meeting-details")).to_contain_text("Now at 10:30")
    expect(page.locator("#raw-json")).to_contain_text('"description": "Now at 10:30"')
    expect(page).to_have_title("Standup (moved) · Connvo Support Console")
    expect(page.locator("#live-poller")).to_have_attribute("data-mode", "push")


def test_an_ended_meeting_stops_the_stream_and_says_so(pushed_page, fake_connvo):
    page = pushed_page("standup")
    poller = page.locator("#live-poller")
    expect(poller).to_have_attribute("data-mode", "push")

    fake_connvo.update_meeting("standup", state="concluded")

    expect(poller).to_contain_text("live updates have stopped")
    expect(poller).not_to_have_attribute("hx-trigger", re.compile(".*"))


def test_a_change_is_pushed_to_its_row_of_the_table_and_the_table_falls_back_to_polling(
    push_server, pushed_page, fake_connvo, screenshot
):
    page = pushed_page("standup")  # signed in
    ids = ",".join(fake_connvo.meeting_id(label) for label in ("standup", "planning", "retro"))
    page.goto(f"{push_server.url}/table/dev/?ids={ids}")
    page.evaluate("window.__notReloaded = true")
    poller = page.locator("#live-poller")
    planning = page.locator("tr", has_text=fake_connvo.meeting_id("planning"))
    expect(planning.locator('[data-cell="participants"]')).to_have_text("4")
    # The stream's first rows put the table on push.
    expect(poller).to_have_attribute("data-mode", "push")
    expect(poller.locator(".live__mode")).to_have_text("Live")

    fake_connvo.update_meeting("planning", participantCount=44)

    expect(planning.locator('[data-cell="participants"]')).to_have_text("44")
    expect(planning.locator('[data-cell="participants"]')).to_have_class("num is-changed")
    screenshot("62-table-live-by-push")

    # The WebSocket drops and cannot be opened again: the table says it polls.
    fake_connvo.misbehave("sync_refuse")
    fake_connvo.drop_sync_connections()
    expect(poller).to_have_attribute("data-mode", "poll")
    expect(poller.locator(".live__mode")).to_have_text(re.compile(r"Live \(polling every \d+ s\)"))
    expect(poller).to_have_attribute("hx-trigger", re.compile(r"every \d+s, refresh-now"))
    # And why, in the stream's last words (push.why_polling).
    expect(poller.locator(".js-push-note")).to_have_text(
        re.compile(
            r"^ Live updates from Connvo \(dev\) stopped: .* at regular intervals instead\.$"
        )
    )
    screenshot("63-table-live-polling-fallback")

    # Once it can, the table is pushed again, and the next change shows in its row.
    fake_connvo.reset_behaviour()
    expect(poller).to_have_attribute("data-mode", "push", timeout=20_000)
    expect(poller.locator(".js-push-note")).to_have_count(0)
    fake_connvo.update_meeting("planning", participantCount=45)
    expect(planning.locator('[data-cell="participants"]')).to_have_text("45")
    assert page.evaluate("window.__notReloaded") is True


def test_a_burst_of_changes_ends_on_the_last_value(pushed_page, fake_connvo):
    """Changes made one right after the other reach the page as events a few milliseconds apart:
    each is taken, none is lost while the swap before it settles, and the page ends on the last."""
    page = pushed_page("standup")
    participants = page.locator('[data-metric="participants"]')
    expect(page.locator("#live-poller")).to_have_attribute("data-mode", "push")

    for count in range(50, 60):
        fake_connvo.update_meeting("standup", participantCount=count)

    expect(participants).to_have_text("59", timeout=3000)
    expect(page.locator("#live-poller")).to_have_count(1)
    expect(page.locator("#live-poller")).to_have_attribute("data-mode", "push")


def test_a_burst_of_changes_to_a_table_ends_on_each_rows_last_value(
    push_server, pushed_page, page, fake_connvo
):
    pushed_page("standup")  # signed in
    ids = ",".join(fake_connvo.meeting_id(label) for label in ("standup", "planning"))
    page.goto(f"{push_server.url}/table/dev/?ids={ids}")
    expect(page.locator("#live-poller")).to_have_attribute("data-mode", "push")

    for count in range(60, 70):
        fake_connvo.update_meeting("planning", participantCount=count)
        fake_connvo.update_meeting("standup", participantCount=count + 100)

    for label, last in (("planning", "69"), ("standup", "169")):
        row = page.locator("tr", has_text=fake_connvo.meeting_id(label))
        expect(row.locator('[data-cell="participants"]')).to_have_text(last, timeout=3000)
    expect(page.locator("#live-poller")).to_have_count(1)
    expect(page.locator("#live-poller")).to_have_attribute("data-mode", "push")
