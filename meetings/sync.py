"""Pushed answers: the console's client of Convex's sync protocol, the WebSocket (`/api/sync`) over
which a Connvo deployment pushes a subscribed query's new answer as soon as it changes. The only
code that speaks that protocol (meetings/connvo.py is the only code that speaks HTTP to Connvo).

`watch()` subscribes one page to one meeting and yields the same typed results as the HTTP path:
what an answer means is decided by `connvo.read_value()` and `connvo.read_error()` for both. In one
process, all of one agent's subscriptions on one deployment share one WebSocket, authenticated as
that agent; each page has a query of its own, even two pages on one meeting (so each answer Connvo
sends is recorded once, by the page it was sent for). The connection closes with its last
subscription. It is never re-opened after a failure: the page falls back to polling
(`PushUnavailable`).

Read from Convex's own clients and server (convex-js `src/browser/sync/`: protocol.ts,
web_socket_manager.ts, local_state.ts, authentication_manager.ts; convex-backend `crates/sync` and
`crates/local_backend/src/subs`), not from the fake Connvo. Nothing here logs a token: the token
travels only in an Authenticate frame, and websockets never logs frames here (`_WIRE_LOG`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from connvo_admin.outcomes import LookupFailed, Outcome

from . import connvo
from .credentials import read_claims
from .deployments import Deployment

logger = logging.getLogger(__name__)

SYNC_PATH = "/api/sync"
# The canonical path of getMeeting as the sync protocol names functions ("module:function").
GET_MEETING = "meetings/queries:getMeeting"
# Re-authenticate this long before the token's `exp`, as convex-js does by default (a token that
# lives less than twice as long is renewed halfway through what is left of it).
_REAUTH_LEAD = 10.0
_REAUTH_MIN_DELAY = 0.5
# How much of Connvo's own words (FatalError, AuthError) is kept for escalation.
_DETAIL_LIMIT = 200


class _NoFrames(logging.LoggerAdapter):
    """websockets logs every frame at DEBUG, an Authenticate frame's token included, and each
    connection's close at INFO (a thousand lines when a thousand pages close): this logger passes
    on warnings and errors only, whatever the logging configuration says."""

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)


_WIRE_LOG = _NoFrames(logging.getLogger(f"{__name__}.wire"))


class _connect_here(connect):
    """websockets' `connect`, which follows a redirect (to another host too), here refusing
    one: the first message sent is Authenticate, with the agent's token, to wherever it
    points. The HTTP client follows none either (connvo.get_meeting)."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class PushUnavailable(LookupFailed):
    """The WebSocket could not be opened, dropped, went silent past the heartbeat, or sent
    something that is not the sync protocol (or a FatalError): the page falls back to polling."""

    outcome = Outcome.UNREACHABLE


# --- Counters (for tests and bench/push_client_cost.py) -----------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionFigures:
    user_key: str
    deployment: str
    is_open: bool
    queries: int
    sockets_opened: int  # more than one after a reconnection with a fresh token
    answers_received: int


@dataclass(frozen=True, slots=True)
class Figures:
    connections_open: int  # WebSockets open now, in every event loop of this process
    connections_opened: int  # since reset_figures()
    answers_received: int  # query answers (QueryUpdated or QueryFailed) since reset_figures()
    connections: tuple[ConnectionFigures, ...]  # the running loop's connections not yet ended


@dataclass(slots=True)
class _Counts:
    open: int = 0
    opened: int = 0
    answers: int = 0


_counts = _Counts()


def figures() -> Figures:
    try:
        current = list(_registry.get(asyncio.get_running_loop(), {}).values())
    except RuntimeError:  # no running loop: only the process-wide counts
        current = []
    return Figures(
        connections_open=_counts.open,
        connections_opened=_counts.opened,
        answers_received=_counts.answers,
        connections=tuple(connection.figures() for connection in current),
    )


def reset_figures() -> None:
    """Zero the counts since reset (not `connections_open`: those are still open)."""
    _counts.opened = 0
    _counts.answers = 0


# --- The protocol's messages ---------------------------------------------------------------------


class _Violation(Exception):
    """The server sent something that is not the sync protocol as this client knows it."""


