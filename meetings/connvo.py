"""The Connvo client: the only code in the console that speaks HTTP to a Connvo deployment.

`get_meeting()` calls Connvo's `meetings:queries:getMeeting` query over Convex's HTTP API and
returns a typed `Lookup`, or raises one `ConnvoError` subclass per failure mode, each with a message
written for a support agent (plus `NoToken` and `InvalidMeetingId`, the lookup failures it can also
raise). It knows nothing of Django requests, sessions or templates.

What getMeeting's answer means (`read_value()` for its value, `read_error()` for an error it
threw) is decided here once, for this HTTP path and for answers pushed over Convex's sync WebSocket
(meetings/sync.py) alike. Connvo's text is cleaned there once, so nothing past this module sees a
character no page or database can hold.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import requests
import urllib3
import urllib3.connection
from django.conf import settings
from requests.adapters import HTTPAdapter

from connvo_admin.logs import redact
from connvo_admin.meeting_ids import InvalidMeetingId, parse_meeting_id
from connvo_admin.outcomes import Handling, LookupFailed, Outcome, describe
from connvo_admin.outside_text import storable

from .deployments import Deployment
from .workos_auth import takes_pasted_tokens

logger = logging.getLogger(__name__)

GET_MEETING_PATH = "/api/run/meetings/queries/getMeeting"
# Convex's backend rejects a Convex-Client value that is not "<name>-<semver>".
CLIENT_NAME = "connvo-support-console-0.1.0"

_REQUEST_ID_RE = re.compile(r"\[Request ID: ([^\]\s]+)\]")
_REDACTED_RE = re.compile(r"\[Request ID: [^\]]+\] Server Error")
# Connvo's overload answer and the connection failures below are safe to retry: getMeeting is a
# read-only query. Nothing else is retried.
_RETRYABLE_STATUS = 503
_MAX_RETRY_AFTER = 5.0
# A meeting is a flat object: an answer nested deeper than this is not one, and is not walked
# further (the walk that cleans it, and the raw view's, would run out of stack).
_MAX_DEPTH = 32
# As much of one piece of Connvo's error text (a code, a message) as the console keeps: what the
# audit entry's detail column holds. Connvo's messages are a line or two; a 2 MB one made a 4 MB
# page (shown, and again in the escalation text).
_SAID_LIMIT = 500


# --- Results ------------------------------------------------------------------------------------


class MeetingState(StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    CONCLUDED = "concluded"
    CANCELLED = "cancelled"


# The states a meeting does not leave: its figures no longer change, so neither its page nor a
# table's row asks Connvo again. A state the console does not know is not among them.
FINAL_STATES = frozenset({MeetingState.CONCLUDED, MeetingState.CANCELLED})


class UserRole(StrEnum):
    HOST = "host"
    PARTICIPANT = "participant"
    OBSERVER = "observer"


class UserPresence(StrEnum):
    INVITED = "invited"
    JOINED = "joined"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class Drift:
    """One way Connvo's answer differs from the contract the console knows: a field missing or
    of another type (its value is then None), or an enum value the console does not know yet (kept
    as the string Connvo sent)."""

    field_name: str  # the contract's name, e.g. "state"
    attribute: str  # the Meeting attribute, e.g. "state"
    problem: str  # for the agent, e.g. "has the value 'archived', which the console does not know"

    def __str__(self) -> str:
        return f"{self.field_name} {self.problem}"


@dataclass(frozen=True, slots=True)
class Meeting:
    """A meeting as getMeeting returns it to the caller, read tolerantly: only `id` is certain.

    Connvo changes (a new state, a renamed field) must not hide the meeting from the agent. A
    field that is missing or mistyped is None, and an enum value the console does not know is the
    string as sent; each is listed in `drift`. Timestamps are milliseconds since the epoch (Convex
    numbers are floats: `_creationTime` is often fractional); `duration` is in seconds."""

    id: str
    creation_time: float | None = None
    organizer_id: str | None = None
    title: str | None = None
    state: MeetingState | str | None = None
    active_webrtc_sessions: float | None = None
    created_at: float | None = None
    updated_at: float | None = None
    user_role: UserRole | str | None = None
    user_presence: UserPresence | str | None = None
    description: str | None = None
    scheduled_at: float | None = None
    duration: float | None = None
    participant_count: float | None = None
    average_rating: float | None = None
    stream_room_id: str | None = None
    webrtc_enabled: bool | None = None
    drift: tuple[Drift, ...] = ()
    # The `value` object exactly as Connvo sent it (for the raw view and `connvo_lookup --json`).
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_live(self) -> bool:
        """Still changing, as far as the console knows: a state it does not know (or none) keeps
        the page refreshing rather than freezing it."""
        return self.state not in FINAL_STATES

    @property
    def shown_title(self) -> str | None:
        """The title a page names the meeting by: None where Connvo sent none, or one of spaces
        only (the contract allows any string): a link or heading of it would be empty, nothing
        to read or click. Pages then name the meeting by its ID."""
        return self.title if self.title is not None and self.title.strip() else None

    @property
    def drift_reasons(self) -> dict[str, str]:
        """Why an attribute shows "—" or an unknown value: attribute -> problem."""
        return {item.attribute: item.problem for item in self.drift}

    def describe_drift(self) -> str:
        return "; ".join(str(item) for item in self.drift)


@dataclass(frozen=True, slots=True)
class Lookup:
    meeting: Meeting
    deployment: Deployment
    # None for an answer pushed over the sync WebSocket (meetings/sync.py): no HTTP request.
    http_status: int | None
    latency_ms: int
    attempts: int


# --- Errors -------------------------------------------------------------------------------------


class ConnvoError(LookupFailed):
    """Connvo's answer (or its absence) ended the lookup without a meeting."""


