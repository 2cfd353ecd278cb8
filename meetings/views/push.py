"""Live values pushed (issue #24): a meeting page's Server-Sent Events stream, served under /live/
by the push server (connvo_admin/asgi.py under gunicorn-push.conf.py). Each answer Connvo pushes
on the agent's subscription (meetings/sync.py) is put on record in the page's span first
(lookups.record_pushed), then sent as the same `#metrics` fragment a polling refresh gets, with
polling off. When push fails the stream says so and ends; the page polls until it can reconnect
(static/js/console.js)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connection
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.services import Origin
from audit.spans import usable_key
from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id
from connvo_admin.outcomes import LookupFailed

from .. import connvo, credentials, sync
from ..deployments import Deployment, deployments
from ..live import PollPlan, plan_after_failure, plan_after_success, push_enabled
from ..lookups import AuditUnavailable, record_pushed
from .access import agent_view, asks_before_looking_up

FRAGMENT = "meetings/meeting_detail.html#metrics"
# The events the page listens for: a new fragment, the end of the meeting's updates (the page's
# `sse-close`), and "push failed, poll" (static/js/console.js).
METRICS, END, FALLBACK = "metrics", "end", "fallback"
# Seconds within which a page whose stream ended tries push again.
RECONNECT_WITHIN = 5

# Every stream's database work (the agent's token, recording each pushed answer before it is sent)
# runs in these few threads, shared by all the worker's streams, each keeping its connection for
# CONN_MAX_AGE: a thousand open pages, or a change reaching two hundred of them at once, use at
# most CONNVO_PUSH_DATABASE_THREADS connections per push worker, and no thread waits with a
# stream (Django's default, a thread per request for its `sync_to_async` calls, held one per open
# stream, and a fresh connection per answer exhausted PostgreSQL's: docs/performance.md, #24).
_database_work = ThreadPoolExecutor(
    max_workers=settings.CONNVO_PUSH_DATABASE_THREADS, thread_name_prefix="push-database"
)


def _in_database_thread(function):
    """`function` as a coroutine run in one of the push worker's database threads."""

    def job(*args, **kwargs):
        # As Django does around a request: a connection past CONN_MAX_AGE, or broken, is replaced.
        close_old_connections()
        return function(*args, **kwargs)

    return sync_to_async(job, thread_sensitive=False, executor=_database_work)


