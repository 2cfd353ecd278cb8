"""Convex's sync protocol as the fake deployment speaks it: what a client sends, parsed as
strictly as Convex parses it, and one session's state (query set, identity, versions) deciding
what goes back.

No I/O here: fakeconnvo.websocket carries the messages over the WebSocket. Read from convex-js
(src/browser/sync/protocol.ts) and the Rust client's sync_types (types/json.rs), which the
official Python client wraps: versions are small counters, timestamps are u64 nanoseconds sent as
base64 of their 8 little-endian bytes, and a Transition's startVersion must be exactly the
previous endVersion.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Canonical, with the ".js" and ":function" Convex adds to the path a client sends.
GET_MEETING_UDF: Final = "meetings/queries.js:getMeeting"
# The Rust client (and so the Python one) connects to /api/sync; convex-js to
# /api/<its version>/sync.
SYNC_PATH: Final = re.compile(r"/api(?:/\d+\.\d+\.\d+[0-9A-Za-z.+-]*)?/sync")
PING: Final = {"type": "Ping"}

# Messages Convex sends, word for word where the fake plays the same part.
INVALID_JSON_PREFIX: Final = "Received Invalid JSON on websocket: "
TOKEN_EXPIRED_MESSAGE: Final = "Convex token identity expired"
ADMIN_KEY_MESSAGE: Final = "The provided admin key was invalid for this instance"

_U32_MAX: Final = 2**32 - 1
_I64_MAX: Final = 2**63 - 1
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ProtocolError(Exception):
    """The client broke the protocol; Convex answers FatalError with this text and closes."""


class EndSession(Exception):
    """The session ends after `message` (an AuthError or a FatalError) is sent."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(message.get("error"))
        self.message = message


# -- what a client sends ----------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    session_id: str
    connection_count: int
    last_close_reason: str | None
    max_observed_timestamp: int | None
    client_ts: int | None


@dataclass(frozen=True)
class AddQuery:
    query_id: int
    udf_path: str
    args: list[Any]
    journal: str | None = None
    component_path: str | None = None


@dataclass(frozen=True)
class RemoveQuery:
    query_id: int


@dataclass(frozen=True)
class ModifyQuerySet:
    base_version: int
    new_version: int
    modifications: tuple[AddQuery | RemoveQuery, ...]


@dataclass(frozen=True)
class Authenticate:
    token_type: str  # "User", "Admin" or "None"
    base_version: int
    value: str | None = field(default=None, repr=False)  # a token: never printed

    def __str__(self) -> str:
        return f"Authenticate({self.token_type}, baseVersion={self.base_version})"


@dataclass(frozen=True)
class Request:
    """A Mutation or an Action (`kind`); the fake has neither, and says so."""

    kind: str
    request_id: int
    udf_path: str
    args: Any


@dataclass(frozen=True)
class Event:
    event_type: str
    event: Any


ClientMessage = Connect | ModifyQuerySet | Authenticate | Request | Event


def parse_client_message(text: str) -> ClientMessage:
    """A client message from a WebSocket text frame, or ProtocolError saying what is wrong."""
    try:
        raw = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"{INVALID_JSON_PREFIX}{error}") from None
    try:
        return _client_message(raw)
    except _Invalid as error:
        raise ProtocolError(f"{INVALID_JSON_PREFIX}{error}") from None


