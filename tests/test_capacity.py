"""Overload (connvo_admin/capacity.py): the console stretches the poll interval it hands out as it
gets busier, and answers a live refresh that waited too long for a thread at once with 503 +
Retry-After, before reading its session; pages people open themselves are always served."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from audit import spans
from audit.models import AuditEntry
from connvo_admin.capacity import gauge, poll_interval, refresh_slots, shed_late_refreshes
from connvo_admin.workers import ConsoleWorker

pytestmark = pytest.mark.django_db

LIVE_REFRESH = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TRIGGER": "live-poller"}


@pytest.fixture(autouse=True)
def idle_gauge():
    """The test client has no gunicorn worker: the gauge starts idle, and is left idle."""
    gauge.threads, gauge.waiting, gauge.busy = 4, 0, 0
    gauge._local.ready_at = None
    yield gauge
    gauge.threads, gauge.waiting, gauge.busy = 1, 0, 0
    gauge._local.ready_at = None


def busy(*, requests: int) -> None:
    """As if `requests` more requests were in this process (served or waiting)."""
    gauge.waiting += requests


def waited(seconds: float) -> None:
    """As if the test's own request had waited `seconds` for a thread."""
    gauge._local.ready_at = time.monotonic() - seconds


def detail_url(fake, label: str) -> str:
    return reverse("meetings:detail", args=["dev", fake.meeting_id(label)])


def interval_of(html: str) -> int:
    return int(re.search(r'hx-trigger="every (\d+)s', html).group(1))


def test_the_interval_handed_out_grows_with_load(settings):
    settings.CONNVO_POLL_INTERVAL = 10
    settings.CONNVO_POLL_MAX_INTERVAL = 300
    intervals = []
    for requests in (0, 1, 2, 4, 8, 16, 100):
        gauge.waiting = requests
        intervals.append(poll_interval())

    assert intervals[:3] == [10, 10, 10]  # up to half the threads busy: the normal pace
    assert intervals == sorted(intervals)
    assert intervals[3] > 10
    assert intervals[-1] == 60  # never more than six times the normal interval


def test_the_stretched_interval_stays_within_the_maximum(settings):
    settings.CONNVO_POLL_INTERVAL = 10
    settings.CONNVO_POLL_MAX_INTERVAL = 25
    busy(requests=100)

    assert poll_interval() == 25


def test_a_busy_console_tells_open_pages_to_poll_less_often(
    agent_client, agent_token, fake_connvo, settings
):
    settings.CONNVO_POLL_INTERVAL = 10
    url = detail_url(fake_connvo, "standup")
    page = agent_client.get(url).content.decode()
    seen = re.search(r'"seen": "(\w+)"', page).group(1)
    span = re.search(r'"span": "([\w-]+)"', page).group(1)
    assert interval_of(page) == 10

    busy(requests=8)
    response = agent_client.get(
        url, {"seen": seen, "failures": 0, "interval": 10, "span": span}, **LIVE_REFRESH
    )

    # Nothing changed in the meeting, but the pace did: the page gets its new trigger.
    assert response.status_code == 200
    assert interval_of(response.content.decode()) > 10
    # A page already polling at that pace gets its 204 again.
    again = agent_client.get(
        url,
        {
            "seen": seen,
            "failures": 0,
            "interval": interval_of(response.content.decode()),
            "span": span,
        },
        **LIVE_REFRESH,
    )
    assert again.status_code == 204


def test_a_refresh_past_its_queue_budget_gets_503_with_retry_after(
    agent_client, agent_token, fake_connvo, settings
):
    settings.LIVE_REFRESH_QUEUE_BUDGET = 0.5
    settings.CONNVO_POLL_INTERVAL = 10
    url = detail_url(fake_connvo, "standup")
    calls = fake_connvo.call_count
    busy(requests=8)
    waited(2.0)

    response = agent_client.get(url, {"seen": "", "failures": 0, "interval": 10}, **LIVE_REFRESH)

    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 10
    assert response["Cache-Control"] == "no-store"
    # Refused before anything was asked of Connvo, so nothing to audit.
    assert fake_connvo.call_count == calls
    assert spans.calls_on_record() == calls


