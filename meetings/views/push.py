"""Live values pushed (issue #24): the Server-Sent Events streams of the pages that are live by
push, served under /live/ by the push server (connvo_admin/asgi.py under gunicorn-push.conf.py):
a meeting page's, which sends its `#metrics` fragment, and a triage table's or the watch list's,
one stream per page carrying all its rows, each sent as the row its polling refresh draws.

Each answer Connvo pushes on the agent's subscriptions (meetings/sync.py) is put on record in the
page's span first, by the host's push relay (meetings/relay.py), then drawn here and sent, with
polling off. Opening a stream counts against the agent's lookup limit, one lookup per meeting it
subscribes to (as a first look does); the answers pushed afterwards do not (Connvo sent them
unasked). While a stream is open its spans are held open, so a page that hears nothing for a
while is not taken for a closed one; when it ends (closed, fallen back to polling, every meeting
ended, its worker killed) they are sealed. When push fails the stream says so and ends; the page
polls until it can reconnect (static/js/console.js)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import sessions
from audit.models import Via
from audit.services import Origin
from audit.spans import usable_key
from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id
from connvo_admin.outcomes import LiveStatus, LookupFailed

from .. import relay, sync, triage
from ..deployments import Deployment, deployments
from ..forms import TableForm, WatchListForm
from ..live import PollPlan, plan_after_failure, plan_after_success, push_enabled
from ..lookups import Answer, AuditUnavailable, Wanted
from ..models import WatchedMeeting
from ..ratelimit import WINDOW_SECONDS, count_in_window
from .access import LOOKUP_PERMISSION, agent_view, asks_before_looking_up
from .tables import filter_words, table_url, watch_list_context, watch_list_key, watching_url

logger = logging.getLogger(__name__)

FRAGMENT = "meetings/meeting_detail.html#metrics"
TABLE_FRAGMENT = "meetings/table.html#refresh"
# The events a page listens for: a new fragment (a meeting page's `metrics`, a table's `rows`),
# the end of its updates (the page's `sse-close`), and "push failed, poll" (static/js/console.js).
METRICS, ROWS, END, FALLBACK = "metrics", "rows", "end", "fallback"
# Seconds within which a page whose stream ended tries push again.
RECONNECT_WITHIN = 5
# While a page's streams keep failing (Connvo's WebSocket refused, say), each attempt counts its
# meetings against the agent's lookup limit: the page tries again after twice as long each time,
# up to this many seconds (longer for a page of many meetings: its attempts then take at most
# half the limit), and as soon as a stream brings an answer, within RECONNECT_WITHIN again.
RECONNECT_AT_MOST = 60
# Seconds a page's count of failed streams in a row is kept.
FAILURES_KEPT = 15 * 60
# Seconds between holds of an open stream's spans (at the latest: a heartbeat later).
HOLD_OPEN_EVERY = 60
# Seconds between checks that the agent is still signed in (at the latest: a heartbeat later).
# A request's own check was made once, when the stream opened; the stream outlives it.
SIGN_IN_CHECKED_EVERY = 60

# A stream's own database work (who is asking, their watch list, drawing what they are sent) runs
# in the process's few push database threads (meetings/relay.py), as its recording does.
_in_database_thread = relay.in_database_thread


def _refuse_cross_site(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Another site cannot open a subscription in the agent's name (each answer is recorded as
    theirs); there is no page to confirm it on, so the answer is a plain refusal."""
    return HttpResponse(
        "Live updates are only sent to the console's own pages.",
        status=403,
        content_type="text/plain; charset=utf-8",
    )


def _pushed_here(request: HttpRequest, names: Sequence[str]) -> None:
    """Raise 404 unless every deployment named pushes, and this is the push server."""
    for name in names:
        if name not in deployments() or not push_enabled(name):
            raise Http404("Live updates are not pushed for this deployment.")
    # Only the push server holds a stream open: a WSGI worker would buffer it whole.
    if not isinstance(request, ASGIRequest):
        raise Http404("Live updates are served by the push server (docs/deploy.md).")


