"""Pushed answers put on record where a push worker's death cannot lose them (issue #24).

An open page's stream (meetings/views/push.py) follows its meetings through `follow()`: Connvo's
subscriptions in the agent's name (meetings/sync.py), each answer Connvo pushes recorded in the
page's span before anything is done with it (lookups.record_pushed), the spans held open while
the page is open and sealed when it closes. The stream only draws what it is given.

Where that happens is CONNVO_PUSH_RELAY's to say:
- a Unix socket's path (the production default): in the host's push relay, `manage.py push_relay`
  (docs/deploy.md), one process beside the push server's workers. The relay holds the Connvo
  WebSockets of every stream on the host and records each answer on receipt, then passes it on to
  the worker whose page it is. A push worker killed by `kill -9` (or the OOM killer) loses no
  answer that is not on record: what it had been sent and not yet shown is recorded all the same,
  and the relay, seeing the worker's connection close, leaves those subscriptions (recording
  what Connvo sent until it confirms their removal) and seals their spans. (The relay itself
  killed so loses what it had been sent and not yet recorded: it does nothing but this, restarts
  seldom, and the pages fall back to polling meanwhile.)
- "" (the demo and most tests): in the push worker itself, the same code in the same order.

The relay's socket is the host's own: it is made readable and writable by its owner only (the
console's user), who alone may ask the relay to follow meetings in an agent's name. What passes
through it is this code's own objects, pickled, in both processes the same release's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import signal
import struct
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, close_old_connections, connection

from audit import spans
from audit.models import Via
from audit.services import Origin
from connvo_admin.outcomes import LookupFailed

from . import sync
from .deployments import deployments
from .lookups import Answer, open_subscriptions, pushed_quiet_after, record_pushed
from .lookups import subscription_token as _subscription_token

logger = logging.getLogger(__name__)

# Every stream's database work (its opening, the agent's token, recording each pushed answer
# before it is passed on, holding its spans open, sealing them at the end) runs in these few
# threads, shared by all the process's streams, each keeping its connection for CONN_MAX_AGE: a
# thousand open pages, or a change reaching two hundred of them at once, use at most
# CONNVO_PUSH_DATABASE_THREADS connections per process, and no thread waits with a stream.
# (Django's default, a thread per request for its `sync_to_async` calls, held one thread per open
# stream, and closing the connection after each answer opened one per answer: together they
# exhausted PostgreSQL's connections, docs/performance.md "Push instead of polling".)
_database_work = ThreadPoolExecutor(
    max_workers=settings.CONNVO_PUSH_DATABASE_THREADS, thread_name_prefix="push-database"
)


# Sealing a closed page's spans appends to the audit chain, one append at a time under its head's
# lock: in a thread of its own, so that when a push worker dies and the relay seals hundreds of
# its pages' spans at once, recording answers and opening the pages' new streams do not wait
# behind them (they did: recovery took twice as long, docs/performance.md).
_sealing_work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-sealing")


def in_database_thread(function, executor: ThreadPoolExecutor = _database_work):
    """`function` as a coroutine run in one of the process's push database threads (or in
    `executor`'s)."""

    def job(*args, **kwargs):
        # As Django does around a request: a connection past CONN_MAX_AGE, or broken, is replaced
        # before the work, and closed after it if it is (else kept for the thread's next job).
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            _let_go_of_the_database()

    return sync_to_async(job, thread_sensitive=False, executor=executor)


def _let_go_of_the_database() -> None:
    """The end of a unit of a stream's database work (a job of in_database_thread), as the end
    of a request is: its thread's connection is closed if it is past CONN_MAX_AGE or broken, else
    kept for the next unit. Not inside a transaction (a test's)."""
    if not connection.in_atomic_block:
        close_old_connections()


# --- What a page follows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Following:
    """What one open page's stream follows, and in whose name: each followed meeting as
    (the page's index for it, deployment name, meeting ID, already parsed); the page's span key
    ("" for a new span); `via` its answers are recorded as (a meeting page's `refresh`, a table's
    `table`); `hold_every` seconds between holds of its spans."""

    user_id: int
    client_ip: str | None
    user_agent: str
    span: str
    via: str
    meetings: tuple[tuple[int, str, str], ...]
    hold_every: float

    @classmethod
    def of(cls, origin: Origin, **kwargs) -> Following:
        return cls(
            user_id=origin.user.pk,
            client_ip=origin.client_ip,
            user_agent=origin.user_agent,
            **kwargs,
        )

    def as_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Following:
        fields = json.loads(line)
        fields["meetings"] = tuple(
            (int(index), str(name), str(meeting_id))
            for index, name, meeting_id in fields["meetings"]
        )
        return cls(**fields)


_FINISHED = object()  # a meeting's subscription ended (the meeting ended, or it was refused)


