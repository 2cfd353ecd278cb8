"""FakeConnvo: a loopback HTTP server that speaks Connvo's getMeeting contract like Convex does.

It serves `POST /api/run/meetings/queries/getMeeting` from a seeded `World`, records every request,
can be told to misbehave, and has control endpoints under `/_fake/` so another process (the demo,
a browser test) can drive it too. The same server plays WorkOS AuthKit (fakeconnvo.workos) under
/user_management/ and /sso/jwks/, with its own call log and its own misbehaviours, and speaks
Convex's sync protocol on the WebSocket at /api/sync (fakeconnvo.sync, fakeconnvo.websocket):
subscriptions to getMeeting get the same answers as the HTTP API, and a change is pushed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import unquote, urlsplit

from websockets.http11 import Request as WebSocketRequest
from websockets.server import ServerProtocol

from fakeconnvo.behaviour import Behaviour, make_switch
from fakeconnvo.sync import (
    GET_MEETING_UDF,
    SYNC_PATH,
    Answer,
    SyncSession,
    missing_function_message,
)
from fakeconnvo.tokens import DEFAULT_ISSUER, TokenAuthority, TokenRejected
from fakeconnvo.websocket import HEARTBEAT_INTERVAL, SyncConnection, frames_logger
from fakeconnvo.workos import (
    DEFAULT_ACCESS_TOKEN_TTL,
    DEFAULT_WORKOS_API_KEY,
    DEFAULT_WORKOS_CLIENT_ID,
    AuthKit,
    WorkOSCall,
    WorkOSSession,
    is_workos_path,
)
from fakeconnvo.world import (
    Invalid,
    MeetingRecord,
    Participation,
    Returned,
    Thrown,
    User,
    World,
)

logger = logging.getLogger("fakeconnvo")

GET_MEETING_PATH: Final = "/api/run/meetings/queries/getMeeting"
CONTROL_PREFIX: Final = "/_fake/"
UNAUTHENTICATED_MESSAGE: Final = (
    "Could not verify OIDC token claim. Check that the token signature is valid and the token "
    "hasn't expired."
)

# Request-level failures Convex (or its load balancer) answers with, by HTTP status.
_FAILURES: Final[dict[int, tuple[str, str]]] = {
    400: ("BadRequest", "The request could not be parsed."),
    401: ("Unauthenticated", UNAUTHENTICATED_MESSAGE),
    403: ("Forbidden", "This deployment is not accessible with the given credentials."),
    404: ("NotFound", "This Convex deployment does not exist."),
    408: ("RequestTimeout", "The request timed out before it could be completed."),
    429: ("RateLimited", "Too many concurrent requests. Retry with backoff."),
    500: ("InternalServerError", "Your request couldn't be completed. Try again later."),
    502: ("BadGateway", "The deployment could not be reached. Try again later."),
    503: ("Overloaded", "The deployment is temporarily overloaded. Try again later."),
    504: ("GatewayTimeout", "The deployment took too long to respond. Try again later."),
}

_GARBAGE_PAGE: Final = b"""<!DOCTYPE html>
<html><head><title>Network Access Notice</title></head>
<body><h1>Please sign in to continue</h1>
<p>Your connection is being checked by the corporate web gateway.
Contact the IT service desk if this page keeps appearing.</p></body></html>
"""
_PROXY_ERROR_PAGE: Final = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""
_TOKEN_OPTIONS: Final = ("expires_in", "include_sub", "issuer", "foreign_key", "extra_claims")
# POST /_fake/workos/config keys -> FakeConnvo attributes.
_WORKOS_SETTINGS: Final = {
    "accessTokenTtl": "access_token_ttl",
    "clientId": "workos_client_id",
    "apiKey": "workos_api_key",
    "allowedRedirects": "workos_allowed_redirects",
    "authorizeMode": "workos_authorize_mode",
    "codeTtl": "workos_code_ttl",
    "refreshGrace": "workos_refresh_grace",
    "reuseRevokesSession": "workos_reuse_revokes_session",
}
_BEARER: Final = re.compile(r"Bearer (\S.*)")


@dataclass
class Call:
    """One request the fake received outside `/_fake/`; `status` is None if it got no answer."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any
    timestamp: float
    request_id: str
    status: int | None = None
    response_body: bytes = b""

    def response_json(self) -> Any:
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "json": self.json,
            "timestamp": self.timestamp,
            "requestId": self.request_id,
            "status": self.status,
        }


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    drip: float = 0.0  # seconds between bytes, status line and headers included ("trickle")


_DROP: Final = None  # a reply of None: close the connection without answering


def _json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    # Compact and non-ASCII kept as is, like serde_json.
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return _Reply(status, body, headers=headers)