class NoToken(LookupFailed):
    """There is no token to send (raised here for an empty one, and by the credentials)."""

    outcome = Outcome.NO_TOKEN


class AccountNotConnected(NoToken):
    """No token to send where agents connect their Connvo account (WorkOS) instead of pasting
    one: the same outcome, headed and labelled by what is missing there (its next step is the
    Connect button, not "Add your token")."""

    connects_accounts = True


class MeetingNotFound(ConnvoError):
    outcome = Outcome.NOT_FOUND


class MeetingNotVisible(ConnvoError):
    outcome = Outcome.NOT_VISIBLE


class TokenRejected(ConnvoError):
    outcome = Outcome.TOKEN_REJECTED


class NotProvisioned(ConnvoError):
    outcome = Outcome.NOT_PROVISIONED


class ConnvoFunctionError(ConnvoError):
    outcome = Outcome.CONNVO_ERROR


class ConnvoServerError(ConnvoError):
    outcome = Outcome.SERVER_ERROR


class ConnvoBadRequest(ConnvoError):
    outcome = Outcome.BAD_REQUEST


class RateLimited(ConnvoError):
    """Connvo's own 429: Connvo is limiting, not the agent's doing (the console's own limit is
    `ratelimit.LookupLimitReached`)."""

    outcome = Outcome.RATE_LIMITED


class ConnvoOverloaded(ConnvoError):
    outcome = Outcome.OVERLOADED


class ConnvoTimeout(ConnvoError):
    outcome = Outcome.TIMEOUT


class ConnvoUnreachable(ConnvoError):
    outcome = Outcome.UNREACHABLE


class BadResponse(ConnvoError):
    outcome = Outcome.BAD_RESPONSE


