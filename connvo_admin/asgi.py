"""ASGI entry point for the push server: `gunicorn -c gunicorn-push.conf.py` serves it with
uvicorn's worker, for the long-lived Server-Sent Events streams under /live/ only (nginx sends
everything else to the WSGI workers of gunicorn.conf.py; docs/deploy.md). An open stream waits on
the event loop, not in a thread. `make demo` and the push tests serve the whole console from it
on one port (each sync view runs in a thread of its own)."""

import asyncio
import os
import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")


class OpeningsAtOnce:
    """At most `limit` streams (requests under `streams`) of one worker before their answer's
    first bytes, the rest waiting their turn. That part of a request reads the session and the
    user on a database connection of its thread's (below; a stream's own database work is bounded
    by CONNVO_PUSH_DATABASE_THREADS), and a stream closes that connection before its first bytes.
    So when every page of a restarted push server reconnects at once, a worker opens `limit` such
    connections, not one per page, and a reconnect storm cannot exhaust PostgreSQL's
    max_connections. Other requests (`make demo` serves every page here) pass.

    A stream's thread-sensitive work (Django's signals and middleware, the session and the user
    read, the connection closed; asgiref's `sync_to_async`) runs on one of `limit` threads: each
    opening stream has one to itself, and hands it on with its turn, keeping it for the little
    work at its end (which then waits for the next opening's calls on that thread, one at a time).
    Django's own default, a thread for each request that lives as long as the request, would keep
    a thread idle beside every open stream: a thousand open pages, a thousand threads."""

    def __init__(self, app, *, limit: int, streams: str) -> None:
        self.app = app
        self.limit = limit
        self.streams = streams
        # One gate and its threads per event loop (a worker has one; tests may run several, one
        # after the other).
        self._gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _gate(self) -> tuple[asyncio.Semaphore, list[ThreadPoolExecutor]]:
        """The loop's turns, and the threads free to take with one (as many)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            threads = [
                # One call at a time on one thread, as a ThreadSensitiveContext's executor must.
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"push-stream-{number}")
                for number in range(self.limit)
            ]
            gate = self._gates[loop] = (asyncio.Semaphore(self.limit), threads)
        return gate

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.streams):
            await self.app(scope, receive, send)
            return
        gate, free = self._gate()
        await gate.acquire()
        thread = free.pop()  # there is one for every turn
        holding = True

        def let_go() -> None:
            nonlocal holding
            if holding:
                holding = False
                free.append(thread)
                gate.release()

        async def sending(message) -> None:
            if message["type"] == "http.response.body":
                let_go()
            await send(message)

        try:
            # Django's ASGI handler enters a ThreadSensitiveContext of its own per request; this
            # one, entered first and given its executor, is the one its sync work then uses.
            async with ThreadSensitiveContext(executor=thread):
                await self.app(scope, receive, sending)
        finally:
            let_go()


def with_openings_at_once(app):
    """`app` behind OpeningsAtOnce as the push server runs it: CONNVO_PUSH_DATABASE_THREADS
    streams of the console's push URLs at a time. Django must be set up."""
    from django.conf import settings

    from meetings.urls import PUSH_STREAMS

    return OpeningsAtOnce(
        app, limit=settings.CONNVO_PUSH_DATABASE_THREADS, streams=f"/{PUSH_STREAMS}"
    )


application = with_openings_at_once(get_asgi_application())  # which sets Django up first