class _Invalid(Exception):
    pass


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _client_message(raw: Any) -> ClientMessage:
    if not isinstance(raw, dict):
        raise _Invalid("a message must be a JSON object")
    kind = raw.get("type")
    match kind:
        case "Connect":
            last_close_reason = _optional(raw, "lastCloseReason", _string)
            observed = _optional(raw, "maxObservedTimestamp", _string)
            client_ts = _optional(raw, "clientTs", _i64)
            return Connect(
                session_id=_session_id(_required(raw, "sessionId", _string)),
                connection_count=_required(raw, "connectionCount", _u32),
                last_close_reason=last_close_reason,
                max_observed_timestamp=None if observed is None else decode_u64(observed),
                client_ts=client_ts,
            )
        case "ModifyQuerySet":
            modifications = _required(raw, "modifications", _list)
            return ModifyQuerySet(
                base_version=_required(raw, "baseVersion", _u32),
                new_version=_required(raw, "newVersion", _u32),
                modifications=tuple(_modification(item) for item in modifications),
            )
        case "Authenticate":
            base_version = _required(raw, "baseVersion", _u32)
            token_type = raw.get("tokenType")
            if token_type == "None":
                return Authenticate("None", base_version)
            if token_type in ("User", "Admin"):
                return Authenticate(token_type, base_version, _required(raw, "value", _string))
            raise _Invalid(f"unknown variant tokenType {token_type!r}")
        case "Mutation" | "Action":
            if "args" not in raw:
                raise _Invalid(f"{kind} lacks args")
            return Request(
                kind=kind,
                request_id=_required(raw, "requestId", _u32),
                udf_path=_udf_path(_required(raw, "udfPath", _string)),
                args=raw["args"],
            )
        case "Event":
            return Event(_required(raw, "eventType", _string), raw.get("event"))
    raise _Invalid(f"unknown variant type {kind!r}")


def _modification(raw: Any) -> AddQuery | RemoveQuery:
    if not isinstance(raw, dict):
        raise _Invalid("a query set modification must be a JSON object")
    match raw.get("type"):
        case "Add":
            # Absent args are an empty argument list, as in the Rust types.
            args = raw.get("args", [])
            if not isinstance(args, list):
                raise _Invalid("args must be an array")
            return AddQuery(
                query_id=_required(raw, "queryId", _u32),
                udf_path=_udf_path(_required(raw, "udfPath", _string)),
                args=args,
                journal=_optional(raw, "journal", _string),
                component_path=_optional(raw, "componentPath", _string),
            )
        case "Remove":
            return RemoveQuery(_required(raw, "queryId", _u32))
    raise _Invalid(f"unknown variant type {raw.get('type')!r}")


def _required(raw: Mapping[str, Any], key: str, check: Callable[[Any, str], Any]) -> Any:
    if key not in raw:
        raise _Invalid(f"missing field `{key}`")
    return check(raw[key], key)


def _optional(raw: Mapping[str, Any], key: str, check: Callable[[Any, str], Any]) -> Any:
    value = raw.get(key)
    return None if value is None else check(value, key)


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"`{key}` must be a string")
    return value


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"`{key}` must be an array")
    return value


def _integer(value: Any, key: str, low: int, high: int) -> int:
    # JSON 1.0 is not an integer to serde, and neither is true.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Invalid(f"`{key}` must be an integer from {low} to {high}")
    return value


def _u32(value: Any, key: str) -> int:
    return _integer(value, key, 0, _U32_MAX)


def _i64(value: Any, key: str) -> int:
    return _integer(value, key, -_I64_MAX - 1, _I64_MAX)


def _session_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _Invalid("`sessionId` must be a UUID") from None


def _udf_path(value: str) -> str:
    """The path as sent; checked the way Convex parses one (module, then `:function`)."""
    canonical_udf_path(value)
    return value


def canonical_udf_path(path: str) -> str:
    """`module.js:function` as Convex canonicalises a path: ".js" added, function "default"."""
    module, _, function = path.rpartition(":") if ":" in path else (path, "", "")
    if not module or module.startswith("/") or module.endswith("/") or "//" in module:
        raise _Invalid(f"invalid function path {path!r}")
    if ":" in path and not _IDENTIFIER.fullmatch(function):
        raise _Invalid(f"invalid function name in {path!r}")
    if not module.endswith(".js"):
        module += ".js"
    return f"{module}:{function or 'default'}"


def encode_u64(number: int) -> str:
    """A u64 as Convex sends one in JSON: base64 of its 8 little-endian bytes."""
    return base64.b64encode(number.to_bytes(8, "little")).decode()


def decode_u64(text: str) -> int:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid("a timestamp must be base64") from None
    if len(raw) != 8:
        raise _Invalid("u64 must be 8 bytes")
    number = int.from_bytes(raw, "little")
    if number > _I64_MAX:
        raise _Invalid("timestamp out of range")
    return number