def _respond(stream: _Stream) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream.events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    # nginx passes each event on at once instead of buffering the stream (docs/deploy.md).
    response["X-Accel-Buffering"] = "no"
    return response


@require_GET
@agent_view
@asks_before_looking_up(_refuse_cross_site)
async def meeting_stream(request: HttpRequest, deployment_name: str, meeting_id: str):
    """The stream an open meeting page subscribes to (`sse-connect`); `?span=` is the page's span
    key, which its pushed answers are counted in."""
    _pushed_here(request, [deployment_name])
    try:
        meeting_id = parse_meeting_id(meeting_id)
    except InvalidMeetingId:
        raise Http404("Not a meeting ID.") from None
    origin = await _in_database_thread(Origin.from_request)(request)
    return _respond(
        _Page(
            request=request,
            origin=origin,
            deployment=deployments()[deployment_name],
            meeting_id=meeting_id,
            span=usable_key(request.GET.get("span", "")),
        )
    )


@require_GET
@agent_view
@asks_before_looking_up(_refuse_cross_site)
async def table_stream(request: HttpRequest, deployment_name: str):
    """The stream of an open triage table: its address's meetings (`ids`, `show`), and what its
    rows show (`done`, `known`, as its poller sends them) when it was drawn."""
    _pushed_here(request, [deployment_name])
    form = TableForm(request.GET)
    if not form.is_valid():
        raise Http404("Not a table's address.")
    found, sort, show = (form.cleaned_data[k] for k in ("ids", "sort", "show"))
    origin = await _in_database_thread(Origin.from_request)(request)
    return _respond(
        _Table(
            request=request,
            origin=origin,
            span=usable_key(request.GET.get("span", "")),
            wanted=[Wanted(deployment_name, meeting_id) for meeting_id in found.ids],
            page_url=table_url(deployment_name, found.ids, sort=sort, show=show),
            show=show,
            context={
                "deployment_name": deployment_name,
                **filter_words(deployment_name, found.ids, sort=sort, show=show),
            },
        )
    )


@require_GET
@agent_view
@asks_before_looking_up(_refuse_cross_site)
async def watching_stream(request: HttpRequest):
    """The stream of the agent's open watch list; `list` is the list the page shows."""
    origin = await _in_database_thread(Origin.from_request)(request)
    pins = await _in_database_thread(list)(WatchedMeeting.objects.filter(user=origin.user))
    _pushed_here(request, sorted({pin.deployment for pin in pins}))
    key = watch_list_key(pins)
    sort_form = WatchListForm(request.GET)
    sort = sort_form.cleaned_data["sort"] if sort_form.is_valid() else ""
    return _respond(
        _Table(
            request=request,
            origin=origin,
            span=usable_key(request.GET.get("span", "")),
            wanted=[Wanted(pin.deployment, pin.meeting_id) for pin in pins],
            page_url=watching_url(sort=sort),
            # Watched or unwatched elsewhere since the page was drawn: its rows no longer line
            # up, and its polling refresh reloads it.
            outdated=request.GET.get("list") != key,
            context=watch_list_context(key),
        )
    )