def test_a_refresh_within_its_queue_budget_is_served(
    agent_client, agent_token, fake_connvo, settings
):
    # Well within: the test's own request also takes time to reach the middleware, and on a
    # loaded machine that alone took 0.4 s of a 0.5 s budget.
    settings.LIVE_REFRESH_QUEUE_BUDGET = 5
    waited(0.1)

    response = agent_client.get(
        detail_url(fake_connvo, "standup"), {"seen": "", "failures": 0}, **LIVE_REFRESH
    )

    assert response.status_code == 200


def test_pages_people_open_are_served_however_long_they_waited(
    agent_client, agent_token, fake_connvo, settings
):
    settings.LIVE_REFRESH_QUEUE_BUDGET = 0.5
    waited(5.0)

    assert agent_client.get(detail_url(fake_connvo, "standup")).status_code == 200
    assert agent_client.get(reverse("meetings:lookup")).status_code == 200
    assert agent_client.get("/healthz").status_code == 200


class FakeConnection:
    pass


def test_the_worker_counts_requests_waiting_and_being_served(monkeypatch):
    """gunicorn's threaded worker, with its thread pool and request handling stubbed out."""
    seen_inside = {}

    def serve(self, conn):
        seen_inside.update(waiting=gauge.waiting, busy=gauge.busy, waited=gauge.waited())
        return False

    monkeypatch.setattr(ConsoleWorker.__mro__[1], "enqueue_req", lambda self, conn: None)
    monkeypatch.setattr(ConsoleWorker.__mro__[1], "handle", serve)
    worker = ConsoleWorker.__new__(ConsoleWorker)
    first, second = FakeConnection(), FakeConnection()

    worker.enqueue_req(first)
    worker.enqueue_req(second)
    assert (gauge.waiting, gauge.busy) == (2, 0)

    worker.handle(first)
    assert seen_inside["waiting"] == 1
    assert seen_inside["busy"] == 1
    assert seen_inside["waited"] >= 0
    assert (gauge.waiting, gauge.busy) == (1, 0)
    assert gauge.waited() == 0  # outside a request, nothing is being waited for


def test_a_refresh_that_finds_no_free_refresh_slot_within_its_budget_gets_503(
    agent_client, agent_token, fake_connvo, settings
):
    settings.LIVE_REFRESH_QUEUE_BUDGET = 0.05
    slots = refresh_slots()
    taken = 0
    while slots.acquire(blocking=False):  # every slot busy with other refreshes
        taken += 1
    try:
        response = agent_client.get(
            detail_url(fake_connvo, "standup"), {"seen": "", "failures": 0}, **LIVE_REFRESH
        )
        page = agent_client.get(detail_url(fake_connvo, "standup"))
    finally:
        for _ in range(taken):
            slots.release()

    assert taken >= 4
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert page.status_code == 200  # the page itself is not a refresh: always served
    again = agent_client.get(
        detail_url(fake_connvo, "standup"), {"seen": "", "failures": 0}, **LIVE_REFRESH
    )
    assert again.status_code == 200


def call_wsgi(app, **environ):
    started = {}

    def start_response(status, headers):
        started.update(status=status, headers=dict(headers))

    body = b"".join(app({"REQUEST_METHOD": "GET", **environ}, start_response))
    return started.get("status"), started.get("headers", {}), body


def test_a_late_refresh_is_refused_before_django_sees_it(settings):
    """The worker's WSGI wrapper answers a refresh past its budget itself: under overload most
    refreshes are refused, and a refusal through Django's middleware cost as much CPU as the
    work it was refusing."""
    settings.LIVE_REFRESH_QUEUE_BUDGET = 0.5
    settings.CONNVO_POLL_INTERVAL = 10
    reached = []

    def django_app(environ, start_response):
        reached.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"served"]

    app = shed_late_refreshes(django_app)
    waited(2.0)

    status, headers, body = call_wsgi(app, PATH_INFO="/meetings/x/", **LIVE_REFRESH)
    assert status == "503 Service Unavailable"
    assert int(headers["Retry-After"]) >= 10
    assert headers["Cache-Control"] == "no-store"
    assert int(headers["Content-Length"]) == len(body) > 0
    assert reached == []

    # A page a person opened, however long it waited, and a refresh without a poller's
    # headers go on to Django.
    assert call_wsgi(app, PATH_INFO="/meetings/y/")[0] == "200 OK"
    assert call_wsgi(app, PATH_INFO="/meetings/z/", HTTP_HX_REQUEST="true")[0] == "200 OK"
    assert reached == ["/meetings/y/", "/meetings/z/"]

    # A refresh within its budget goes on too.
    waited(0.1)
    assert call_wsgi(app, PATH_INFO="/meetings/x/", **LIVE_REFRESH)[0] == "200 OK"