class SchemaMismatch(ConnvoError):
    outcome = Outcome.SCHEMA_MISMATCH

    def __init__(self, message: str, *, field_name: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field_name = field_name


# --- HTTP ---------------------------------------------------------------------------------------

_session_lock = threading.Lock()
_session: requests.Session | None = None
_session_pid: int | None = None


class _ByDeadline(io.RawIOBase):
    """The socket's reader for one answer (`stream`, http.client's), each read of which may wait
    no longer than the time left before the answer's deadline, nor than the socket's own read
    timeout. It holds `stream`, which keeps the socket open while the answer is read: with
    "Connection: close", http.client closes its side at once and leaves the socket to the answer."""

    def __init__(self, stream: Any, sock: Any, deadline: float, per_read: float) -> None:
        self._stream, self._sock = stream, sock
        self._deadline, self._per_read = deadline, per_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")  # read by urllib3 as its read timeout
        self._sock.settimeout(min(left, self._per_read))
        return self._stream.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class _AnswerByDeadline(http.client.HTTPResponse):
    """A response that must arrive whole, status line, headers and body, within the read timeout
    of its request being sent. requests' read timeout bounds each read from the socket, not the
    answer: one trickled a byte at a time, headers included, would hold the agent (and a worker
    thread) for as long as Connvo, or a proxy before it, liked."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        per_read = sock.gettimeout()  # urllib3's read timeout, set on the socket just before
        if per_read is not None:
            deadline = time.monotonic() + per_read
            stream = self.fp.detach()  # nothing read from it yet: begin() comes later
            self.fp = io.BufferedReader(_ByDeadline(stream, sock, deadline, per_read))


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _AnswerByDeadline


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _AnswerByDeadline


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter whose connections read each answer by its deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _http() -> requests.Session:
    """One pooled session per process. Created lazily and again after a fork, so gunicorn workers
    never share a socket that the master opened."""
    global _session, _session_pid
    pid = os.getpid()
    if _session is None or _session_pid != pid:
        with _session_lock:
            if _session is None or _session_pid != pid:
                session = requests.Session()
                # Retries are ours (below): urllib3's would also retry what must not be retried.
                # As many kept-alive connections as a triage table asks for at once.
                pool_size = max(16, settings.CONNVO_TABLE_CONCURRENCY)
                adapter = _Adapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers.update({"Convex-Client": CLIENT_NAME, "Accept": "application/json"})
                # A proxy from the environment must not silently see agents' tokens.
                session.trust_env = False
                _session, _session_pid = session, pid
    return _session


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, _MAX_RETRY_AFTER)
    base = settings.CONNVO_RETRY_BACKOFF * (2**attempt)
    # Full jitter: many workers retrying an overloaded Connvo must not retry in step.
    return random.uniform(0, base)  # noqa: S311 (not cryptographic)


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def get_meeting(*, deployment: Deployment, token: str, meeting_id: str) -> Lookup:
    """Look up one meeting as the agent whose Connvo token this is.

    `meeting_id` must already have passed `parse_meeting_id`. Returns a `Lookup` or raises a
    `ConnvoError` subclass carrying the HTTP status, latency and Connvo request id when known.
    """
    if not token:
        raise missing_token(deployment)
    url = deployment.url + GET_MEETING_PATH
    body = {"args": {"meetingId": meeting_id}, "format": "json"}
    timeout = (settings.CONNVO_CONNECT_TIMEOUT, settings.CONNVO_READ_TIMEOUT)
    headers = {"Authorization": f"Bearer {token}"}
    retries = settings.CONNVO_RETRIES
    started = time.monotonic()
    attempt = 0

    def elapsed_ms() -> int:
        return round((time.monotonic() - started) * 1000)

    while True:
        attempt += 1
        try:
            # Streamed, so that the body is read here, up to ANSWER_LIMIT; the whole answer by
            # its deadline (_AnswerByDeadline).
            # Never a redirect followed: it would send the agent's token again, wherever it
            # points, in a call the audit log counts as one.
            response = _http().post(
                url, json=body, headers=headers, timeout=timeout, stream=True, allow_redirects=False
            )
            content = _read_whole(response)
        except _TooLarge:
            raise BadResponse(
                f"Connvo ({deployment.name}) answered with more than any meeting takes (perhaps a "
                "proxy page or a download). Try again; if it persists, report it to the Connvo "
                "team.",
                detail=f"HTTP {response.status_code}, over {ANSWER_LIMIT:,} bytes, not read",
                http_status=response.status_code,
                latency_ms=elapsed_ms(),
                attempts=attempt,
            ) from None
        except requests.exceptions.ReadTimeout:
            raise ConnvoTimeout(
                f"Connvo ({deployment.name}) did not answer within "
                f"{settings.CONNVO_READ_TIMEOUT:g} seconds. Try again in a minute; if it keeps "
                "happening, Connvo may be having an incident.",
                latency_ms=elapsed_ms(),
                attempts=attempt,
            ) from None
        except requests.exceptions.ConnectionError as exc:
            if attempt <= retries:
                time.sleep(_backoff(attempt - 1, None))
                continue
            raise ConnvoUnreachable(
                f"The console could not connect to Connvo ({deployment.name}). Connvo may be down, "
                "or the network between the console and Connvo is broken. Try again shortly.",
                latency_ms=elapsed_ms(),
                attempts=attempt,
                detail=type(exc).__name__,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ConnvoUnreachable(
                f"The request to Connvo ({deployment.name}) failed before an answer arrived.",
                latency_ms=elapsed_ms(),
                attempts=attempt,
                detail=type(exc).__name__,
            ) from None

        if response.status_code == _RETRYABLE_STATUS and attempt <= retries:
            time.sleep(_backoff(attempt - 1, _retry_after(response)))
            continue
        return _interpret(
            response,
            content,
            deployment,
            meeting_id=meeting_id,
            latency_ms=elapsed_ms(),
            attempts=attempt,
        )


# The most of an answer read (decoded): a meeting is a few kilobytes, an error less. Past it the
# answer is not Connvo's (a proxy's download, a runaway body) and would only take the worker's
# memory.
ANSWER_LIMIT = 8 * 1024 * 1024


class _TooLarge(Exception):
    """The answer's body ran past ANSWER_LIMIT; its connection is closed."""


def _read_whole(response: requests.Response) -> bytes:
    """The response's body, or raise ReadTimeout past its deadline (_AnswerByDeadline); past
    ANSWER_LIMIT bytes, _TooLarge.

    Each read takes what has arrived (read1). Errors are raised as requests would raise them
    reading the body itself. Read to its end, the connection goes back to the pool for the next
    lookup; given up on, it is closed."""
    raw, chunks, size = response.raw, [], 0
    try:
        try:
            while True:
                # Decoded as requests decodes a body it reads itself: it asks for gzip, and a
                # proxy in front of Connvo may send it (its raw response is made not to decode).
                chunk = raw.read1(64 * 1024, decode_content=True)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > ANSWER_LIMIT:
                    raise _TooLarge
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            raise requests.exceptions.ReadTimeout(request=response.request) from None
        except urllib3.exceptions.ProtocolError as error:
            raise requests.exceptions.ChunkedEncodingError(
                error, request=response.request
            ) from None
        except urllib3.exceptions.DecodeError as error:
            raise requests.exceptions.ContentDecodingError(
                error, request=response.request
            ) from None
        except urllib3.exceptions.HTTPError as error:  # e.g. TLS failing halfway
            raise requests.exceptions.RequestException(error, request=response.request) from None
    except Exception:
        response.close()  # given up on: its connection is not fit for the next lookup
        raise


# --- Interpreting Connvo's answer ---------------------------------------------------------------


def _interpret(
    response: requests.Response,
    content: bytes,
    deployment: Deployment,
    *,
    meeting_id: str,
    latency_ms: int,
    attempts: int,
) -> Lookup:
    status = response.status_code
    context = {"http_status": status, "latency_ms": latency_ms, "attempts": attempts}
    # Read as Response.json() reads it: in the charset the answer names, else as JSON's own. Not
    # JSON (or in a charset Python does not know), or nested deeper than the parser goes: none.
    try:
        text = content.decode(response.encoding, "replace") if response.encoding else content
        payload = json.loads(text)
    except (ValueError, LookupError, RecursionError):
        payload = None

    # Convex answers function outcomes (success or a thrown error) with 200, or 560 on some paths.
    if status in (200, 560):
        if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
            raise BadResponse(
                f"Connvo ({deployment.name}) answered, but not in Connvo's format (perhaps a proxy "
                "page). Try again; if it persists, report it to the Connvo team.",
                detail=_describe_body(response, content),
                **context,
            )
        if payload["status"] == "error":
            raise read_error(
                payload.get("errorMessage"), payload.get("errorData"), deployment, **context
            )
        return read_value(payload.get("value"), deployment, meeting_id=meeting_id, **context)

    if 300 <= status < 400:
        raise BadResponse(
            f"Connvo ({deployment.name}) answered with a redirect, which the console does not "
            "follow with your token. The deployment's address in the console's settings may be "
            "out of date: tell the console's administrators.",
            detail=f"HTTP {status} to {_said(response.headers.get('Location', 'nowhere'))[:200]}",
            **context,
        )
    code, message = _request_error(payload)
    request_id = _request_id(message)
    context["request_id"] = request_id
    detail = f"{code}: {message}" if code else message or _describe_body(response, content)
    # The contract answers 400 and 500 with a FailedResponse: a JSON object, no property
    # promised. Such an answer is Connvo's own, with a code or without; anything else (HTML, a
    # bare string) is a proxy's or a gateway's.
    connvos = isinstance(payload, dict)
    if status == 401:
        raise token_rejected(deployment, detail=detail, **context)
    if status == 429:
        wait = _retry_after(response)
        raise RateLimited(
            f"Connvo ({deployment.name}) is limiting how fast lookups can be made right now. "
            + (
                f"Try again in {math.ceil(wait)} s."
                if wait is not None and 0 < wait <= 3600
                else "Try again in a minute."
            ),
            detail=detail,
            # The page's next refresh waits at least this (meetings/live.py).
            retry_after=wait if wait is not None and 0 < wait <= 3600 else None,
            **context,
        )
    if status == _RETRYABLE_STATUS:
        raise ConnvoOverloaded(
            f"Connvo ({deployment.name}) is overloaded and asked us to slow down. Try again in a "
            "minute.",
            detail=detail,
            **context,
        )
    if status == 408:
        raise ConnvoTimeout(
            f"Connvo ({deployment.name}) gave up on the request before answering. Try again.",
            detail=detail,
            **context,
        )
    if status in (400, 403, 404) and connvos:
        raise ConnvoBadRequest(
            f"Connvo ({deployment.name}) refused the request"
            + (f" ({code})" if code else "")
            + ". This is a problem with the console or its configuration, not with the meeting: "
            "report it with the details below.",
            detail=detail,
            **context,
        )
    if status >= 500 and connvos:
        raise ConnvoServerError(
            f"Connvo ({deployment.name}) had an internal error. Try again; if it persists, "
            "escalate to the Connvo team with the details below.",
            detail=detail,
            **context,
        )
    raise BadResponse(
        f"Connvo ({deployment.name}) answered with HTTP {status} and a body that is not Connvo's "
        "(perhaps a proxy or gateway page). Try again; if it persists, escalate with the details "
        "below.",
        detail=detail,
        **context,
    )


def _request_error(payload: Any) -> tuple[str, str]:
    """A failed request's `code` and `message`, each "" where the answer has none as text."""
    if not isinstance(payload, dict):
        return "", ""
    code, message = payload.get("code"), payload.get("message")
    return (
        _said(code) if isinstance(code, str) else "",
        _said(message) if isinstance(message, str) else "",
    )


def _request_id(message: Any) -> str | None:
    if isinstance(message, str):
        match = _REQUEST_ID_RE.search(message)
        if match:
            return match.group(1)
    return None


def _describe_body(response: requests.Response, content: bytes) -> str:
    content_type = _said(response.headers.get("Content-Type", "unknown type").split(";")[0])
    return f"HTTP {response.status_code}, {content_type}, {len(content)} bytes"


def outcome_handling(outcome: Outcome | str, deployment_name: str) -> Handling:
    """How a lookup on `deployment_name` that ended so is labelled and headed, on every page that
    shows one: "Account not connected" where its agents connect their Connvo account, "No token
    saved" where they paste a token (the words of `missing_token`'s failure, which a page that
    holds the failure itself reads from it)."""
    return describe(outcome).worded_for(connects_accounts=not takes_pasted_tokens(deployment_name))


def missing_token(deployment: Deployment | str, *, unreadable: bool = False) -> NoToken:
    """The agent has no credential for the deployment: found here, by the sync client, or by
    meetings/credentials.py (none stored, removed while a renewal waited, or, `unreadable`,
    stored under an encryption key the console no longer has), said one way for each kind of
    deployment: one whose agents connect their account, or one that takes pasted tokens."""
    name = deployment if isinstance(deployment, str) else deployment.name
    if not takes_pasted_tokens(name):
        if unreadable:
            return AccountNotConnected(
                f"Your Connvo connection for {name} can no longer be read (the console's "
                "encryption keys changed). Connect your account again on the Tokens page."
            )
        return AccountNotConnected(
            f"Your Connvo account is not connected for {name}. Connect it on the Tokens page, "
            "then look up the meeting again."
        )
    if unreadable:
        return NoToken(
            f"Your saved token for {name} can no longer be read (the console's encryption keys "
            "changed). Save your token again on the Tokens page."
        )
    return NoToken(
        f"You have no Connvo token saved for {name}. Add it on the Tokens page, then look up "
        "the meeting again."
    )


def token_rejected(
    deployment: Deployment,
    *,
    detail: str,
    why: str = "it has expired or is no longer valid",
    **context: Any,
) -> TokenRejected:
    """Connvo refused the token itself (HTTP 401, a 200 answer's UNAUTHORIZED, or the sync
    WebSocket's AuthError), said one way for each kind of deployment, as `missing_token` is: where
    agents connect their account there is no token to paste, only the account to reconnect.
    `detail` is Connvo's words: cleaned here, as the sync client passes AuthError's as sent."""
    connected = not takes_pasted_tokens(deployment.name)
    return TokenRejected(
        f"Connvo ({deployment.name}) did not accept "
        + (
            f"your connected account's session: {why}. Reconnect your Connvo account on the "
            "Tokens page."
            if connected
            else f"your token: {why}. Copy a fresh token from Connvo and update it on the "
            "Tokens page."
        ),
        detail=_said(detail),
        connects_accounts=connected,
        **context,
    )


def not_provisioned(deployment: Deployment, *, detail: str, **context: Any) -> NotProvisioned:
    """Connvo knows the credential but has no user for it on this deployment."""
    connected = not takes_pasted_tokens(deployment.name)
    return NotProvisioned(
        (
            f"Your Connvo account is connected, but it has no Connvo user on {deployment.name}. "
            "Ask the Connvo team to provision your account there, or reconnect with the account "
            f"you use on {deployment.name}."
            if connected
            else f"Your token is valid, but your Connvo user does not exist on {deployment.name}. "
            "Ask the Connvo team to provision your account there, or check that you saved the "
            "token for the right deployment."
        ),
        detail=detail,
        connects_accounts=connected,
        **context,
    )


def read_value(
    value: Any,
    deployment: Deployment,
    *,
    meeting_id: str | None = None,
    http_status: int | None,
    latency_ms: int,
    attempts: int,
    request_id: str | None = None,
) -> Lookup:
    """getMeeting's `value`, answered over HTTP or pushed over the sync WebSocket: the Lookup, or
    MeetingNotFound for null, or SchemaMismatch for something that cannot be a meeting.

    `meeting_id` is the ID that was asked for, and the meeting's ID whatever `_id` says: the page,
    its Copy and Watch buttons and the audit log must name the meeting the agent looked up. None
    where the caller does not pass it (meetings/sync.py today): then a well-formed `_id` is
    used."""
    context = {
        "http_status": http_status,
        "latency_ms": latency_ms,
        "attempts": attempts,
        "request_id": request_id,
    }
    if value is None:
        raise MeetingNotFound(
            "No meeting with this ID exists on "
            f"{deployment.name}. Check the ID, and that you chose the right deployment.",
            **context,
        )
    try:
        value = _cleaned(value)
    except _TooDeep:
        raise BadResponse(
            f"Connvo ({deployment.name}) answered, but not in Connvo's format. Try again; if it "
            "persists, report it to the Connvo team.",
            detail=f"value: nested deeper than {_MAX_DEPTH} levels",
            **context,
        ) from None
    meeting = _parse_meeting(value, deployment, context, meeting_id=meeting_id)
    return Lookup(
        meeting=meeting,
        deployment=deployment,
        http_status=http_status,
        latency_ms=latency_ms,
        attempts=attempts,
    )


def _error_code(data: Mapping) -> str:
    """A ConvexError's `code` as Connvo sent it: its text, or, when it is not text, its JSON
    ("code 403", "code null"), never a word of ours in its place; "" when it sent none."""
    if "code" not in data:
        return ""
    code = data["code"]
    if isinstance(code, str):
        return _said(code)
    try:
        written = json.dumps(code, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        written = _json_type(code)
    return "code " + _said(written)[:200]


def read_error(
    error_message: Any,
    error_data: Any,
    deployment: Deployment,
    *,
    http_status: int | None,
    latency_ms: int,
    attempts: int,
) -> LookupFailed:
    """The failure getMeeting's thrown error means (its `errorMessage` and, for a ConvexError,
    `errorData`), answered over HTTP or pushed over the sync WebSocket. Returned, not raised."""
    message = _said(error_message) if isinstance(error_message, str) else ""
    context = {
        "http_status": http_status,
        "latency_ms": latency_ms,
        "attempts": attempts,
        "request_id": _request_id(message),
    }
    data = error_data
    if isinstance(data, Mapping) and data:
        code = _error_code(data)
        reason = _said(data["message"]) if isinstance(data.get("message"), str) else ""
        detail = f"{code}: {reason}" if reason and code else code or reason
        if code == "FORBIDDEN":
            return MeetingNotVisible(
                "This meeting exists, but Connvo shows a meeting only to its participants, and "
                "your Connvo account is not one of them.",
                detail=detail,
                **context,
            )
        if code == "UNAUTHORIZED":
            if "provision" in reason.lower():
                return not_provisioned(deployment, detail=detail, **context)
            return token_rejected(
                deployment, detail=detail, why="it could not tell who you are from it", **context
            )
        return ConnvoFunctionError(
            f"Connvo ({deployment.name}) refused the lookup: {reason or code}."
            if reason or code
            else f"Connvo ({deployment.name}) refused the lookup without giving a reason.",
            detail=detail,
            **context,
        )
    if "ArgumentValidationError" in message:
        return InvalidMeetingId(
            f"Connvo ({deployment.name}) says this is not the ID of a meeting. It may be the ID "
            "of something else (a user, a transcript…), or it was copied incompletely.",
            detail=_first_lines(message),
            **context,
        )
    # On production deployments Convex redacts every non-application error to "Server Error",
    # including a malformed or wrong-table id, so the agent is told what to check first.
    if _REDACTED_RE.fullmatch(message.strip()):
        return ConnvoServerError(
            f"Connvo ({deployment.name}) hit an error and, as production deployments do, did not "
            "say which. A mistyped or incomplete meeting ID is the most common cause: check the "
            "ID. If it is right, try again, then escalate to the Connvo team with the request ID.",
            detail=_first_lines(message),
            **context,
        )
    return ConnvoServerError(
        f"Connvo ({deployment.name}) hit an error while looking up this meeting. Try again; if "
        "it persists, escalate to the Connvo team with the request ID.",
        detail=_first_lines(message),
        **context,
    )


def _first_lines(message: str, limit: int = 4) -> str:
    return "\n".join(message.splitlines()[:limit])[:500]


# --- Connvo's text ------------------------------------------------------------------------------


def _said(text: str) -> str:
    """A piece of Connvo's error text (a code, a message) as the console keeps it: the page, the
    escalation text and the audit log all show this, and an audit entry cannot be changed later.
    JSON lets Connvo send a NUL or a lone surrogate ("\\ud800"), which no database stores and no
    page can be encoded with. Connvo may echo the agent's token ("Could not verify token Bearer
    eyJ…"): it is masked as the logs mask it, before the text is cut to _SAID_LIMIT (so a cut
    cannot leave part of a token unmasked)."""
    return redact(storable(text))[:_SAID_LIMIT]


class _TooDeep(Exception):
    pass


def _cleaned(item: Any, depth: int = 0) -> Any:
    """Connvo's JSON value with every string (and key) storable, so the Meeting, its raw view and
    the audit log never meet a character they cannot hold. Raises _TooDeep past _MAX_DEPTH
    levels."""
    if isinstance(item, str):
        return storable(item)
    if isinstance(item, list | dict) and depth >= _MAX_DEPTH:
        raise _TooDeep
    if isinstance(item, list):
        return [_cleaned(element, depth + 1) for element in item]
    if isinstance(item, dict):
        return {storable(key): _cleaned(element, depth + 1) for key, element in item.items()}
    return item


# --- Contract validation ------------------------------------------------------------------------


_REQUIRED = {
    "_id": "id",
    "_creationTime": "creation_time",
    "organizerId": "organizer_id",
    "title": "title",
    "state": "state",
    "activeWebRTCSessions": "active_webrtc_sessions",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "userRole": "user_role",
    "userPresence": "user_presence",
}
_OPTIONAL = {
    "description": "description",
    "scheduledAt": "scheduled_at",
    "duration": "duration",
    "participantCount": "participant_count",
    "averageRating": "average_rating",
    "streamRoomId": "stream_room_id",
    "webrtcEnabled": "webrtc_enabled",
}
_STRING_FIELDS = {"_id", "organizerId", "title", "description", "streamRoomId"}
_BOOL_FIELDS = {"webrtcEnabled"}
_ENUM_FIELDS: dict[str, type[StrEnum]] = {
    "state": MeetingState,
    "userRole": UserRole,
    "userPresence": UserPresence,
}


def _parse_meeting(
    value: Any, deployment: Deployment, context: dict[str, Any], *, meeting_id: str | None
) -> Meeting:
    """Connvo's `value` as a Meeting, as tolerantly as possible: only an answer that cannot be a
    meeting at all (not an object, no `_id` string) raises SchemaMismatch. An `_id` other than
    `meeting_id` is drift; the Meeting's id is `meeting_id` (see read_value)."""

    def unusable(field_name: str, problem: str) -> SchemaMismatch:
        return SchemaMismatch(
            f"Connvo ({deployment.name}) returned something that is not a meeting: "
            f"“{field_name}” {problem}. The console or Connvo needs updating; report it to the "
            "console team.",
            field_name=field_name,
            detail=f"{field_name}: {problem}",
            **context,
        )

    if not isinstance(value, dict):
        raise unusable("value", f"is {_json_type(value)}, expected an object")
    if not isinstance(value.get("_id"), str) or not value["_id"]:
        raise unusable("_id", "is missing or not a string")
    sent_id = value["_id"]
    drift: list[Drift] = []
    if not _is_meeting_id(sent_id):
        problem = f"is {_cut(sent_id)}, which is not a meeting ID"
        if meeting_id is None:
            raise unusable("_id", problem)
        drift.append(Drift("_id", "id", problem))
    elif meeting_id is not None and sent_id != meeting_id:
        # Shown as the one asked for, never as the other: Connvo answered about another meeting.
        drift.append(Drift("_id", "id", f"is {_cut(sent_id)}, not the ID that was looked up"))
    kwargs: dict[str, Any] = {"id": meeting_id or sent_id}
    for key, attr in (_REQUIRED | _OPTIONAL).items():
        if key == "_id":
            continue
        if key not in value or (value[key] is None and key in _OPTIONAL):
            if key in _REQUIRED:
                drift.append(Drift(key, attr, "is missing"))
            continue
        converted, problem = _convert(key, value[key])
        if problem:
            drift.append(Drift(key, attr, problem))
        kwargs[attr] = converted
    return Meeting(**kwargs, drift=tuple(drift), raw=value)


def _is_meeting_id(text: str) -> bool:
    try:
        return parse_meeting_id(text) == text
    except InvalidMeetingId:
        return False


# Characters of a value Connvo sent that the console does not know (an `_id`, a state) that a
# drift note quotes and a badge shows (meetings/templatetags/meeting_format.py): a table draws
# one per row, and a value can be of any length.
UNKNOWN_VALUE_SHOWN = 40


def _cut(text: str, limit: int = UNKNOWN_VALUE_SHOWN) -> str:
    return repr(text[:limit] + "…" if len(text) > limit else text)


def _json_type(item: Any) -> str:
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "true or false"
    if isinstance(item, int | float):
        return "a number"
    if isinstance(item, str):
        return "a string"
    if isinstance(item, list):
        return "a list"
    return "an object"


def _convert(key: str, item: Any) -> tuple[Any, str]:
    """The value for the Meeting and, when it is not what the contract says, the problem."""
    if key in _ENUM_FIELDS:
        enum = _ENUM_FIELDS[key]
        if not isinstance(item, str):
            return None, f"is {_json_type(item)}, expected one of {_allowed(enum)}"
        try:
            return enum(item), ""
        except ValueError:
            # Connvo added a value: show it as sent rather than hide the meeting.
            return item, f"has the value {_cut(item)}, which the console does not know yet"
    if key in _STRING_FIELDS:
        if not isinstance(item, str):
            return None, f"is {_json_type(item)}, expected a string"
        return item, ""
    if key in _BOOL_FIELDS:
        if not isinstance(item, bool):
            return None, f"is {_json_type(item)}, expected true or false"
        return item, ""
    # Everything else in the contract is a number. bool is an int in Python but not in JSON.
    if isinstance(item, bool) or not isinstance(item, int | float) or not _finite(item):
        return None, f"is {json.dumps(item)[:40]}, expected a number"
    return item, ""


def _finite(number: float) -> bool:
    """Whether a JSON number can be a Convex number (a float64): a whole number JSON can write
    with hundreds of digits is larger than any float, and no date or sum can be made of it."""
    try:
        return math.isfinite(number)
    except OverflowError:  # an int past about 1.8e308
        return False


def _allowed(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)
