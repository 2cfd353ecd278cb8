"""How busy this process is, and what the console does about it: it stretches the poll interval
it hands out to open meeting pages, and answers a live refresh that waited too long for a thread
at once with 503 + Retry-After instead of serving it late.

The gauge is fed by the gunicorn worker (connvo_admin/workers.py): a request is `waiting` from the
moment its connection is ready until a thread picks it up, then `busy` until it is answered. It is
per process: each worker sheds and stretches by its own queue, which is what its requests wait in.
Outside that worker (runserver, the test client) nothing waits and the gauge reads idle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from connvo_admin.unavailable import retry_later

# Open pages poll at the normal interval while threads are at most this busy; above it the
# interval grows with the load, so the refreshes the pages invite fall back under it.
COMFORTABLE_LOAD = 0.5
# The interval is stretched in steps (times the normal one), not continuously: a page whose
# interval changes gets the whole fragment instead of a 204, so it should not change often.
STRETCH_STEPS = (1, 2, 4, 6)


class Gauge:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.threads = 1
        self.waiting = 0
        self.busy = 0

    def ready(self) -> float:
        """A request's connection is ready; returns the time it started waiting."""
        with self._lock:
            self.waiting += 1
        return time.monotonic()

    def started(self, ready_at: float | None) -> None:
        """A thread picked up the request that became ready at `ready_at`."""
        with self._lock:
            if ready_at is not None:
                self.waiting -= 1
            self.busy += 1
        self._local.ready_at = ready_at

    def finished(self) -> None:
        with self._lock:
            self.busy -= 1
        self._local.ready_at = None

    def waited(self) -> float:
        """Seconds the current thread's request waited for a thread (0 when not known)."""
        ready_at = getattr(self._local, "ready_at", None)
        return 0.0 if ready_at is None else time.monotonic() - ready_at

    def load(self) -> float:
        """Requests in this process (being served or waiting) per thread."""
        return (self.busy + self.waiting) / self.threads


gauge = Gauge()


def poll_interval() -> int:
    """The poll interval to hand out now: the normal one, stretched while this process is busy."""
    base = settings.CONNVO_POLL_INTERVAL
    wanted = gauge.load() / COMFORTABLE_LOAD
    stretch = next((step for step in STRETCH_STEPS if wanted <= step), STRETCH_STEPS[-1])
    return min(base * stretch, max(base, settings.CONNVO_POLL_MAX_INTERVAL))


def is_live_refresh(request: HttpRequest) -> bool:
    """A meeting page polling in the background (htmx names the element that triggered it)."""
    return (
        request.method == "GET"
        and request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Trigger") == "live-poller"
    )


_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None
# The refresh slot the current thread holds, if any (lent back while it waits on Connvo).
_held = threading.local()


def refresh_slots() -> threading.BoundedSemaphore:
    """Live refreshes one process works on at once: a quarter of its threads (at least 4). A slot
    is held while the refresh uses the CPU and the console's own database, and lent back while
    it waits on Connvo (`waiting_on_upstream`): more at once would only share the same CPU, each
    getting slower (under overload, a served refresh took seconds with half the threads
    allowed), and leave less of it for the pages people open themselves."""
    global _slots
    size = max(4, gauge.threads // 4)
    if _slots is None or _slots[0] != size:
        with _slots_lock:
            if _slots is None or _slots[0] != size:
                _slots = (size, threading.BoundedSemaphore(size))
    return _slots[1]


class LoadSheddingMiddleware:
    """A live refresh gets LIVE_REFRESH_QUEUE_BUDGET seconds to reach a free thread and then one
    of the process's refresh slots; one that cannot is answered at once with 503 and a
    Retry-After the page honours (static/js/console.js), before its session is read: serving it
    late would only make every request behind it later too. Pages people open themselves, and
    health probes, are always served."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_live_refresh(request):
            return self.get_response(request)
        slots = refresh_slots()
        remaining = settings.LIVE_REFRESH_QUEUE_BUDGET - gauge.waited()
        if remaining <= 0 or not slots.acquire(timeout=remaining):
            return too_busy()
        _held.slots = slots
        try:
            return self.get_response(request)
        finally:
            _held.slots = None
            slots.release()


@contextmanager
def waiting_on_upstream() -> Iterator[None]:
    """Around a call that waits on Connvo: a live refresh lends its slot back while it waits, so
    that the slots bound the refreshes using the CPU at once, not the ones waiting on a slow
    Connvo (which would otherwise hold every slot and starve everyone else's refreshes). Taking
    the slot back waits without a budget: the call was made, and its audit entry must be
    written before anything is shown."""
    slots = getattr(_held, "slots", None)
    if slots is None:
        yield
        return
    _held.slots = None
    slots.release()
    try:
        yield
    finally:
        slots.acquire()
        _held.slots = slots


def is_live_refresh_environ(environ: dict) -> bool:
    """`is_live_refresh()` on a WSGI environ, before Django has made a request of it."""
    return (
        environ.get("REQUEST_METHOD") == "GET"
        and environ.get("HTTP_HX_REQUEST") == "true"
        and environ.get("HTTP_HX_TRIGGER") == "live-poller"
    )


def shed_late_refreshes(app: Callable) -> Callable:
    """A WSGI wrapper (the console's gunicorn worker puts it around Django): a live refresh that
    already waited past its budget for a thread is answered 503 + Retry-After here, without
    Django's request, middleware and log line. Under overload most refreshes are these, and the
    cheaper each refusal, the more of the CPU is left for the requests that are served. The
    gunicorn access log still has a line for each. LoadSheddingMiddleware does the rest (the
    refresh slots, and the same check where there is no such worker)."""

    def shedding(environ: dict, start_response: Callable):
        if (
            is_live_refresh_environ(environ)
            and gauge.waited() >= settings.LIVE_REFRESH_QUEUE_BUDGET
        ):
            response = too_busy()
            start_response(
                f"{response.status_code} {response.reason_phrase}",
                [*response.items(), ("Content-Length", str(len(response.content)))],
            )
            return [response.content]
        return app(environ, start_response)

    return shedding


def too_busy() -> HttpResponse:
    return retry_later("The console is busy.", seconds=poll_interval())