def _parse(frame: str | bytes) -> dict[str, Any]:
    if not isinstance(frame, str):
        raise _Violation("a binary frame (the sync protocol is JSON text)")
    try:
        message = json.loads(frame, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _Violation("a frame that is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _Violation("a message without a type")
    return message


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Convex sends such numbers as {"$float": ...}.
    raise ValueError(name)


def _count(value: Any, what: str) -> int:
    """A non-negative integer of the protocol (a version, a query id)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Violation(f"{what} is not a non-negative integer")
    return value


def _u64(value: Any, what: str) -> int:
    """A timestamp: eight little-endian bytes in base64, as Convex sends u64s to JavaScript."""
    if not isinstance(value, str):
        raise _Violation(f"{what} is not an encoded u64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Violation(f"{what} is not base64") from None
    if len(raw) != 8:
        raise _Violation(f"{what} is not 8 bytes")
    return int.from_bytes(raw, "little")


def _version(value: Any, what: str) -> tuple[int, int, int]:
    """A StateVersion as (querySet, identity, ts)."""
    if not isinstance(value, dict):
        raise _Violation(f"{what} is not an object")
    return (
        _count(value.get("querySet"), f"{what}.querySet"),
        _count(value.get("identity"), f"{what}.identity"),
        _u64(value.get("ts"), f"{what}.ts"),
    )


def _words(value: Any) -> str:
    return value[:_DETAIL_LIMIT] if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class _Answer:
    """One answer to a query, as sent: its value, or the error it threw."""

    failed: bool
    value: Any = None
    error_message: Any = None
    error_data: Any = None


def _answer(modification: dict[str, Any]) -> tuple[int, _Answer | None]:
    """A Transition's modification: the query id and its answer (None when it was removed)."""
    kind = modification.get("type")
    query_id = _count(modification.get("queryId"), "queryId")
    if kind == "QueryUpdated":
        # convex-js reads a missing value as null.
        return query_id, _Answer(failed=False, value=modification.get("value"))
    if kind == "QueryFailed":
        return query_id, _Answer(
            failed=True,
            error_message=modification.get("errorMessage"),
            error_data=modification.get("errorData"),
        )
    if kind == "QueryRemoved":
        return query_id, None
    raise _Violation("a Transition with a modification of an unknown type")


def _result(
    answer: _Answer, deployment: Deployment, *, meeting_id: str, latency_ms: int, attempts: int
) -> connvo.Lookup | LookupFailed:
    """The answer as the HTTP path would give it (the same two functions decide), for the meeting
    the page asked for."""
    context: dict[str, Any] = {"http_status": None, "latency_ms": latency_ms, "attempts": attempts}
    if answer.failed:
        return connvo.read_error(answer.error_message, answer.error_data, deployment, **context)
    try:
        return connvo.read_value(answer.value, deployment, meeting_id=meeting_id, **context)
    except LookupFailed as failure:
        return failure


def _keeps_going(result: connvo.Lookup | LookupFailed) -> bool:
    """Whether a page that shows this keeps listening: what would stop its polling stops it."""
    if isinstance(result, connvo.Lookup):
        return result.meeting.is_live
    return result.handling.live.keeps_going


# --- One WebSocket per agent and deployment ------------------------------------------------------


class _Stop(Exception):
    """The connection ends for all its watchers: with a result for each (the token was refused,
    or could not be had) and/or as unavailable."""

    def __init__(self, *, result: LookupFailed | None = None, detail: str = "") -> None:
        super().__init__(detail)
        self.result = result
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _End:
    result: LookupFailed | None
    detail: str  # why push is unavailable, when `result` does not stop the page


# A query that was left: Connvo confirmed its removal (or the socket it was on is gone), so no
# answer to it can come any more.
_LEFT = object()


@dataclass(eq=False, slots=True)
class _Watcher:
    query: _Query
    queue: asyncio.Queue[_Answer | _End] = field(default_factory=asyncio.Queue)


@dataclass(eq=False, slots=True)
class _Query:
    query_id: int
    meeting_id: str
    watchers: set[_Watcher] = field(default_factory=set)


# Per event loop (asyncio objects belong to one): (user key, deployment URL) -> its connection.
_registry: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], _Connection]
] = weakref.WeakKeyDictionary()