@dataclass(frozen=True, slots=True)
class _Failed:
    """A meeting's subscription failed (raised, as opposed to a refusal Connvo answered)."""

    error: Exception


class _Recorder:
    """The recording side of one page's stream, wherever it runs."""

    def __init__(self, following: Following) -> None:
        self.following = following
        self.span = following.span
        self.origin: Origin | None = None
        self.quiet_for = pushed_quiet_after(following.hold_every)
        # Each followed meeting's deployment name and meeting ID, by the page's index for it.
        self.where = {index: (name, meeting_id) for index, name, meeting_id in following.meetings}
        # Set when the page is gone: its subscriptions are left (meetings/sync.py `watch`).
        self.leaving = asyncio.Event()

    # Database work, each run in a push database thread.
    def open(self) -> None:
        """Who the page's agent is; their subscriptions counted against their lookup limit
        (raising LookupLimitReached before any is made); the page's spans held open."""
        following = self.following
        user = get_user_model().objects.filter(pk=following.user_id, is_active=True).first()
        if user is None:
            raise sync.PushUnavailable("The page's agent can no longer look meetings up.")
        self.origin = Origin(
            user=user,
            username=user.get_username(),
            client_ip=following.client_ip,
            user_agent=following.user_agent,
        )
        open_subscriptions(
            user=user,
            meetings=[(name, meeting_id) for _, name, meeting_id in following.meetings],
            span=self.span,
        )
        self.hold_open()

    def token(self, deployment_name: str) -> str:
        return _subscription_token(
            user=self.origin.user, origin=self.origin, deployment_name=deployment_name
        )

    def record(self, batch: list[tuple[int, object]]) -> list[tuple[int, Answer]]:
        """Each answer Connvo pushed, on record in the page's span before it goes further."""
        recorded = []
        for index, result in batch:
            name, meeting_id = self.where[index]
            answer = record_pushed(
                origin=self.origin,
                deployment=deployments()[name],
                meeting_id=meeting_id,
                result=result,
                span=self.span,
                polls_every=self.following.hold_every,
                via=Via(self.following.via),
            )
            self.span = answer.span or self.span
            recorded.append((index, answer))
        return recorded

    def hold_open(self) -> None:
        """The page is open though it asks nothing: its spans are not to be sealed as closed
        before the next hold has come."""
        if not self.span:
            return
        try:
            spans.hold_open(
                key=self.span, actor_id=self.following.user_id, quiet_for=self.quiet_for
            )
        except DatabaseError:
            # Failing open: at worst `audit_seal` takes the page for closed, and its next answer
            # is counted in a new part of the record under the same key.
            logger.exception("the spans of an open stream could not be held open")

    def close(self) -> None:
        """The stream ended: its spans' answers go into the chain now, as a closed page's."""
        try:
            if self.span:
                spans.seal_closed(key=self.span, actor_id=self.following.user_id)
        except DatabaseError:
            # `audit_seal` seals them once they are quiet.
            logger.exception("the spans of a closed stream could not be sealed")

    async def answers(self) -> AsyncIterator[list[tuple[int, object]]]:
        """Each time some meetings have answers: those answers, in the order they came. Raises
        the first subscription's failure (PushUnavailable), once the answers before it are out;
        ends when every subscription has."""
        queue: asyncio.Queue = asyncio.Queue()
        # As many subscriptions waiting for their first answer at once as a polling table has
        # calls in flight.
        slots = asyncio.Semaphore(settings.CONNVO_TABLE_CONCURRENCY)
        token = in_database_thread(self.token)

        async def follow(index: int, name: str, meeting_id: str) -> None:
            subscription = None
            try:
                subscription = aiter(
                    sync.watch(
                        deployment=deployments()[name],
                        token=lambda: token(name),
                        meeting_id=meeting_id,
                        user_key=str(self.following.user_id),
                        leaving=self.leaving,
                    )
                )
                async with slots:
                    first = await anext(subscription)
                await queue.put((index, first))
                async for result in subscription:
                    await queue.put((index, result))
                await queue.put((index, _FINISHED))
            except StopAsyncIteration:
                await queue.put((index, _FINISHED))
            except Exception as failure:
                # PushUnavailable, a token no longer usable (raised, not answered), or a bug:
                # raised again by the stream, which falls back or breaks.
                await queue.put((index, _Failed(failure)))
            finally:
                if subscription is not None:
                    await subscription.aclose()

        tasks = [asyncio.create_task(follow(*meeting)) for meeting in self.following.meetings]
        running = len(tasks)
        try:
            while running:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                answers = []
                failure = None
                for index, item in batch:
                    if item is _FINISHED:
                        running -= 1
                    elif isinstance(item, _Failed):
                        failure = failure or item.error
                        running -= 1
                    else:
                        answers.append((index, item))
                if answers:
                    yield answers
                if failure is not None:
                    raise failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Recorded:
    """The page's answers, each batch recorded before it is given (raises AuditUnavailable when
    one cannot be: it must not be shown), in this process: an async iterator of lists of (index,
    Answer). Raises PushUnavailable, or LookupFailed (over the limit, a token no longer usable),
    when following fails; stops when every meeting's subscription has (the meetings ended). Its
    spans are held open meanwhile, and sealed by `aclose()`, which its reader always calls.

    A class, not an async generator: a generator's cleanup that waits (here, on the database)
    could be started twice when an event loop shuts down with streams open (once by the loop,
    once by the stream's own cleanup), which fails."""

    def __init__(self, following: Following) -> None:
        self.following = following
        self.recorder = _Recorder(following)
        self.answers: AsyncIterator | None = None
        self.holding: asyncio.Task | None = None
        self.exhausted = False  # the subscriptions have all ended
        self.closed = False

    def __aiter__(self) -> Recorded:
        return self

    async def __anext__(self) -> list[tuple[int, Answer]]:
        if self.closed:
            raise StopAsyncIteration
        if self.answers is None:
            await in_database_thread(self.recorder.open)()
            self.holding = asyncio.create_task(self._hold())
            self.answers = aiter(self.recorder.answers())
        try:
            batch = await anext(self.answers)
        except BaseException:
            self.exhausted = True  # ended, failed, or cancelled: an async generator is done then
            raise
        return await in_database_thread(self.recorder.record)(batch)

    def leave(self) -> None:
        """The page is gone: its subscriptions are left. The answers Connvo sent before it had
        that are still given (and recorded), then the iteration stops."""
        self.recorder.leaving.set()

    async def _hold(self) -> None:
        while True:
            await asyncio.sleep(self.following.hold_every)
            await in_database_thread(self.recorder.hold_open)()

    async def aclose(self) -> None:
        """The subscriptions end, each answer still on its way recorded first (within
        CONNVO_READ_TIMEOUT); the spans are sealed. Its reader must not have cancelled a step
        that is still waiting (it calls `leave()`, then waits for that step): the answers after
        the page went away would be lost with it."""
        if self.closed:
            return
        self.leave()
        if self.answers is not None and not self.exhausted:
            try:
                async with asyncio.timeout(settings.CONNVO_READ_TIMEOUT):
                    async for _ in self:
                        pass  # recorded; the page is gone
            except (TimeoutError, LookupFailed):
                pass  # the connection failed or stayed silent: nothing more can be had
            except Exception:
                logger.exception("the answers of a closed stream could not all be recorded")
        self.closed = True
        if self.holding is not None:
            self.holding.cancel()
            with contextlib.suppress(BaseException):
                await self.holding
        if self.answers is not None:
            await self.answers.aclose()
        await in_database_thread(self.recorder.close, _sealing_work)()