def test_the_console_worker_puts_the_shedding_around_the_app(monkeypatch):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"served"]

    monkeypatch.setattr(
        ConsoleWorker.__mro__[1], "load_wsgi", lambda self: setattr(self, "wsgi", app)
    )
    worker = ConsoleWorker.__new__(ConsoleWorker)
    worker.load_wsgi()
    waited(60)

    assert call_wsgi(worker.wsgi, PATH_INFO="/m/", **LIVE_REFRESH)[0].startswith("503")
    assert call_wsgi(worker.wsgi, PATH_INFO="/m/")[0] == "200 OK"


def test_a_refresh_lends_its_slot_back_while_it_waits_on_connvo(rf):
    from django.http import HttpResponse

    from connvo_admin.capacity import LoadSheddingMiddleware, waiting_on_upstream

    slots = refresh_slots()
    free = slots._value
    seen = {}

    def view(request):
        seen["working"] = slots._value
        with waiting_on_upstream():
            seen["waiting on Connvo"] = slots._value
        seen["writing the audit entry"] = slots._value
        return HttpResponse()

    refresh = rf.get("/meetings/dev/x/", HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="live-poller")
    LoadSheddingMiddleware(view)(refresh)

    assert seen == {
        "working": free - 1,
        "waiting on Connvo": free,
        "writing the audit entry": free - 1,
    }
    assert slots._value == free
    # Outside a refresh (a page, a command) there is no slot to lend.
    with waiting_on_upstream():
        assert slots._value == free


@pytest.mark.django_db(transaction=True)
def test_refreshes_waiting_on_a_slow_connvo_do_not_hold_the_others_slots(
    agent_client, agent_token, fake_connvo, settings
):
    """Every slot but one is taken; a refresh whose Connvo call takes a second holds the last
    one only until it is waiting on Connvo, so another agent's refresh meanwhile is served, not
    refused for want of a slot."""
    import threading

    settings.LIVE_REFRESH_QUEUE_BUDGET = 0.3
    slots = refresh_slots()
    taken = 0
    while slots._value > 1 and slots.acquire(blocking=False):
        taken += 1
    fake_connvo.misbehave("slow", delay=1.5, times=1)
    url = detail_url(fake_connvo, "standup")
    slow = {}

    def slow_refresh():
        from django.db import connection

        try:
            slow["response"] = agent_client.get(url, {"seen": "", "failures": 0}, **LIVE_REFRESH)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_refresh)
    try:
        thread.start()
        deadline = time.monotonic() + 5
        while fake_connvo.call_count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake_connvo.call_count == 1  # the slow refresh is waiting on Connvo

        other = agent_client.get(url, {"seen": "", "failures": 0}, **LIVE_REFRESH)
        thread.join(10)
    finally:
        for _ in range(taken):
            slots.release()

    assert other.status_code == 200
    assert slow["response"].status_code == 200
    assert fake_connvo.call_count == 2
    # Both counted (each in a span of its own: neither page sent a key), neither chained yet.
    assert spans.calls_on_record() == 2
    assert not AuditEntry.objects.exists()


def test_the_console_worker_hands_the_gil_on_often(monkeypatch):
    """Its main loop (accepting, noticing requests that wait) must not queue for the GIL behind
    the serving threads for Python's default 5 ms at a time (docs/performance.md)."""
    import sys
    from types import SimpleNamespace

    from connvo_admin import workers

    monkeypatch.setattr(ConsoleWorker.__mro__[1], "init_process", lambda self: None)
    worker = ConsoleWorker.__new__(ConsoleWorker)
    worker.cfg = SimpleNamespace(threads=32)
    before = sys.getswitchinterval()
    try:
        worker.init_process()
        assert sys.getswitchinterval() == pytest.approx(workers.SWITCH_INTERVAL)
        assert before > workers.SWITCH_INTERVAL
    finally:
        sys.setswitchinterval(before)