class _Connection:
    def __init__(
        self,
        *,
        user_key: str,
        deployment: Deployment,
        token: Callable[[], Awaitable[str]],
    ) -> None:
        self.user_key = user_key
        self.deployment = deployment
        self.token_source = token
        # By query id: one per page, even for a meeting another page of the agent watches, so
        # that every answer Connvo sends is one page's and is recorded once (in that page's span).
        self.queries: dict[int, _Query] = {}
        # Queries being left (`leave`): removed from the server's set, their watchers still given
        # each answer Connvo sent before it had the removal, until it confirms it (QueryRemoved).
        self.leaving: dict[int, _Query] = {}
        self.next_query_id = 0
        self.changed = asyncio.Event()
        self.ended = False
        self.task: asyncio.Task[None] | None = None
        self.session_id = str(uuid.uuid4())
        self.sockets_opened = 0
        self.answers_received = 0
        # The open socket's protocol state.
        self.ws: ClientConnection | None = None
        self.sent: dict[int, str] = {}  # query id -> meeting id, as the server has them
        self.query_set_version = 0
        self.identity_version = 0
        self.server_version = (0, 0, 0)  # (querySet, identity, ts) the server has reached
        self.token = ""  # the last one sent (never logged)
        self.accepted = False  # the server took a token on this socket

    @property
    def key(self) -> tuple[str, str]:
        return (self.user_key, self.deployment.url)

    def figures(self) -> ConnectionFigures:
        return ConnectionFigures(
            user_key=self.user_key,
            deployment=self.deployment.name,
            is_open=self.ws is not None,
            queries=len(self.queries),
            sockets_opened=self.sockets_opened,
            answers_received=self.answers_received,
        )

    # -- watchers (called from watch(), synchronously) ------------------------------------------

    def subscribe(self, meeting_id: str) -> _Watcher:
        query = _Query(self.next_query_id, meeting_id)
        self.next_query_id += 1
        self.queries[query.query_id] = query
        self.changed.set()
        watcher = _Watcher(query)
        query.watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: _Watcher) -> None:
        query = watcher.query
        query.watchers.discard(watcher)
        if query.watchers or self.queries.get(query.query_id) is not query:
            return
        del self.queries[query.query_id]
        if self.ended:
            return
        if not self.queries:
            # The last one: no one else may join this connection.
            self._forget()
            if self.ws is None and self.task is not None:
                self.task.cancel()  # still connecting or fetching a token: nothing to close
        self.changed.set()

    def leave(self, watcher: _Watcher) -> None:
        """Remove the watcher's query from the server's set, as `unsubscribe` does, but keep
        giving the watcher the answers Connvo sends until it has the removal; then `_LEFT`. So
        an answer already on its way when the page closed still reaches it (and is recorded)."""
        query = watcher.query
        if self.queries.get(query.query_id) is not query:
            watcher.queue.put_nowait(_LEFT)  # already gone, or ended (its _End is queued)
            return
        if len(query.watchers) > 1 or self.ended or query.query_id not in self.sent:
            # Others still watch it, or the server never had it (or never will again): nothing
            # more can come for this watcher.
            self.unsubscribe(watcher)
            watcher.queue.put_nowait(_LEFT)
            return
        del self.queries[query.query_id]
        self.leaving[query.query_id] = query
        if not self.queries:
            self._forget()  # no one else may join this connection
        self.changed.set()

    def _left(self, query_id: int) -> None:
        """Connvo has removed the query (or its socket is gone): its watchers are done."""
        query = self.leaving.pop(query_id, None)
        if query is not None:
            for watcher in query.watchers:
                watcher.queue.put_nowait(_LEFT)
            self.changed.set()

    def _forget(self) -> None:
        loop = self.task.get_loop() if self.task is not None else asyncio.get_running_loop()
        connections = _registry.get(loop, {})
        if connections.get(self.key) is self:
            del connections[self.key]

    def _end(self, end: _End) -> None:
        self.ended = True
        self._forget()
        for query in self.queries.values():
            for watcher in query.watchers:
                watcher.queue.put_nowait(end)
        for query_id in list(self.leaving):
            self._left(query_id)

    # -- the connection's task -------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"connvo-sync {self.deployment.name}"
        )

    async def _run(self) -> None:
        end = _End(None, "it stopped")
        try:
            await self._serve()
        except _Stop as stop:
            end = _End(stop.result, stop.detail)
            if stop.detail:
                logger.info(
                    "pushed answers unavailable deployment=%s user=%s: %s",
                    self.deployment.name,
                    self.user_key,
                    stop.detail,
                )
        finally:
            # Whatever ended it (a bug included), no watcher is left waiting.
            if not self.ended:
                self._end(end)

    async def _serve(self) -> None:
        rejected: str | None = None  # the token Connvo refused last, unless it took one since
        refusal = ""
        while self.queries:
            token = await self._fetch_token()
            if rejected is not None and token == rejected:
                raise _Stop(result=self._token_rejected(refusal))  # no fresh token to try
            refusal = await self._socket(token)
            if refusal is None:
                return  # no queries left
            if rejected is not None and not self.accepted:
                raise _Stop(result=self._token_rejected(refusal))  # the second refusal
            rejected = self.token

    def _token_rejected(self, detail: str) -> LookupFailed:
        return connvo.token_rejected(self.deployment, detail=f"AuthError: {detail}")

    async def _fetch_token(self) -> str:
        try:
            token = await self.token_source()
        except LookupFailed as failure:
            raise _Stop(result=failure, detail=f"no token to send ({failure.kind})") from None
        if not token:
            raise _Stop(result=connvo.missing_token(self.deployment))
        return token

    def _url(self) -> str:
        url = self.deployment.url
        for http, ws in (("https://", "wss://"), ("http://", "ws://")):
            if url.startswith(http):
                return ws + url.removeprefix(http) + SYNC_PATH
        raise _Stop(detail="the deployment's URL is neither http nor https")

    async def _socket(self, token: str) -> str | None:
        """One WebSocket: None once no query is left, or Connvo's words when it refused a token
        (it closes the socket after an AuthError). Raises _Stop when it fails."""
        # A new socket has none of the queries being left: nothing more can come for them.
        for query_id in list(self.leaving):
            self._left(query_id)
        self.sent = {}
        self.query_set_version = self.identity_version = 0
        self.server_version = (0, 0, 0)
        self.accepted = False
        url = self._url()
        opened = False
        try:
            async with _connect_here(
                url,
                additional_headers={"Convex-Client": connvo.CLIENT_NAME},
                user_agent_header=None,
                # Compression costs each connection its own zlib state; the answers are small.
                compression=None,
                # A proxy from the environment must not see agents' tokens.
                proxy=None,
                open_timeout=settings.CONNVO_CONNECT_TIMEOUT,
                # The protocol's own heartbeat (Ping messages) tells a dead connection.
                ping_interval=None,
                close_timeout=settings.CONNVO_CONNECT_TIMEOUT,
                logger=_WIRE_LOG,
            ) as ws:
                self.ws = ws
                opened = True
                _counts.open += 1
                _counts.opened += 1
                try:
                    return await self._speak(ws, token)
                finally:
                    self.ws = None
        except InvalidStatus as exc:
            raise _Stop(detail=f"HTTP {exc.response.status_code} instead of a WebSocket") from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise _Stop(detail=f"could not open the WebSocket ({type(exc).__name__})") from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else "none"
            raise _Stop(detail=f"the WebSocket closed (code {code})") from None
        except _Violation as exc:
            raise _Stop(detail=f"Connvo sent {exc}") from None
        finally:
            if opened:  # counted open until its closing handshake is over
                _counts.open -= 1

    async def _speak(self, ws: ClientConnection, token: str) -> str | None:
        lost = self.sockets_opened > 0
        self.sockets_opened += 1
        await self._send(
            ws,
            {
                "type": "Connect",
                "sessionId": self.session_id,
                "connectionCount": self.sockets_opened - 1,
                "lastCloseReason": "AuthError" if lost else "InitialConnect",
                "clientTs": int(time.time() * 1000),
            },
        )
        await self._authenticate(ws, token)
        tasks = [
            asyncio.create_task(self._read(ws)),
            asyncio.create_task(self._write(ws)),
            asyncio.create_task(self._keep_authenticated(ws)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return next(iter(done)).result()

    async def _send(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        await ws.send(json.dumps(message, separators=(",", ":")))

    async def _authenticate(self, ws: ClientConnection, token: str) -> None:
        base = self.identity_version
        self.identity_version = base + 1
        self.token = token
        await self._send(
            ws, {"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": base}
        )

    async def _read(self, ws: ClientConnection) -> str:
        """Until Connvo refuses a token (its words); raises when the socket fails."""
        silence = settings.CONNVO_SYNC_SILENCE_TIMEOUT
        while True:
            try:
                async with asyncio.timeout(silence):
                    frame = await ws.recv()
            except TimeoutError:
                raise _Stop(detail=f"nothing from Connvo for {silence:g} s") from None
            refusal = self.handle(_parse(frame))
            if refusal is not None:
                return refusal

    async def _write(self, ws: ClientConnection) -> None:
        """Keep the server's query set equal to this connection's; return once it is empty."""
        while True:
            self.changed.clear()
            modifications: list[dict[str, Any]] = [
                {"type": "Remove", "queryId": query_id}
                for query_id in self.sent
                if query_id not in self.queries
            ]
            modifications += [
                {
                    "type": "Add",
                    "queryId": query.query_id,
                    "udfPath": GET_MEETING,
                    "args": [{"meetingId": query.meeting_id}],
                }
                for query in self.queries.values()
                if query.query_id not in self.sent
            ]
            if not self.queries and not self.leaving:
                return  # closing the socket removes what it had
            if modifications:
                base = self.query_set_version
                self.query_set_version = base + 1
                self.sent = {query.query_id: query.meeting_id for query in self.queries.values()}
                await self._send(
                    ws,
                    {
                        "type": "ModifyQuerySet",
                        "baseVersion": base,
                        "newVersion": base + 1,
                        "modifications": modifications,
                    },
                )
            await self.changed.wait()

    async def _keep_authenticated(self, ws: ClientConnection) -> None:
        """Send a fresh token a little before the current one expires."""
        while True:
            delay = _reauth_delay(self.token)
            if delay is None:
                await asyncio.Future()  # no expiry to read: Connvo's AuthError will say
            else:
                await asyncio.sleep(delay)
            fresh = await self._fetch_token()
            if fresh == self.token:
                # Nothing newer to offer (a pasted token): Connvo refuses it once it expires.
                await asyncio.Future()
            await self._authenticate(ws, fresh)

    # -- what the server sends (synchronous: tests feed it directly) -----------------------------

    def handle(self, message: dict[str, Any]) -> str | None:
        """Apply one server message. Returns Connvo's words when it refused a token; raises
        _Violation for anything that is not the protocol, _Stop for a FatalError."""
        kind = message["type"]
        if kind == "Transition":
            self._transition(message)
        elif kind == "AuthError":
            return _words(message.get("error")) or "the token was refused"
        elif kind == "FatalError":
            raise _Stop(detail=f"FatalError: {_words(message.get('error'))}")
        elif kind == "TransitionChunk":
            # Sent only to clients that say they can reassemble them; this one does not.
            raise _Violation("a TransitionChunk")
        # Ping only proves the connection is alive (it has been read); mutation and action
        # responses answer requests this client never makes; newer message types are ignored.
        return None

    def _transition(self, message: dict[str, Any]) -> None:
        start = _version(message.get("startVersion"), "startVersion")
        end = _version(message.get("endVersion"), "endVersion")
        if start != self.server_version:
            raise _Violation("a Transition that does not start where the last one ended")
        if end[0] > self.query_set_version or end[1] > self.identity_version:
            raise _Violation("a Transition to a version this client never sent")
        modifications = message.get("modifications")
        if not isinstance(modifications, list) or not all(
            isinstance(item, dict) for item in modifications
        ):
            raise _Violation("a Transition without a list of modifications")
        answers = [_answer(item) for item in modifications]  # all checked before any is applied
        self.server_version = end
        if end[1] > start[1]:
            self.accepted = True
        for query_id, answer in answers:
            if answer is None:
                self._left(query_id)  # removed as asked
                continue
            self.answers_received += 1
            _counts.answers += 1
            query = self.queries.get(query_id) or self.leaving.get(query_id)
            if query is None:
                continue  # removed since: its last answers may still arrive
            for watcher in query.watchers:
                watcher.queue.put_nowait(answer)


def _reauth_delay(token: str) -> float | None:
    """Seconds until the token should be replaced, or None when it has no readable expiry."""
    claims = read_claims(token)
    if claims is None or claims.expires_at is None:
        return None
    remaining = claims.expires_at.timestamp() - time.time()
    lead = _REAUTH_LEAD if remaining > 2 * _REAUTH_LEAD else remaining / 2
    return max(_REAUTH_MIN_DELAY, remaining - lead)


def _connection_for(
    deployment: Deployment, user_key: str, token: Callable[[], Awaitable[str]]
) -> _Connection:
    connections = _registry.setdefault(asyncio.get_running_loop(), {})
    connection = connections.get((user_key, deployment.url))
    if connection is None:
        connection = _Connection(user_key=user_key, deployment=deployment, token=token)
        connections[connection.key] = connection
        connection.start()
    else:
        connection.token_source = token  # the newest page's: it has just worked for it
    return connection


# --- The public API -----------------------------------------------------------------------------


async def watch(
    *,
    deployment: Deployment,
    token: Callable[[], Awaitable[str]],
    meeting_id: str,
    user_key: str,
    leaving: asyncio.Event | None = None,
) -> AsyncIterator[connvo.Lookup | LookupFailed]:
    """The meeting's first answer, then each answer Connvo pushes, as the HTTP path's results:
    a `connvo.Lookup` or a `LookupFailed` (MeetingNotFound, MeetingNotVisible, TokenRejected, …),
    one for every answer Connvo sends (Convex itself sends a query's answer only when it
    changed). Returns after a result that would stop polling (the meeting ended, the agent may
    not see it, the token was refused); raises `PushUnavailable` when the connection fails (the
    page falls back to polling).

    `meeting_id` must already have passed `parse_meeting_id`. `token()` gives the agent's current
    token; it is called to authenticate, shortly before that token expires, and once more after
    Connvo refuses one. `user_key` names the agent: one WebSocket per agent and deployment carries
    all of that agent's watches in this process. Closing the iterator (or cancelling its task)
    removes the subscription at once. Setting `leaving` removes it too, but the iterator goes on
    yielding the answers Connvo sent before it had the removal, and returns once Connvo confirms
    it (or the connection ends): so every answer Connvo sent for the page is yielded, to be
    recorded, even when the page closes while one is on its way.
    """
    started = time.monotonic()
    connection = _connection_for(deployment, user_key, token)
    watcher = connection.subscribe(meeting_id)
    answered = False  # whether Connvo has sent the first answer yet
    left = False  # whether the subscription is being left
    try:
        while True:
            if not left and leaving is not None and leaving.is_set():
                connection.leave(watcher)
                left = True
            if left:
                item = await watcher.queue.get()
            elif not answered:
                item = await _first(watcher, leaving)
            else:
                item = await _next(watcher, leaving)
            if item is None:
                continue  # `leaving` was set: leave, and take what still comes
            if item is _LEFT:
                return
            if isinstance(item, _End):
                if left:
                    return  # the connection ended while the page was closing
                if item.result is not None:
                    yield item.result
                    if not _keeps_going(item.result):
                        return
                raise _unavailable(deployment, item.detail or "it stopped")
            # Every answer Connvo sends is yielded, the same one again too: it is recorded as
            # Connvo's answer to the agent (calls on record == answers Connvo sent), and the page
            # shows nothing new for it (meetings/views/push.py compares what it shows).
            first, answered = not answered, True
            result = _result(
                item,
                deployment,
                meeting_id=meeting_id,
                latency_ms=round((time.monotonic() - started) * 1000) if first else 0,
                # The subscription is one call to Connvo; a pushed answer costs none.
                attempts=1 if first else 0,
            )
            yield result
            if not _keeps_going(result):
                return
    finally:
        connection.unsubscribe(watcher)


async def _first(watcher: _Watcher, leaving: asyncio.Event | None) -> object:
    """The watcher's first item, an _End when none comes in time, or None when `leaving` is
    set first."""
    wait = settings.CONNVO_CONNECT_TIMEOUT + settings.CONNVO_READ_TIMEOUT
    try:
        async with asyncio.timeout(wait):
            return await _next(watcher, leaving)
    except TimeoutError:
        return _End(None, f"no first answer within {wait:g} s")


async def _next(watcher: _Watcher, leaving: asyncio.Event | None) -> object:
    """The watcher's next item, or None when `leaving` is set first."""
    if leaving is None:
        return await watcher.queue.get()
    getting = asyncio.ensure_future(watcher.queue.get())
    asked = asyncio.ensure_future(leaving.wait())
    try:
        await asyncio.wait({getting, asked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        asked.cancel()
        if not getting.done():
            getting.cancel()  # a cancelled get takes nothing from the queue
    return getting.result() if getting.done() and not getting.cancelled() else None


def _unavailable(deployment: Deployment, detail: str) -> PushUnavailable:
    return PushUnavailable(
        f"Live updates from Connvo ({deployment.name}) stopped: the console lost its connection "
        "for pushed changes. The page now checks for changes at regular intervals instead.",
        detail=detail,
    )