# --- Between a push worker and the relay ---------------------------------------------------------

# Each frame: its length (4 bytes, big-endian), then a pickled (kind, payload).
_LENGTH = struct.Struct(">I")
ANSWERS, ENDED, FAILED = "answers", "ended", "failed"


def _frame(kind: str, payload: object = None) -> bytes:
    body = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> tuple[str, object]:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return _unframe(await reader.readexactly(length))


def _unframe(body: bytes) -> tuple[str, object]:
    return pickle.loads(body)  # noqa: S301 (only the relay can write to its socket: the module's doc)


def _relay_unavailable(detail: str) -> sync.PushUnavailable:
    return sync.PushUnavailable(
        "Live updates stopped: the console's push relay could not be reached. The page now checks "
        "for changes at regular intervals instead.",
        detail=detail,
    )


async def close_following(answers: Recorded | FromRelay, step: asyncio.Future | None) -> None:
    """The page is gone (or its stream ended): `answers` leaves its subscriptions, the step
    under way, if any, is let finish (within CONNVO_READ_TIMEOUT: what Connvo sent meanwhile is
    recorded; a step cancelled instead would lose it), then `aclose()` records the rest and seals
    the page's spans. The one way a stream's reader, in a push worker or in the relay, lets go."""
    answers.leave()
    try:
        if step is not None and not step.done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(settings.CONNVO_READ_TIMEOUT):
                    await asyncio.shield(step)
    finally:
        if step is not None and not step.done():
            step.cancel()
            with contextlib.suppress(BaseException):
                await step
        await answers.aclose()


def follow(following: Following) -> Recorded | FromRelay:
    """The page's answers, each already on record: from the host's push relay
    (CONNVO_PUSH_RELAY), or recorded here when none is set. An async iterator as `Recorded`,
    which also raises PushUnavailable when the relay cannot be reached or goes away; its reader
    calls `aclose()` when done with it."""
    if settings.CONNVO_PUSH_RELAY:
        return FromRelay(following, settings.CONNVO_PUSH_RELAY)
    return Recorded(following)