def _failure(status: int, code: str, message: str, **headers: str) -> _Reply:
    return _json_reply(
        status,
        {"code": code, "message": message},
        tuple((name.replace("_", "-").title(), value) for name, value in headers.items()),
    )


def _request_id() -> str:
    return secrets.token_hex(8)


def _no_constants(name: str) -> Any:
    # Convex's JSON parser has no NaN or Infinity; Python's would accept them.
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(body: bytes) -> Any:
    """The body parsed, or raises ValueError."""
    return json.loads(body.decode("utf-8"), parse_constant=_no_constants)


def _authkit_setting(name: str, doc: str) -> property:
    """A FakeConnvo attribute that reads and writes the fake WorkOS's setting `name`."""

    def get(self: FakeConnvo) -> Any:
        return getattr(self._authkit, name)

    def set_(self: FakeConnvo, value: Any) -> None:
        with self._lock:
            setattr(self._authkit, name, value)

    return property(get, set_, doc=doc)


def _seconds(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds")
    return float(value)


class FakeConnvo:
    """A fake Connvo Convex deployment on loopback. See the package docstring for the tour."""

    def __init__(
        self,
        seed: int = 0,
        live_metrics: bool = False,
        *,
        issuer: str = DEFAULT_ISSUER,
        clock: Callable[[], float] = time.time,
        access_token_ttl: float = DEFAULT_ACCESS_TOKEN_TTL,
        workos_client_id: str = DEFAULT_WORKOS_CLIENT_ID,
        workos_api_key: str = DEFAULT_WORKOS_API_KEY,
    ) -> None:
        self.seed = seed
        self.live_metrics = live_metrics
        self._clock = clock
        self._lock = threading.RLock()
        self._tokens = TokenAuthority(issuer)
        self._world = World(seed=seed, now_ms=int(clock() * 1000))
        self._authkit = AuthKit(
            tokens=self._tokens,
            world=lambda: self._world,
            clock=clock,
            client_id=workos_client_id,
            api_key=workos_api_key,
            access_token_ttl=access_token_ttl,
        )
        self._behaviour = Behaviour()
        self._calls: list[Call] = []
        self._call_count = 0
        # Sync WebSocket connections, open and closed (until clear_sync_log), oldest first.
        self._sync_connections: list[SyncConnection] = []
        # The deployment's timestamp (ns) as Transitions carry it: moves on with every change.
        self._sync_ts = time.time_ns()
        self.sync_heartbeat = HEARTBEAT_INTERVAL
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        # Set when the server stops or goes down, so slow answers give up at once.
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        with self._lock:
            if self._server is not None or self._address is not None:
                raise RuntimeError("the fake is already started")
            self._listen(host, port)
        return self

    def stop(self) -> None:
        with self._lock:
            self._close()
            self._address = None

    def down(self) -> None:
        """Stop listening and drop open connections; `up()` listens again on the same port."""
        with self._lock:
            if self._server is None:
                raise RuntimeError("the fake is not listening")
            self._close()

    def up(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            if self._address is None:
                raise RuntimeError("the fake was never started (or was stopped): use start()")
            self._listen(*self._address)

    @property
    def url(self) -> str:
        if self._address is None:
            raise RuntimeError("the fake is not started")
        host, port = self._address
        return f"http://{host}:{port}"

    @property
    def sync_url(self) -> str:
        """The sync WebSocket, where Convex's clients connect (given `url`, they find it)."""
        return self.url.replace("http://", "ws://", 1) + "/api/sync"

    @property
    def port(self) -> int:
        if self._address is None:
            raise RuntimeError("the fake is not started")
        return self._address[1]

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Self:
        if self._address is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self._address is None:
            where = "not started"
        else:
            where = self.url if self.is_up else f"{self.url} (down)"
        return f"<FakeConnvo seed={self.seed} {where}>"

    def _listen(self, host: str, port: int) -> None:
        self._stopping = threading.Event()
        server = _Server((host, port), self)
        self._server = server
        self._address = (host, server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fakeconnvo-{self._address[1]}",
            daemon=True,
        )
        self._thread.start()

    def _close(self) -> None:
        server, self._server = self._server, None
        self._stopping.set()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise go on being served by their threads.
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    # -- the world ----------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, User]:
        """Users by label ("agent", "alice", "bob", "carol", "dmitri", "erin")."""
        return self._world.users

    @property
    def meetings(self) -> dict[str, MeetingRecord]:
        """Meeting records by Convex id; change them through the methods below when serving."""
        return self._world.meetings

    @property
    def meeting_labels(self) -> dict[str, str]:
        return dict(self._world.meeting_labels)

    @property
    def unprovisioned_sub(self) -> str:
        return self._world.unprovisioned_sub

    @property
    def issuer(self) -> str:
        return self._tokens.issuer

    def meeting_id(self, label: str) -> str:
        return self._world.meeting_id(label)

    def unknown_meeting_id(self) -> str:
        with self._lock:
            return self._world.unknown_meeting_id()

    def users_table_id(self) -> str:
        return self._world.users_table_id()

    def update_meeting(self, label_or_id: str, **fields: Any) -> MeetingRecord:
        """Set contract fields; None or DELETE removes an optional one. Bumps updatedAt unless
        given, as Connvo's mutations do."""
        with self._lock:
            if "updatedAt" not in fields:
                fields["updatedAt"] = int(self._clock() * 1000)
            record = self._world.update_meeting(label_or_id, fields)
            self._changed()
        self._push()
        return record

    def set_participant(
        self,
        label_or_id: str,
        user: str,
        *,
        role: str = "participant",
        presence: str = "invited",
    ) -> Participation:
        """Make `user` (a label, a sub or a users id) a participant, or change their role."""
        with self._lock:
            participation = self._world.set_participant(
                label_or_id, user, role=role, presence=presence
            )
            self._changed()
        self._push()
        return participation

    def remove_participant(self, label_or_id: str, user: str) -> None:
        with self._lock:
            self._world.remove_participant(label_or_id, user)
            self._changed()
        self._push()

    def reset_world(self) -> None:
        """Back to the seeded users and meetings (with timestamps relative to now)."""
        with self._lock:
            self._world = World(seed=self.seed, now_ms=int(self._clock() * 1000))
            self._changed()
        self._push()

    def _changed(self) -> None:
        """The data changed (lock held): later Transitions carry a later timestamp."""
        self._sync_ts = max(self._sync_ts + 1, time.time_ns())

    def _push(self) -> None:
        """Send each open sync connection what changed for it (lock not held: a connection
        takes its own lock, then the fake's)."""
        with self._lock:
            connections = [c for c in self._sync_connections if c.is_open]
        for connection in connections:
            connection.push()

    # -- tokens -------------------------------------------------------------------------------

    def issue_token(
        self,
        sub: str | None = None,
        expires_in: float = 3600,
        include_sub: bool = True,
        issuer: str | None = None,
        foreign_key: bool = False,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed user token; `sub` defaults to the agent's. A negative `expires_in` gives an
        expired one; `foreign_key` signs with a key the deployment does not trust."""
        return self._tokens.issue(
            sub=sub or self._world.users["agent"].sub,
            expires_in=expires_in,
            include_sub=include_sub,
            issuer=issuer,
            foreign_key=foreign_key,
            extra_claims=extra_claims,
        )

    def token_for(self, user: str, expires_in: float = 3600, **options: Any) -> str:
        """A token for a seeded user by label (or sub); options as for `issue_token`."""
        return self.issue_token(self._world.user(user).sub, expires_in=expires_in, **options)

    def jwks(self) -> dict[str, Any]:
        return self._tokens.jwks()

    def public_key_pem(self) -> str:
        return self._tokens.public_key_pem()

    # -- WorkOS AuthKit -----------------------------------------------------------------------

    access_token_ttl = _authkit_setting(
        "access_token_ttl", "Lifetime in seconds of the access tokens WorkOS issues (300)."
    )
    workos_client_id = _authkit_setting(
        "client_id", "The one WorkOS client id (application) the fake knows."
    )
    workos_api_key = _authkit_setting(
        "api_key", "The WorkOS API key: the `client_secret` and `Authorization: Bearer` it accepts."
    )
    workos_allowed_redirects = _authkit_setting(
        "allowed_redirects",
        "The redirect URIs authorize accepts (exact match); empty (the default) accepts any.",
    )
    workos_authorize_mode = _authkit_setting(
        "authorize_mode",
        '"approve" (sign in at once) or "deny" (redirect back with error=access_denied).',
    )
    workos_code_ttl = _authkit_setting(
        "code_ttl", "Seconds an authorization code can be exchanged in (600, by the fake's clock)."
    )
    workos_refresh_grace = _authkit_setting(
        "refresh_grace",
        "Seconds after an exchange in which replaying the same refresh token returns the same "
        "answer again instead of failing (0: none, strictly single-use).",
    )
    workos_reuse_revokes_session = _authkit_setting(
        "reuse_revokes_session",
        "Whether presenting a spent refresh token ends its session (reuse detection; True).",
    )

    def workos_login_as(self, user: str) -> User:
        """Have authorize sign in as `user` (a label, a sub or a users id) from now on."""
        with self._lock:
            return self._authkit.login_as(user)

    @property
    def workos_login_user(self) -> User:
        """Whom authorize signs in as, unless a login_hint names another seeded user."""
        with self._lock:
            return self._world.user(self._authkit.login_user)

    @property
    def workos_calls(self) -> list[WorkOSCall]:
        """Every request to the fake WorkOS, oldest first (not in `calls`)."""
        with self._lock:
            return list(self._authkit.calls)

    @property
    def refresh_count(self) -> int:
        """refresh_token grants received, whatever became of them (misbehaviour included)."""
        with self._lock:
            return self._authkit.refresh_count

    @property
    def sessions(self) -> dict[str, WorkOSSession]:
        """WorkOS sessions by id (a snapshot): user, whether active, current refresh token."""
        with self._lock:
            return {sid: replace(session) for sid, session in self._authkit.sessions.items()}

    def revoke_session(self, session_id: str) -> bool:
        """End a WorkOS session as POST /user_management/sessions/revoke does; True if it was
        active. Its refresh token stops working; access tokens already issued do not."""
        with self._lock:
            return self._authkit.revoke_session(session_id)

    def revoke_user_sessions(self, user: str) -> int:
        """End every active WorkOS session of `user` (a label, a sub or a users id); how many."""
        with self._lock:
            return self._authkit.revoke_user_sessions(user)

    def clear_workos_calls(self) -> None:
        """Forget the WorkOS call log and zero `refresh_count` (sessions stay)."""
        with self._lock:
            self._authkit.calls.clear()
            self._authkit.refresh_count = 0

    def reset_workos(self) -> None:
        """Forget WorkOS codes, sessions, calls and the refresh count, sign in as the agent again
        and approve; keeps the client id, API key, TTLs, grace, reuse and redirect settings."""
        with self._lock:
            self._authkit.reset()

    def workos_jwks(self) -> dict[str, Any]:
        """The JWKS served at /sso/jwks/<client id> (the deployment's key, with a certificate)."""
        return self._tokens.workos_jwks()

    # -- behaviour ----------------------------------------------------------------------------

    def misbehave(self, kind: str, **options: Any) -> None:
        """Turn on a misbehaviour (see fakeconnvo.behaviour.OPTIONS); they combine."""
        switch = make_switch(kind, options)
        with self._lock:
            self._behaviour.add(switch)

    def reset_behaviour(self) -> None:
        with self._lock:
            self._behaviour.clear()

    @property
    def behaviour(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._behaviour.describe()

    # -- the call log -------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def call_count(self) -> int:
        """Requests received on the getMeeting path, whatever became of them."""
        with self._lock:
            return self._call_count

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._call_count = 0

    # -- serving the API ----------------------------------------------------------------------

    def _serve_api(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[_Reply | None, Call]:
        try:
            parsed = _parse_json(body) if body else None
        except ValueError:
            parsed = None
        call = Call(
            method=method,
            path=path,
            headers=headers,
            body=body,
            json=parsed,
            timestamp=time.time(),
            request_id=_request_id(),
        )
        with self._lock:
            self._calls.append(call)
            if urlsplit(path).path == GET_MEETING_PATH:
                self._call_count += 1
            slow = self._behaviour.take("slow")
            stopping = self._stopping
        if slow is not None and stopping.wait(slow.options["delay"]):
            return _DROP, call  # stopped or taken down while "thinking"
        with self._lock:
            reply = self._answer(method, urlsplit(path).path, headers, body, call.request_id)
            trickle = self._behaviour.take("trickle") if reply is not None else None
        if trickle is not None:
            reply = replace(reply, drip=trickle.options["delay"])
        if reply is not None:
            call.status = reply.status
            call.response_body = reply.body
        return reply, call

    def _answer(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, request_id: str
    ) -> _Reply | None:
        behaviour = self._behaviour
        if behaviour.take("reset"):
            return _DROP
        if behaviour.take("proxy_error"):
            return _Reply(502, _PROXY_ERROR_PAGE, "text/html")
        if behaviour.take("garbage"):
            return _Reply(200, _GARBAGE_PAGE, "text/html; charset=utf-8")
        failing = behaviour.take("status") or behaviour.take("overloaded")
        if failing is not None:
            options = failing.options
            status = options.get("status", 503)
            default_code, default_message = _FAILURES.get(status, ("HttpError", "Request failed."))
            extra = {}
            if "retry_after" in options:
                extra["retry_after"] = str(options["retry_after"])
            return _failure(
                status,
                options.get("code", default_code),
                options.get("message", default_message),
                **extra,
            )

        if path != GET_MEETING_PATH:
            return _failure(404, "NotFound", f"No route for {method} {path}")
        if method != "POST":
            return _failure(
                405, "MethodNotAllowed", f"{method} is not allowed here; use POST", allow="POST"
            )
        return self._get_meeting(headers, body, request_id)

    def _get_meeting(self, headers: Mapping[str, str], body: bytes, request_id: str) -> _Reply:
        client = headers.get("convex-client")
        if client is not None and "-" not in client:
            return _failure(
                400,
                "BadConvexClient",
                f"Invalid Convex-Client header {client!r}: expected <client>-<semver>",
            )

        try:
            request = _parse_json(body)
        except ValueError as error:
            return _failure(400, "BadJsonBody", f"Failed to parse the request body: {error}")
        if not isinstance(request, dict):
            return _failure(400, "BadJsonBody", "The request body must be a JSON object")
        args = request.get("args")
        if not isinstance(args, dict):
            return _failure(400, "BadJsonBody", "`args` must be a JSON object of the arguments")
        if "format" in request and request["format"] != "json":
            return _failure(
                400, "BadRequest", f'Unsupported format {request["format"]!r}: use "json"'
            )

        identity: dict[str, Any] | None = None
        authorization = headers.get("authorization")
        if authorization is not None:
            bearer = _BEARER.fullmatch(authorization.strip())
            if bearer is None:
                return _failure(
                    401,
                    "InvalidAuthHeader",
                    "The Authorization header must be of the form 'Bearer <token>'",
                )
            if self._behaviour.take("expired_tokens"):
                return _failure(401, "Unauthenticated", UNAUTHENTICATED_MESSAGE)
            try:
                identity = self._tokens.verify(bearer.group(1).strip())
            except TokenRejected as rejected:
                logger.debug("token rejected: %s", rejected)
                return _failure(401, "Unauthenticated", UNAUTHENTICATED_MESSAGE)

        answer = self._meeting_answer(identity, args, request_id)
        payload: dict[str, Any]
        if not answer.failed:
            payload = {"status": "success", "value": answer.value, "logLines": []}
        else:
            payload = {"status": "error", "errorMessage": answer.error_message()}
            if answer.data is not None:
                payload["errorData"] = answer.data
            payload["logLines"] = []
        status = 560 if self._behaviour.take("status_560") else 200
        return _json_reply(status, payload)

    def _meeting_answer(
        self, identity: Mapping[str, Any] | None, args: Mapping[str, Any], request_id: str
    ) -> Answer:
        """getMeeting's answer for the holder of `identity`, over HTTP or the sync protocol alike
        (lock held)."""
        if self.live_metrics:
            self._world.drift_live_metrics(self._clock())
        match self._world.get_meeting(identity, args):
            case Returned(value=value):
                if value is not None:
                    for drift in self._behaviour.take_all("schema_drift"):
                        if drift.options.get("drop"):
                            value.pop(drift.options["field"], None)
                        else:
                            value[drift.options["field"]] = drift.options["value"]
                return Answer(value=value, request_id=request_id)
            case Thrown(data=data):
                # A ConvexError's message is its data as JSON (convex/values'
                # stringifyValueForError); production keeps ConvexErrors, data and all.
                text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                return Answer(
                    message=f"Uncaught ConvexError: {text}", data=data, request_id=request_id
                )
            case Invalid(message=message):
                # Production deployments hide every other error's text behind the request id.
                redacted = self._behaviour.take("redact") is not None
                return Answer(message="" if redacted else message, request_id=request_id)
        raise AssertionError("getMeeting has no other outcome")

    # -- serving the sync protocol ------------------------------------------------------------

    @property
    def sync_connections(self) -> list[dict[str, Any]]:
        """Each sync WebSocket, open or closed, oldest first: its client, user (the token's
        subject, never the token), versions, messages and, per subscription, the answers sent
        and how many of them were pushed after a change."""
        with self._lock:
            connections = list(self._sync_connections)
        return [connection.describe() for connection in connections]

    @property
    def answers_sent(self) -> int:
        """Query answers sent over sync WebSockets (a subscription's first one included)."""
        return sum(self._sync_counts()[0])

    @property
    def answers_pushed(self) -> int:
        """Of the answers sent, those pushed because a meeting (or the world) changed."""
        return sum(self._sync_counts()[1])

    def drop_sync_connections(self) -> int:
        """Reset every open sync WebSocket, as a network failure would; how many there were."""
        with self._lock:
            connections = [c for c in self._sync_connections if c.is_open]
        for connection in connections:
            connection.drop()
        return len(connections)

    def clear_sync_log(self) -> None:
        """Forget closed sync connections and zero the answer counts of open ones."""
        with self._lock:
            self._sync_connections = [c for c in self._sync_connections if c.is_open]
            connections = list(self._sync_connections)
        for connection in connections:
            connection.forget_counts()

    def _sync_counts(self) -> tuple[list[int], list[int]]:
        with self._lock:
            connections = list(self._sync_connections)
        counts = [connection.counts() for connection in connections]
        return [sent for sent, _ in counts], [pushed for _, pushed in counts]

    def _sync_upgrade(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[_Reply | None, bool, Call]:
        """Log an upgrade request; an HTTP answer instead of the upgrade (sync_refuse, or not a
        GET), and whether the connection goes silent."""
        call = Call(
            method=method,
            path=path,
            headers=headers,
            body=b"",
            json=None,
            timestamp=time.time(),
            request_id=_request_id(),
        )
        with self._lock:
            self._calls.append(call)
            if method != "GET":
                refusal = _failure(405, "MethodNotAllowed", f"{method} is not allowed here")
            elif (refused := self._behaviour.take("sync_refuse")) is not None:
                status = refused.options["status"]
                refusal = _failure(status, *_FAILURES.get(status, ("HttpError", "Failed.")))
            else:
                refusal = None
            silent = refusal is None and self._behaviour.take("sync_silent") is not None
        if refusal is not None:
            call.status = refusal.status
            call.response_body = refusal.body
        return refusal, silent, call

    def _sync_session(self) -> SyncSession:
        return SyncSession(
            verify=self._sync_verify,
            run=self._sync_run,
            timestamp=lambda: self._sync_ts,
            clock=self._clock,
        )

    def _sync_verify(self, token: str) -> dict[str, Any]:
        """The token's claims; ValueError with Convex's words if it is refused, as over HTTP."""
        with self._lock:
            if self._behaviour.take("sync_reject_token") is not None:
                raise ValueError(UNAUTHENTICATED_MESSAGE)
        try:
            return self._tokens.verify(token)
        except TokenRejected as rejected:
            logger.debug("sync token rejected: %s", rejected)
            raise ValueError(UNAUTHENTICATED_MESSAGE) from None

    def _sync_run(self, identity: dict[str, Any] | None, udf_path: str, args: list[Any]) -> Answer:
        request_id = _request_id()
        if udf_path != GET_MEETING_UDF:
            return Answer(message=missing_function_message(udf_path), request_id=request_id)
        if len(args) != 1 or not isinstance(args[0], dict):
            # Convex functions take one object of named arguments.
            return Answer(
                message=f"ArgumentValidationError: expected one object of arguments, got {args}",
                request_id=request_id,
            )
        with self._lock:
            return self._meeting_answer(identity, args[0], request_id)

    def _sync_opened(self, connection: SyncConnection) -> None:
        with self._lock:
            self._sync_connections.append(connection)

    # -- serving WorkOS -----------------------------------------------------------------------

    def _serve_workos(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[_Reply | None, WorkOSCall]:
        """Answer a WorkOS request; None: drop the connection unanswered. Only workos_* switches
        apply, and every request is handled whole under the lock, so a refresh token is spent
        by exactly one of any number of concurrent exchanges."""
        with self._lock:
            call, request = self._authkit.receive(method, target, headers, body)
            slow = self._behaviour.take("workos_slow")
            stopping = self._stopping
        if slow is not None:
            call.misbehaviour = "workos_slow"
            if stopping.wait(slow.options["delay"]):
                return None, call  # stopped or taken down while "thinking"
        with self._lock:
            if self._behaviour.take("workos_down"):
                call.misbehaviour = "workos_down"
                return None, call
            if self._behaviour.take("workos_garbage"):
                # A proxy's or captive portal's page, with a 200, instead of WorkOS's JSON.
                call.misbehaviour = "workos_garbage"
                call.status = 200
                page = b"<html><body><h1>Please sign in to the network</h1></body></html>"
                return _Reply(200, page, "text/html; charset=utf-8", {}), call
            failing = self._behaviour.take("workos_error")
            if failing is not None:
                call.misbehaviour = "workos_error"
                answer = self._authkit.server_error(call, failing.options)
            else:
                answer = self._authkit.answer(call, request)
            call.status = answer.status
            if self._behaviour.take("workos_reply_lost"):
                call.misbehaviour = "workos_reply_lost"
                return None, call
        return _Reply(answer.status, answer.body, answer.content_type, answer.headers), call

    # -- serving the control endpoints --------------------------------------------------------

    def _serve_control(self, method: str, path: str, body: bytes) -> _Reply:
        try:
            request = _parse_json(body) if body else {}
            if not isinstance(request, dict):
                raise ValueError("the body must be a JSON object")
            return self._control(method, path.removeprefix(CONTROL_PREFIX).strip("/"), request)
        except KeyError as error:
            return _json_reply(404, {"error": str(error.args[0] if error.args else error)})
        except (ValueError, TypeError) as error:
            return _json_reply(400, {"error": str(error)})

    def _control(self, method: str, route: str, request: dict[str, Any]) -> _Reply:
        parts = [unquote(part) for part in route.split("/")]
        match method, parts:
            case "GET", ["world"]:
                with self._lock:
                    world = self._world.describe()
                return _json_reply(
                    200,
                    {
                        "url": self.url,
                        "issuer": self.issuer,
                        **world,
                        "unknownMeetingId": self.unknown_meeting_id(),
                    },
                )
            case "GET", ["jwks"]:
                return _json_reply(200, self.jwks())
            case "POST", ["tokens"]:
                options = {key: request[key] for key in _TOKEN_OPTIONS if key in request}
                if "user" in request:
                    token = self.token_for(request["user"], **options)
                else:
                    token = self.issue_token(request.get("sub"), **options)
                return _json_reply(200, {"token": token})
            case "GET", ["calls"]:
                with self._lock:
                    calls = [call.describe() for call in self._calls]
                    count = self._call_count
                return _json_reply(200, {"callCount": count, "calls": calls})
            case "DELETE", ["calls"]:
                self.clear_calls()
                return _json_reply(200, {"callCount": 0})
            case "GET", ["misbehave"]:
                return _json_reply(200, {"behaviour": self.behaviour})
            case "POST", ["misbehave"]:
                options = dict(request)
                self.misbehave(str(options.pop("kind", "")), **options)
                return _json_reply(200, {"behaviour": self.behaviour})
            case "POST", ["reset"]:
                self.reset_behaviour()
                if request.get("calls"):
                    self.clear_calls()
                    self.clear_sync_log()
                if request.get("world"):
                    self.reset_world()
                if request.get("workos"):
                    self.reset_workos()
                return _json_reply(200, {"behaviour": []})
            case _, ["workos", *rest]:
                return self._control_workos(method, rest, request)
            case "GET", ["sync"]:
                return self._sync_state()
            case "DELETE", ["sync"]:
                self.clear_sync_log()
                return self._sync_state()
            case "POST", ["sync", "drop"]:
                return _json_reply(200, {"dropped": self.drop_sync_connections()})
            case "POST", ["meetings", meeting]:
                record = self.update_meeting(meeting, **request)
                return _json_reply(200, {"id": record.id, "fields": record.fields})
            case "POST", ["meetings", meeting, "participants", user]:
                participation = self.set_participant(meeting, user, **request)
                return _json_reply(
                    200, {"role": participation.role, "presence": participation.presence}
                )
            case "DELETE", ["meetings", meeting, "participants", user]:
                self.remove_participant(meeting, user)
                return _json_reply(200, {})
        return _json_reply(404, {"error": f"no control endpoint {method} /_fake/{route}"})

    def _control_workos(self, method: str, parts: list[str], request: dict[str, Any]) -> _Reply:
        match method, parts:
            case "GET", []:
                return self._workos_state()
            case "POST", ["config"]:
                unknown = set(request) - set(_WORKOS_SETTINGS)
                if unknown:
                    raise ValueError(f"unknown WorkOS settings: {', '.join(sorted(unknown))}")
                for key, value in request.items():
                    if key in ("accessTokenTtl", "codeTtl", "refreshGrace"):
                        value = _seconds(value, key)
                    elif key == "reuseRevokesSession" and not isinstance(value, bool):
                        raise ValueError("reuseRevokesSession must be true or false")
                    elif key in ("clientId", "apiKey", "authorizeMode") and not isinstance(
                        value, str
                    ):
                        raise ValueError(f"{key} must be a string")
                    setattr(self, _WORKOS_SETTINGS[key], value)
                return self._workos_state()
            case "POST", ["login"]:
                user = self.workos_login_as(str(request.get("user", "")))
                return _json_reply(200, {"loginUser": user.label, "sub": user.sub})
            case "GET", ["refresh_count"]:
                return _json_reply(200, {"refreshCount": self.refresh_count})
            case "GET", ["sessions"]:
                sessions = {sid: session.describe() for sid, session in self.sessions.items()}
                return _json_reply(200, {"sessions": sessions})
            case "POST", ["sessions", session_id, "revoke"]:
                return _json_reply(200, {"revoked": self.revoke_session(session_id)})
            case "POST", ["users", user, "revoke"]:
                return _json_reply(200, {"revoked": self.revoke_user_sessions(user)})
            case "GET", ["calls"]:
                with self._lock:
                    calls = [call.describe() for call in self._authkit.calls]
                    count = self._authkit.refresh_count
                return _json_reply(200, {"refreshCount": count, "calls": calls})
            case "DELETE", ["calls"]:
                self.clear_workos_calls()
                return _json_reply(200, {"refreshCount": 0})
            case "POST", ["reset"]:
                self.reset_workos()
                return self._workos_state()
        route = "/".join(["workos", *parts])
        return _json_reply(404, {"error": f"no control endpoint {method} /_fake/{route}"})

    def _sync_state(self) -> _Reply:
        sent, pushed = self._sync_counts()
        return _json_reply(
            200,
            {
                "syncUrl": self.sync_url,
                "answersSent": sum(sent),
                "answersPushed": sum(pushed),
                "connections": self.sync_connections,
            },
        )

    def _workos_state(self) -> _Reply:
        with self._lock:
            state = self._authkit.describe()
        return _json_reply(200, {"baseUrl": self.url, **state})


class _Switches:
    """The fake's switches as a sync connection takes them (under the fake's lock)."""

    def __init__(self, fake: FakeConnvo) -> None:
        self._fake = fake

    def take(self, kind: str) -> bool:
        with self._fake._lock:
            return self._fake._behaviour.take(kind) is not None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeConnvo) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._aborted: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a box without DNS.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def abort(self, connection: socket.socket) -> None:
        """Have `connection` closed with a TCP reset instead of an orderly goodbye."""
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._connections_lock:
            self._aborted.add(connection)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # OSError: already closed by its own thread.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            aborted = request in self._aborted
            self._aborted.discard(request)
        if aborted:
            # No SHUT_WR first: with SO_LINGER 0, close() alone sends the RST.
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up, or a connection dropped by down(): not worth a traceback.
        logger.debug("error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real deployment
    server_version = "fakeconnvo"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are closed after this
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's
    # delayed ACK (~40 ms a request on keep-alive connections).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            self._send(_failure(400, "BadRequest", "Unreadable request body"))
            self.close_connection = True
            return
        fake = self.server.fake
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = urlsplit(self.path).path
        if path.startswith(CONTROL_PREFIX):
            self._send(fake._serve_control(self.command, path, body))
            return
        if SYNC_PATH.fullmatch(path):
            self._serve_sync(fake, headers)
            return
        if is_workos_path(path):
            # Logged without the query: it can carry a code or a state.
            workos_reply, _ = fake._serve_workos(self.command, self.path, headers, body)
            if workos_reply is None:
                self._reset()
                logger.info("%s %s -> connection reset", self.command, path)
                return
            self._send(workos_reply)
            logger.info("%s %s -> %s", self.command, path, workos_reply.status)
            return
        reply, call = fake._serve_api(self.command, self.path, headers, body)
        if reply is None:
            self._reset()
            logger.info("%s %s -> connection reset", self.command, self.path)
            return
        self._send(reply)
        logger.info("%s %s -> %s [%s]", self.command, self.path, reply.status, call.request_id)

    def _serve_sync(self, fake: FakeConnvo, headers: dict[str, str]) -> None:
        """Upgrade to the sync WebSocket and serve it on this thread until it closes."""
        self.close_connection = True  # whatever happens, no more HTTP on this connection
        refusal, silent, call = fake._sync_upgrade(self.command, self.path, headers)
        if refusal is not None:
            self._send(refusal)
            logger.info("sync upgrade %s -> %s", self.path, refusal.status)
            return
        # The request again, as it came, for the protocol's own parser (which then goes on to
        # read frames): http.server has already read it off the socket.
        protocol = ServerProtocol(logger=frames_logger)
        header_lines = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        protocol.receive_data(self.raw_requestline + header_lines.encode("latin-1") + b"\r\n")
        request = next(iter(protocol.events_received()), None)
        if not isinstance(request, WebSocketRequest):
            self._send(_failure(400, "BadRequest", "Not a WebSocket handshake"))
            return
        response = protocol.accept(request)
        call.status = response.status_code
        protocol.send_response(response)
        logger.info("sync upgrade %s -> %s", self.path, response.status_code)
        if response.status_code != 101:
            # Not a WebSocket handshake: websockets' answer says why.
            self.connection.sendall(b"".join(protocol.data_to_send()))
            return
        connection = SyncConnection(
            sock=self.connection,
            protocol=protocol,
            session=fake._sync_session(),
            switches=_Switches(fake),
            abort=lambda: self.server.abort(self.connection),
            client=headers.get("convex-client"),
            silent=silent,
            heartbeat=fake.sync_heartbeat,
        )
        # Listed before the client hears 101, so that a push right after its handshake finds it.
        fake._sync_opened(connection)
        self.connection.sendall(b"".join(protocol.data_to_send()))
        connection.serve()

    def _reset(self) -> None:
        self.close_connection = True
        self.server.abort(self.connection)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        chunks = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.drip:
            self._trickle(reply)
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _trickle(self, reply: _Reply) -> None:
        """The reply, status line and headers (as BaseHTTPRequestHandler has buffered them) and
        body, a byte every `reply.drip` seconds, until it is written, the client hangs up or the
        fake stops."""
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer) + (b"" if self.command == "HEAD" else reply.body)
        self._headers_buffer = []
        stopping = self.server.fake._stopping
        try:
            for index in range(len(data)):
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
                if stopping.wait(reply.drip):
                    break
        except OSError:
            pass  # the console gave up and hung up
        self.close_connection = True