# -- what the session sends back --------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One run of a query: a value, or an error: `message` after the request-id line ("" when a
    production deployment redacts it) and `data` for a ConvexError."""

    value: Any = None
    message: str | None = None
    data: Any = None
    request_id: str = ""

    @property
    def failed(self) -> bool:
        return self.message is not None

    def error_message(self) -> str:
        """The error's text as Convex sends it, over HTTP and the sync protocol alike."""
        prefix = f"[Request ID: {self.request_id}] Server Error"
        return f"{prefix}\n{self.message}" if self.message else prefix

    def key(self) -> str:
        """Equal for equal answers (whatever the request id): whether a subscriber gets it."""
        return json.dumps([self.value, self.message, self.data], sort_keys=True, default=str)


@dataclass
class Subscription:
    """One query in a session's query set, and what the fake has sent for it."""

    query_id: int
    udf_path: str
    args: list[Any]
    answer_key: str | None = None
    # Counted by the connection as it sends: QueryUpdated/QueryFailed, the first one included,
    # and of those the ones sent because the deployment's data changed.
    answers: int = 0
    pushed: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "queryId": self.query_id,
            "udfPath": self.udf_path,
            "args": self.args,
            "answers": self.answers,
            "pushed": self.pushed,
        }


@dataclass(frozen=True)
class Identity:
    """Who the session runs queries as: verified claims (None: nobody) and when they expire."""

    claims: dict[str, Any] | None = None

    @property
    def expires_at(self) -> float | None:
        exp = (self.claims or {}).get("exp")
        return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


# run(identity claims or None, canonical udf path, args) -> Answer
QueryRunner = Callable[[dict[str, Any] | None, str, list[Any]], Answer]