class _Stream:
    """One open page's stream: the meetings it follows through the push relay (meetings/relay.py),
    which records each answer, and what it draws of them. A kind of page says what it follows
    (`followed`, and `via` its answers are recorded as) and what it sends for the recorded
    answers (`_render`)."""

    via: Via

    def __init__(self, *, request: HttpRequest, origin: Origin, span: str) -> None:
        self.request = request
        self.origin = origin
        self.span = span
        self.meetings = 0  # how many meetings the stream follows
        self.answered = False  # whether it has brought the page an answer
        # The agent's time zone, as the middleware set it for the view (meetings/middleware.py):
        # the events are drawn after the response left the middleware, which then reset it.
        self.zone = timezone.get_current_timezone()

    # What a kind of page says.
    def followed(self) -> list[tuple[int, str, str]]:
        """The meetings the stream follows: (the page's index for it, deployment, meeting id)."""
        raise NotImplementedError

    def _render(self, answers: list[tuple[int, Answer]]) -> tuple[list[str], bool]:
        """The events to send for answers already on record, and whether the stream goes on."""
        raise NotImplementedError

    async def events(self) -> AsyncIterator[str]:
        # Here, not in the view: the middleware's answer (the session saved) came after the view.
        # Before the first bytes: the push server lets the next stream open once they are sent
        # (connvo_admin/asgi.py).
        await sync_to_async(_close_request_connection)()
        yield f"retry: {_reconnect_after()}\n\n"
        answers: AsyncIterator | None = None
        waiting: asyncio.Future | None = None
        try:
            followed = self.followed()
            self.meetings = len(followed)
            answers = aiter(
                relay.follow(
                    relay.Following.of(
                        self.origin,
                        span=self.span,
                        via=self.via.value,
                        meetings=tuple(followed),
                        hold_every=max(HOLD_OPEN_EVERY, settings.CONNVO_PUSH_HEARTBEAT),
                    )
                )
            )
            sign_in_checked = time.monotonic()
            while True:
                if waiting is None:
                    waiting = asyncio.ensure_future(anext(answers))
                done, _ = await asyncio.wait({waiting}, timeout=settings.CONNVO_PUSH_HEARTBEAT)
                if time.monotonic() - sign_in_checked >= SIGN_IN_CHECKED_EVERY:
                    sign_in_checked = time.monotonic()
                    if not await _in_database_thread(self._still_signed_in)():
                        # Signed out, timed out, deactivated, out of Support: nothing more is
                        # sent. The page's refresh then meets the sign-in's end (or the refusal)
                        # as a polling page's does, and the page says why.
                        yield _event(FALLBACK, "")
                        return
                if not done:
                    # A comment: nothing for the page, but proxies see the stream is alive.
                    yield ": still live\n\n"
                    continue
                step, waiting = waiting, None
                try:
                    batch = step.result()
                except StopAsyncIteration:
                    return  # every meeting ended: the last fragment has been sent
                events, going_on = await _in_database_thread(self._drawn)(batch)
                if not self.answered:
                    self.answered = True
                    await _in_database_thread(self._failures_forgotten)()
                # One after the other, however close: the page takes them all on #live-stream,
                # which no swap replaces (templates/meetings/meeting_detail.html).
                for event in events:
                    yield event
                if not going_on:
                    return
        except (sync.PushUnavailable, AuditUnavailable, LookupFailed) as failure:
            # The WebSocket (or the push relay) failed, or a pushed answer could not be recorded
            # (so it must not be shown), or the agent's token is no longer usable, or opening the
            # stream would go over the agent's lookup limit: the page polls, and its refresh says
            # what is wrong, and records it, as it always did; its live line says why it is not
            # pushed. It tries push again later, the later the more often it failed in a row.
            failures = await _in_database_thread(self._failure_counted)()
            yield f"retry: {_reconnect_after(failures, self.meetings)}\n\n"
            yield _event(FALLBACK, why_polling(failure))
        finally:
            if answers is not None:
                # The page is gone: what Connvo sent meanwhile is still recorded (the step under
                # way, then the rest), then the subscriptions end and the page's spans are sealed.
                await relay.close_following(answers, waiting)

    def _drawn(self, answers: list[tuple[int, Answer]]) -> tuple[list[str], bool]:
        with timezone.override(self.zone):
            return self._render(answers)

    def _still_signed_in(self) -> bool:
        # And still allowed to look meetings up: a polling page's next refresh is refused once
        # the agent leaves the Support group; a pushed page must stop sending as soon.
        return sessions.still_signed_in(
            self.request.session,
            self.origin.user.pk,
            now=time.time(),
            permission=LOOKUP_PERMISSION,
        )

    def _failures_key(self) -> str:
        return f"push-failures:{self.origin.user.pk}:{self.span or '-'}"

    def _failure_counted(self) -> int:
        """One more failed stream of the page in a row; how many now (1 when the cache does
        not answer: the page then tries again soon, as after a first failure)."""
        try:
            return count_in_window(self._failures_key(), FAILURES_KEPT)
        except Exception:
            logger.exception("the failed streams of %s's page could not be counted", self.who)
            return 1

    def _failures_forgotten(self) -> None:
        """The stream brought an answer: the page's next failure is a first one again."""
        try:
            cache.delete(self._failures_key())
        except Exception:
            logger.exception("the failed streams of %s's page could not be forgotten", self.who)

    @property
    def who(self) -> str:
        return self.origin.username