def _refuse_cross_site(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Another site cannot open a subscription in the agent's name (each answer is recorded as
    theirs); there is no page to confirm it on, so the answer is a plain refusal."""
    return HttpResponse(
        "Live updates are only sent to the console's own pages.",
        status=403,
        content_type="text/plain; charset=utf-8",
    )


@require_GET
@agent_view
@asks_before_looking_up(_refuse_cross_site)
async def meeting_stream(request: HttpRequest, deployment_name: str, meeting_id: str):
    """The stream an open meeting page subscribes to (`sse-connect`); `?span=` is the page's span
    key, which its pushed answers are counted in."""
    deployment = deployments().get(deployment_name)
    # Only the push server holds a stream open: a WSGI worker would buffer it whole.
    if deployment is None or not push_enabled(deployment.name):
        raise Http404("Live updates are not pushed for this deployment.")
    if not isinstance(request, ASGIRequest):
        raise Http404("Live updates are served by the push server (docs/deploy.md).")
    try:
        meeting_id = parse_meeting_id(meeting_id)
    except InvalidMeetingId:
        raise Http404("Not a meeting ID.") from None
    origin = await _in_database_thread(Origin.from_request)(request)
    # The guards above read the session and the user in this request's own thread, which lives as
    # long as the stream: its connection must not wait there with it.
    await sync_to_async(_let_go_of_the_database)()
    page = _Page(
        request=request,
        origin=origin,
        deployment=deployment,
        meeting_id=meeting_id,
        span=usable_key(request.GET.get("span", "")),
    )
    response = StreamingHttpResponse(page.events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    # nginx passes each event on at once instead of buffering the stream (docs/deploy.md).
    response["X-Accel-Buffering"] = "no"
    return response


class _Page:
    """One open page's stream: its subscription, what it shows, the span it is counted in."""

    def __init__(
        self,
        *,
        request: HttpRequest,
        origin: Origin,
        deployment: Deployment,
        meeting_id: str,
        span: str,
    ) -> None:
        self.request = request
        self.origin = origin
        self.deployment = deployment
        self.meeting_id = meeting_id
        self.span = span
        self.shown = ""  # the fingerprint of the fragment last sent ("" before the first)
        self.page_url = reverse(
            "meetings:detail",
            kwargs={"deployment_name": deployment.name, "meeting_id": meeting_id},
        )

    async def events(self) -> AsyncIterator[str]:
        yield f"retry: {_reconnect_after()}\n\n"
        answers = aiter(
            sync.watch(
                deployment=self.deployment,
                token=self.token,
                meeting_id=self.meeting_id,
                user_key=str(self.origin.user.pk),
            )
        )
        waiting: asyncio.Future | None = None
        try:
            while True:
                if waiting is None:
                    waiting = asyncio.ensure_future(anext(answers))
                done, _ = await asyncio.wait({waiting}, timeout=settings.CONNVO_PUSH_HEARTBEAT)
                if not done:
                    # A comment: nothing for the page, but proxies see the stream is alive.
                    yield ": still live\n\n"
                    continue
                step, waiting = waiting, None
                try:
                    result = step.result()
                except StopAsyncIteration:
                    return  # the meeting ended: its last fragment has been sent
                plan, fragment = await _in_database_thread(self._record_and_render)(result)
                if fragment:
                    yield _event(METRICS, fragment)
                if not plan.polling:
                    yield _event(END, plan.status)
                    return
        except (sync.PushUnavailable, AuditUnavailable, LookupFailed):
            # The WebSocket failed, or a pushed answer could not be recorded (so it must not be
            # shown), or the agent's token is no longer usable: the page polls, and its refresh
            # says what is wrong, and records it, as it always did.
            yield _event(FALLBACK, "polling")
        finally:
            if waiting is not None:
                waiting.cancel()
                with contextlib.suppress(BaseException):
                    await waiting
            await answers.aclose()

    async def token(self) -> str:
        """The agent's access token, renewed through WorkOS when due (as for a lookup)."""
        return await _in_database_thread(self._token)()

    def _token(self) -> str:
        return credentials.access_token_for(
            user=self.origin.user, deployment_name=self.deployment.name, origin=self.origin
        )

    def _record_and_render(self, result: connvo.Lookup | LookupFailed) -> tuple[PollPlan, str]:
        """Record the pushed answer (raising AuditUnavailable when it cannot be), then the
        fragment to send: "" when the page already shows it."""
        answer = record_pushed(
            origin=self.origin,
            deployment=self.deployment,
            meeting_id=self.meeting_id,
            result=result,
            span=self.span,
            polls_every=settings.CONNVO_POLL_INTERVAL,
        )
        self.span = answer.span or self.span
        context = {
            "deployment": self.deployment,
            "deployment_name": self.deployment.name,
            "meeting_id": self.meeting_id,
            "checked_at": timezone.now(),
            "span": self.span,
            "pushed": True,
            "page_url": self.page_url,
        }
        if answer.error is not None:
            plan = plan_after_failure(answer.error, failures=0, seen=self.shown)
            context |= {"live": plan, "refresh_error": answer.error}
            shown = f"error:{answer.error.outcome}"
        else:
            plan = plan_after_success(answer.meeting)
            context |= {"live": plan, "meeting": answer.meeting}
            shown = plan.fingerprint
        if shown == self.shown and plan.polling:
            return plan, ""
        self.shown = shown
        return plan, render_to_string(FRAGMENT, context, request=self.request)


def _reconnect_after() -> int:
    """Milliseconds the browser waits before reconnecting once the stream ended (push failed; the
    page polls meanwhile): a second or a few, spread so that the pages of a restarted push server
    do not all come back at once, and never more than one poll interval."""
    longest = min(settings.CONNVO_POLL_INTERVAL, RECONNECT_WITHIN) * 1000
    return secrets.SystemRandom().randint(min(1000, longest), longest)


def _let_go_of_the_database() -> None:
    """Close this thread's connection (not inside a transaction: a test's)."""
    if not connection.in_atomic_block:
        connection.close()


def _event(name: str, data: str) -> str:
    """One Server-Sent Event; each line of `data` is a `data:` line of its own."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"