class SyncSession:
    """One client's sync state. Not locked: its connection serialises calls.

    `handle` takes a parsed message and returns the messages to send; `refresh` reruns the
    query set after the deployment's data changed. Either raises EndSession when Convex would
    answer AuthError or FatalError and close.
    """

    def __init__(
        self,
        *,
        verify: Callable[[str], dict[str, Any]],
        run: QueryRunner,
        timestamp: Callable[[], int],
        clock: Callable[[], float],
    ) -> None:
        self._verify = verify
        self._run = run
        self._timestamp = timestamp
        self._clock = clock
        # What the client has asked for so far...
        self._query_set_version = 0
        self._identity_version = 0
        self._identity = Identity()
        # ...and the state the last Transition brought it to.
        self.version: dict[str, int] = {"querySet": 0, "identity": 0, "ts": 0}
        self.subscriptions: dict[int, Subscription] = {}
        self.connect: Connect | None = None
        self.user: str | None = None  # the identity's subject, for the log

    def handle(self, message: ClientMessage) -> list[dict[str, Any]]:
        match message:
            case Connect():
                self.connect = message
                return []
            case ModifyQuerySet():
                return self._modify_query_set(message)
            case Authenticate():
                return self._authenticate(message)
            case Request(kind=kind, request_id=request_id, udf_path=udf_path):
                return [_no_function(kind, request_id, udf_path)]
            case Event():
                return []
        raise AssertionError(f"unhandled message {message!r}")

    def refresh(self) -> list[dict[str, Any]]:
        """After a change of data: a Transition with every answer that changed, if any did."""
        modifications = self._changes(removed=())
        # Nothing changed: no Transition, and the client's versions stay where they are.
        return [self._transition(modifications)] if modifications else []

    def _modify_query_set(self, message: ModifyQuerySet) -> list[dict[str, Any]]:
        if message.base_version != self._query_set_version:
            raise _fatal(
                f"Base version {message.base_version} passed up doesn't match the current "
                f"version {self._query_set_version}"
            )
        if message.new_version <= message.base_version:
            raise _fatal(f"New version {message.new_version} is not above the base version")
        removed = []
        for modification in message.modifications:
            match modification:
                case AddQuery(query_id=query_id, udf_path=udf_path, args=args):
                    if query_id in self.subscriptions:
                        raise _fatal(f"Duplicate query ID: {query_id}")
                    self.subscriptions[query_id] = Subscription(query_id, udf_path, args)
                case RemoveQuery(query_id=query_id):
                    if self.subscriptions.pop(query_id, None) is None:
                        raise _fatal(f"Nonexistent query id: {query_id}")
                    removed.append(query_id)
        self._query_set_version = message.new_version
        return [self._transition(self._changes(removed=removed))]

    def _authenticate(self, message: Authenticate) -> list[dict[str, Any]]:
        if message.base_version != self._identity_version:
            raise _fatal(
                f"Identity base version {message.base_version} doesn't match the current "
                f"version {self._identity_version}"
            )
        match message.token_type:
            case "User":
                try:
                    claims = self._verify(message.value or "")
                except ValueError as rejected:
                    raise EndSession(self._auth_error(str(rejected), attempted=True)) from None
                identity = Identity(claims)
            case "Admin":
                # The fake deployment has no admin key.
                raise EndSession(self._auth_error(ADMIN_KEY_MESSAGE, attempted=True))
            case _:
                identity = Identity()
        self._identity = identity
        self._identity_version += 1
        sub = (identity.claims or {}).get("sub")
        self.user = sub if isinstance(sub, str) else None
        return [self._transition(self._changes(removed=()))]

    def _changes(self, *, removed: Any) -> list[dict[str, Any]]:
        """The query set's modifications since the last Transition: the removed queries, and
        every answer that changed (the query set is rerun)."""
        expires_at = self._identity.expires_at
        if self.subscriptions and expires_at is not None and expires_at <= self._clock():
            # Convex checks the identity each time it runs the query set.
            raise EndSession(self._auth_error(TOKEN_EXPIRED_MESSAGE, attempted=False))
        modifications: list[dict[str, Any]] = [
            {"type": "QueryRemoved", "queryId": query_id} for query_id in removed
        ]
        for subscription in self.subscriptions.values():
            try:
                path = canonical_udf_path(subscription.udf_path)
            except _Invalid:  # checked when parsed
                raise AssertionError("an unparsed path in the query set") from None
            answer = self._run(self._identity.claims, path, subscription.args)
            key = answer.key()
            if key == subscription.answer_key:
                continue  # Convex sends only answers that changed
            subscription.answer_key = key
            modifications.append(_modification_for(subscription.query_id, answer))
        return modifications

    def _transition(self, modifications: list[dict[str, Any]]) -> dict[str, Any]:
        """The Transition from the last one's end to the current versions and timestamp."""
        start = dict(self.version)
        self.version = {
            "querySet": self._query_set_version,
            "identity": self._identity_version,
            "ts": max(self.version["ts"], self._timestamp()),
        }
        return {
            "type": "Transition",
            "startVersion": _encode_version(start),
            "endVersion": _encode_version(self.version),
            "modifications": modifications,
        }

    def _auth_error(self, error: str, *, attempted: bool) -> dict[str, Any]:
        return {
            "type": "AuthError",
            "error": error,
            # The identity version of the last Transition, as the real sync worker reports.
            "baseVersion": self.version["identity"],
            "authUpdateAttempted": attempted,
        }


def _encode_version(version: Mapping[str, int]) -> dict[str, Any]:
    return {
        "querySet": version["querySet"],
        "identity": version["identity"],
        "ts": encode_u64(version["ts"]),
    }


def _modification_for(query_id: int, answer: Answer) -> dict[str, Any]:
    if not answer.failed:
        return {
            "type": "QueryUpdated",
            "queryId": query_id,
            "value": answer.value,
            "logLines": [],
            "journal": None,
        }
    failed: dict[str, Any] = {
        "type": "QueryFailed",
        "queryId": query_id,
        "errorMessage": answer.error_message(),
        "logLines": [],
        "journal": None,
    }
    if answer.data is not None:
        failed["errorData"] = answer.data
    return failed


def _no_function(kind: str, request_id: int, udf_path: str) -> dict[str, Any]:
    return {
        "type": f"{kind}Response",
        "requestId": request_id,
        "success": False,
        "result": missing_function_message(udf_path),
        "logLines": [],
    }


def missing_function_message(udf_path: str) -> str:
    """Convex's words for a function the deployment does not have (the path shown without the
    ".js" of its canonical form)."""
    shown = udf_path.replace(".js:", ":")
    return (
        f"Could not find public function for '{shown}'. Did you forget to run "
        "`npx convex dev` or `npx convex deploy`?"
    )


def _fatal(error: str) -> EndSession:
    return EndSession({"type": "FatalError", "error": error})