class _Page(_Stream):
    """A meeting page's stream: one subscription, and what the page shows."""

    via = Via.REFRESH

    def __init__(self, *, deployment: Deployment, meeting_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.meeting_id = meeting_id
        self.shown = ""  # the fingerprint of the fragment last sent ("" before the first)
        self.page_url = reverse(
            "meetings:detail",
            kwargs={"deployment_name": deployment.name, "meeting_id": meeting_id},
        )

    def followed(self) -> list[tuple[int, str, str]]:
        return [(0, self.deployment.name, self.meeting_id)]

    def _render(self, answers: list[tuple[int, Answer]]) -> tuple[list[str], bool]:
        events = []
        for _, answer in answers:
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
            if shown != self.shown or not plan.polling:
                self.shown = shown
                events.append(_event(METRICS, render_to_string(FRAGMENT, context, self.request)))
            if not plan.polling:
                events.append(_event(END, plan.status))
                return events, False
        return events, True


class _Table(_Stream):
    """A triage table's or the watch list's stream: one subscription per row still followed
    (the rows the page says are settled are not); each answer recorded in the row's span and
    sent as the row its polling refresh draws, with the table's summary and its live line."""

    via = Via.TABLE

    def __init__(
        self,
        *,
        wanted: list[Wanted],
        page_url: str,
        context: dict,
        show: str = "",
        outdated: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.wanted = wanted
        self.page_url = page_url
        self.show = show
        self.outdated = outdated
        self.base_context = context
        query = self.request.GET
        self.settled = triage.settled_in(query.get("done", ""), len(wanted))
        # The groups the page shows for its other rows, then each row's latest as it is sent.
        self.groups = triage.groups_in(query.get("known", ""), len(wanted))
        # Each followed row's deployment and meeting ID, by its index.
        self.following: dict[int, tuple[str, str]] = {}
        for index, item in enumerate(wanted):
            try:
                meeting_id = parse_meeting_id(item.meeting_ref)
            except InvalidMeetingId:
                continue  # the page shows why; nothing to follow
            if index not in self.settled:
                self.following[index] = (item.deployment, meeting_id)
        self.rows: dict[int, triage.Row] = {}  # each followed row's latest answer
        self.sent: dict[int, str] = {}  # the fingerprint of each row as last sent
        self.first = True

    def followed(self) -> list[tuple[int, str, str]]:
        if self.outdated:
            raise sync.PushUnavailable("The watch list changed since the page was drawn.")
        return [(index, *where) for index, where in self.following.items()]

    def _render(self, answers: list[tuple[int, Answer]]) -> tuple[list[str], bool]:
        changed = {}
        for index, answer in answers:
            self.span = answer.span or self.span
            (row,) = triage.rows([answer], [index], shown=self.groups)
            self.rows[index] = row
            if row.fingerprint != self.sent.get(index):
                changed[index] = row
        plan = self._plan()
        if not changed and not self.first and plan.polling:
            return [], True
        self.first = False
        for index, row in changed.items():
            self.sent[index] = row.fingerprint
            self.groups[index] = row.group
        events = [_event(ROWS, self._render_rows(plan, list(changed.values())))]
        if not plan.polling:
            events.append(_event(END, plan.status))
        return events, plan.polling

    def _plan(self) -> PollPlan:
        """The table's live line, as a polling refresh of its followed rows would have it; a row
        that has not answered yet keeps the table live."""
        plan = triage.table_plan(list(self.rows.values()), failures=0, checked_at=timezone.now())
        if len(self.rows) < len(self.following) and plan.status == LiveStatus.ENDED:
            polled = len(self.following) - sum(r.group.settled for r in self.rows.values())
            return PollPlan(LiveStatus.LIVE, triage.live_interval(polled), 0, plan.fingerprint)
        return plan

    def _render_rows(self, plan: PollPlan, changed: list[triage.Row]) -> str:
        context = (
            self.base_context
            | triage.page_values(
                list(self.rows.values()), self.settled | self.groups, show=self.show
            )
            | {
                "pushed": True,
                "page_url": self.page_url,
                "checked_at": timezone.now(),
                "live": plan,
                "span": self.span,
                "total": len(self.wanted),
                "rows": changed,
            }
        )
        return render_to_string(TABLE_FRAGMENT, context, self.request)


def why_polling(failure: LookupFailed) -> str:
    """What a page's live line says while it polls because its stream failed (the "fallback"
    event's data, shown as it is by static/js/console.js until push works again): a push
    failure's own message, written for that line; else the outcome's title."""
    if isinstance(failure, sync.PushUnavailable):
        return str(failure)
    return (
        f"Live updates by push stopped: {failure.title}. The page now checks for changes at "
        "regular intervals instead."
    )


def _reconnect_after(failures: int = 0, meetings: int = 1) -> int:
    """Milliseconds the browser waits before reconnecting once the stream ended (push failed; the
    page polls meanwhile), spread so that the pages of a restarted push server do not all come
    back at once. At first a second or a few, never more than one poll interval; after `failures`
    failed streams in a row, up to RECONNECT_WITHIN x 2^(failures - 1) s, at most
    RECONNECT_AT_MOST s, or as long as keeps a page of `meetings` meetings within a table's share
    of the agent's lookup limit (triage.LIMIT_SHARE) with its attempts."""
    spread = secrets.SystemRandom()
    longest = min(settings.CONNVO_POLL_INTERVAL, RECONNECT_WITHIN) * 1000
    if failures <= 1:
        return spread.randint(min(1000, longest), longest)
    table_share = max(1, settings.CONNVO_LOOKUPS_PER_MINUTE * triage.LIMIT_SHARE)
    at_most = max(RECONNECT_AT_MOST, math.ceil(WINDOW_SECONDS * meetings / table_share))
    wait = min(at_most, RECONNECT_WITHIN * 2 ** min(failures - 1, 16)) * 1000
    return spread.randint(wait // 2, wait)


def _close_request_connection() -> None:
    """Close the connection of the thread the request's own sync work ran in, which the guards
    and the middleware opened (the session and the user read, the session saved): the push
    server's streams share a few such threads (connvo_admin/asgi.py) for as long as they are open,
    and a connection must not wait there meanwhile (under Django's default, a thread per request,
    a thousand open pages would hold a thousand)."""
    if not connection.in_atomic_block:
        connection.close()


# Where Server-Sent Events end a line: CR LF, CR or LF only. `str.splitlines()` also splits at
# U+2028, U+2029, U+0085 and a few controls, which the browser would rejoin as line feeds.
_SSE_LINE_END = re.compile(r"\r\n|\r|\n")


def _event(name: str, data: str) -> str:
    """One Server-Sent Event; each line of `data` is a `data:` line of its own, so that the page
    receives `data` as it was (its line ends as LF)."""
    lines = "".join(f"data: {line}\n" for line in _SSE_LINE_END.split(data))
    return f"event: {name}\n{lines}\n"