class FromRelay:
    """The page's answers from the host's push relay, which records them (see `Recorded`)."""

    def __init__(self, following: Following, path: str) -> None:
        self.following = following
        self.path = path
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None
        self.closed = False

    def __aiter__(self) -> FromRelay:
        return self

    async def __anext__(self) -> list[tuple[int, Answer]]:
        if self.closed:
            raise StopAsyncIteration
        if self.writer is None:
            try:
                self.reader, self.writer = await asyncio.open_unix_connection(self.path)
            except OSError as error:
                detail = f"connecting to {self.path}: {error.strerror or error}"
                raise _relay_unavailable(detail) from None
            self.writer.write(self.following.as_line())
        try:
            kind, payload = await _read_frame(self.reader)
        except (asyncio.IncompleteReadError, OSError) as error:
            raise _relay_unavailable(f"the relay closed the connection: {error!r}") from None
        if kind == ANSWERS:
            return payload
        if kind == ENDED:
            raise StopAsyncIteration
        raise payload

    def leave(self) -> None:
        """The page is gone: the connection closes, and the relay, seeing that, leaves the
        subscriptions (recording what is still on its way) and seals the spans. A read under way
        here ends at once (PushUnavailable)."""
        if self.writer is not None:
            self.writer.close()

    async def aclose(self) -> None:
        """The relay, seeing the connection close, leaves the subscriptions (recording what is
        still on its way) and seals the spans."""
        if self.closed:
            return
        self.closed = True
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


# Seconds a stopping relay gives its streams to leave their subscriptions, recording what is on
# its way (then it ends what is left): inside systemd's TimeoutStopSec (15 s).
STOP_WITHIN = 10


async def _relay_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopping: asyncio.Event
) -> None:
    """One push worker's stream: follow what it asks for, recording each answer before it is
    sent on, until the meetings end, following fails, the worker closes the connection (its page
    went away, or the worker died), or the relay stops: then its subscriptions are left, what
    Connvo sent meanwhile is recorded, and its spans are sealed."""
    try:
        line = await reader.readline()
        following = Following.from_line(line) if line else None
    except (ValueError, TypeError, KeyError, OSError):
        logger.warning("a push relay connection sent something that is not a stream to follow")
        following = None
    if following is None:  # or a probe, which connects and closes
        writer.close()
        return
    answers = Recorded(following)
    # The worker sends nothing more: what it reads next is the end of its connection.
    gone = asyncio.ensure_future(reader.read(1))
    stop = asyncio.ensure_future(stopping.wait())
    step: asyncio.Future | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(answers))
            await asyncio.wait({step, gone, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                # The worker is gone (its page closed, or it died), or the relay stops: the
                # subscriptions are left, and what Connvo sent meanwhile is recorded (this step,
                # then the rest: `close_following`); a stopping relay's pages then poll until it
                # is back.
                break
            try:
                frame = _frame(ANSWERS, step.result())
            except StopAsyncIteration:
                writer.write(_frame(ENDED))
                break
            except LookupFailed as failure:
                writer.write(_frame(FAILED, failure))
                break
            writer.write(frame)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # the worker is gone
    except Exception:
        logger.exception("a pushed stream failed in the push relay")
    finally:
        await close_following(answers, step)
        gone.cancel()
        stop.cancel()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        writer.close()


async def serve(
    path: str, *, ready: asyncio.Event | None = None, stopping: asyncio.Event | None = None
) -> None:
    """The host's push relay on the Unix socket `path`, until SIGTERM or SIGINT (or `stopping`
    is set, when given): then every stream leaves its subscriptions, records what Connvo sent
    meanwhile and ends (its page falls back to polling and comes back once the relay is up
    again). `ready` is set once it listens."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    streams: set[asyncio.Task] = set()

    if stopping is None:
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stopping.set)

    async def one(reader, writer) -> None:
        task = asyncio.current_task()
        streams.add(task)
        try:
            await _relay_one(reader, writer, stopping)
        finally:
            streams.discard(task)

    old_mask = os.umask(0o177)  # the socket is its owner's only, from its first moment
    try:
        server = await asyncio.start_unix_server(one, path=path)
    finally:
        os.umask(old_mask)
    logger.info("push relay listening on %s", path)
    if ready is not None:
        ready.set()
    try:
        await stopping.wait()
    finally:
        stopping.set()  # also when cancelled: each stream leaves, as on SIGTERM
        server.close()
        # Each stream leaves its subscriptions and records what is on its way (STOP_WITHIN);
        # then the rest end as they are.
        if streams:
            await asyncio.wait(set(streams), timeout=STOP_WITHIN)
        for task in list(streams):
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        logger.info("push relay stopped")
