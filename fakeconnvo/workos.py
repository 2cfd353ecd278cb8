"""The fake's WorkOS: AuthKit's OAuth sign-in, sessions and single-use refresh tokens.

Connvo's bearer tokens are WorkOS AuthKit access tokens. `AuthKit` answers the User Management
requests WorkOS's SDK sends (authorize, authenticate with a code or a refresh token, revoke a
session, log out, get a user, the JWKS) the way api.workos.com does, and signs its access tokens
with the key the fake deployment trusts, so each one works on getMeeting until it expires.

Errors have WorkOS's two shapes: OAuth's `{"error", "error_description"}` from the authenticate
endpoint, `{"code", "message"}` from the others. The authorize endpoint is a browser's: it
redirects back with a code (or an OAuth error), or shows an HTML error page when it cannot trust
the client or the redirect URI.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from fakeconnvo.tokens import TokenAuthority
from fakeconnvo.world import User, World

DEFAULT_WORKOS_CLIENT_ID: Final = "client_01FAKEC0NNV000000000000000"
DEFAULT_WORKOS_API_KEY: Final = "sk_test_fake_connvo_local_only"
DEFAULT_ACCESS_TOKEN_TTL: Final = 300.0
DEFAULT_CODE_TTL: Final = 600.0

AUTHORIZE_PATH: Final = "/user_management/authorize"
AUTHENTICATE_PATH: Final = "/user_management/authenticate"
REVOKE_SESSION_PATH: Final = "/user_management/sessions/revoke"
LOGOUT_PATH: Final = "/user_management/sessions/logout"
USERS_PREFIX: Final = "/user_management/users/"
JWKS_PREFIX: Final = "/sso/jwks/"
WORKOS_PREFIXES: Final = ("/user_management/", "/sso/")

AUTHORIZE_MODES: Final = ("approve", "deny")
AUTHENTICATION_METHOD: Final = "Password"

# error_description of the refresh failures a client must tell apart (all `invalid_grant`).
REFRESH_TOKEN_UNKNOWN: Final = "Invalid refresh token."
REFRESH_TOKEN_REUSED: Final = "Refresh token already exchanged."
SESSION_ENDED: Final = "Session has already ended."

_REDACTED: Final = "[redacted]"
_ULID_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PKCE_VALUE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_BEARER: Final = re.compile(r"Bearer\s+(\S+)", re.IGNORECASE)


def is_workos_path(path: str) -> bool:
    return path.startswith(WORKOS_PREFIXES)


@dataclass(frozen=True)
class Answer:
    """What the fake WorkOS answers one request with."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class WorkOSSession:
    """A WorkOS session: one sign-in of `user`, kept alive by rotating its refresh token.

    `refresh_token` is the last one issued, the only one that can still be exchanged while the
    session is `active`; an ended session keeps it for the record, but it no longer works.
    `end_reason` is "revoked" (revoke_session, the API or /_fake), "signed_out" (the logout URL)
    or "refresh_token_reused" (reuse detection)."""

    id: str
    user: str  # the seeded user's label
    sub: str  # the WorkOS user id, the access tokens' `sub`
    client_id: str
    refresh_token: str
    created_at: float
    access_token_expires_at: int  # `exp` of the latest access token
    active: bool = True
    refreshes: int = 0
    ended_at: float | None = None
    end_reason: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "sub": self.sub,
            "clientId": self.client_id,
            "active": self.active,
            "refreshToken": self.refresh_token,
            "refreshes": self.refreshes,
            "createdAt": self.created_at,
            "accessTokenExpiresAt": self.access_token_expires_at,
            "endedAt": self.ended_at,
            "endReason": self.end_reason,
        }


@dataclass
class WorkOSCall:
    """One request to the fake WorkOS, whatever became of it.

    `params` is the query string (GET) or the body (POST) as sent, except that a `client_secret` is
    replaced by "[redacted]" (`client_secret_ok` says whether it matched the API key). `status` is
    None when the fake answered nothing (workos_down, or a slow answer cut short); with
    workos_reply_lost it is what the fake did but could not send. `misbehaviour` names the
    workos_* switch that hit the request."""

    method: str
    path: str
    endpoint: str  # authorize, authenticate, revoke_session, logout, get_user, jwks or unknown
    params: dict[str, Any]
    timestamp: float
    grant_type: str | None = None
    client_id: str | None = None
    client_secret_ok: bool | None = None
    status: int | None = None
    error: str | None = None  # the OAuth error or API error code answered
    error_description: str | None = None
    session_id: str | None = None
    user: str | None = None  # label of the user signed in or refreshed
    misbehaviour: str | None = None

    def describe(self) -> dict[str, Any]:
        described = asdict(self)
        return {_camel(key): value for key, value in described.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    body_error: str | None
    api_key: str | None  # from the Authorization header


@dataclass
class _Code:
    user: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    issued_at: float
    used: bool = False


@dataclass
class _RefreshToken:
    session_id: str
    spent_at: float | None = None
    successor: str | None = None  # the refresh token its exchange issued
    reply: bytes | None = None  # the body of that exchange, for a replay in the grace period


class AuthKit:
    """The fake WorkOS's state and answers. Not locked: FakeConnvo serialises access."""

    def __init__(
        self,
        *,
        tokens: TokenAuthority,
        world: Callable[[], World],
        clock: Callable[[], float],
        client_id: str,
        api_key: str,
        access_token_ttl: float,
    ) -> None:
        self._tokens = tokens
        self._world = world
        self._clock = clock
        self.client_id = client_id
        self.api_key = api_key
        self.access_token_ttl = access_token_ttl
        self.code_ttl = DEFAULT_CODE_TTL
        self.refresh_grace = 0.0
        self.reuse_revokes_session = True
        self._allowed_redirects: list[str] = []
        self.reset()

    def reset(self) -> None:
        """Forget every code, session, token and call; sign in as the agent, approving."""
        self.login_user = "agent"
        self._authorize_mode = "approve"
        self.sessions: dict[str, WorkOSSession] = {}
        self.calls: list[WorkOSCall] = []
        self.refresh_count = 0
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._signed_in_at: dict[str, float] = {}  # by sub

    # -- settings -----------------------------------------------------------------------------

    @property
    def authorize_mode(self) -> str:
        return self._authorize_mode

    @authorize_mode.setter
    def authorize_mode(self, mode: str) -> None:
        if mode not in AUTHORIZE_MODES:
            raise ValueError(f"authorize mode must be one of {AUTHORIZE_MODES}, not {mode!r}")
        self._authorize_mode = mode

    @property
    def allowed_redirects(self) -> list[str]:
        return self._allowed_redirects

    @allowed_redirects.setter
    def allowed_redirects(self, uris: Iterable[str] | None) -> None:
        if isinstance(uris, str):
            raise TypeError("allowed redirects are a list of URIs, not one string")
        self._allowed_redirects = list(uris or [])

    def login_as(self, user: str) -> User:
        """Sign in as `user` (a label, a sub or a users id) from now on."""
        found = self._world().user(user)
        self.login_user = found.label
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "clientId": self.client_id,
            "apiKey": self.api_key,
            "accessTokenTtl": self.access_token_ttl,
            "codeTtl": self.code_ttl,
            "refreshGrace": self.refresh_grace,
            "reuseRevokesSession": self.reuse_revokes_session,
            "authorizeMode": self.authorize_mode,
            "allowedRedirects": list(self.allowed_redirects),
            "loginUser": self.login_user,
            "refreshCount": self.refresh_count,
            "sessions": {sid: session.describe() for sid, session in self.sessions.items()},
        }

    # -- sessions -----------------------------------------------------------------------------

    def revoke_session(self, session_id: str, reason: str = "revoked") -> bool:
        """End a session; True if it was active. KeyError for a session that never existed."""
        try:
            session = self.sessions[session_id]
        except KeyError:
            raise KeyError(f"no WorkOS session {session_id!r}") from None
        return self._end(session, reason)

    def revoke_user_sessions(self, user: str) -> int:
        """End every active session of `user` (a label, a sub or a users id); how many ended."""
        sub = self._world().user(user).sub
        return sum(
            self._end(session, "revoked")
            for session in self.sessions.values()
            if session.sub == sub
        )

    def _end(self, session: WorkOSSession, reason: str) -> bool:
        if not session.active:
            return False
        session.active = False
        session.ended_at = self._clock()
        session.end_reason = reason
        return True

    # -- requests -----------------------------------------------------------------------------

    def receive(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[WorkOSCall, _Request]:
        """Parse and log a request (counting refresh attempts) before anything else happens."""
        split = urlsplit(target)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        parsed, body_error = _parse_body(headers.get("content-type", ""), body)
        bearer = _BEARER.fullmatch(headers.get("authorization", "").strip())
        request = _Request(
            method=method,
            path=path,
            query=query,
            body=parsed,
            body_error=body_error,
            api_key=bearer.group(1) if bearer else None,
        )
        params: dict[str, Any] = dict(query) if method in ("GET", "HEAD") else dict(parsed)
        secret = params.get("client_secret")
        if secret is not None:
            params["client_secret"] = _REDACTED
        call = WorkOSCall(
            method=method,
            path=path,
            endpoint=_endpoint(path),
            params=params,
            timestamp=time.time(),
            grant_type=_text(params.get("grant_type")),
            client_id=_text(params.get("client_id")),
            client_secret_ok=None if secret is None else secret == self.api_key,
        )
        self.calls.append(call)
        if call.endpoint == "authenticate" and call.grant_type == "refresh_token":
            self.refresh_count += 1
        return call, request

    def answer(self, call: WorkOSCall, request: _Request) -> Answer:
        path = request.path
        if path == AUTHORIZE_PATH:
            return self._authorize(call, request)
        if path == AUTHENTICATE_PATH:
            return self._authenticate(call, request)
        if path == REVOKE_SESSION_PATH:
            return self._revoke(call, request)
        if path == LOGOUT_PATH:
            return self._logout(call, request)
        if path.startswith(USERS_PREFIX) and "/" not in path.removeprefix(USERS_PREFIX):
            return self._get_user(call, request, path.removeprefix(USERS_PREFIX))
        if path.startswith(JWKS_PREFIX) and "/" not in path.removeprefix(JWKS_PREFIX):
            return self._jwks(call, request, path.removeprefix(JWKS_PREFIX))
        return _api_error(call, 404, "not_found", f"No route for {request.method} {path}")

    def server_error(self, call: WorkOSCall, options: Mapping[str, Any]) -> Answer:
        """What a workos_error switch answers."""
        status = int(options["status"])
        if status == 429:
            code, message = "rate_limit_exceeded", "Too many requests. Please retry later."
        elif status == 503:
            code, message = "service_unavailable", "Service Unavailable"
        else:
            code, message = "server_error", "Internal Server Error"
        headers = ()
        if "retry_after" in options:
            headers = (("Retry-After", str(options["retry_after"])),)
        answer = _api_error(call, status, code, str(options.get("message", message)))
        return Answer(answer.status, answer.body, answer.content_type, headers)

    # -- GET /user_management/authorize --------------------------------------------------------

    def _authorize(self, call: WorkOSCall, request: _Request) -> Answer:
        if request.method not in ("GET", "HEAD"):
            return _page(call, 405, "Method not allowed", "Open this page with GET.")
        query = request.query
        client_id = query.get("client_id")
        if not client_id:
            return _page(call, 400, "Missing client ID", "The client_id parameter is required.")
        if client_id != self.client_id:
            call.error = "invalid_client"
            return _page(call, 400, "Invalid client ID", f"Unknown client_id {client_id!r}.")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            return _page(call, 400, "Missing redirect URI", "redirect_uri is required.")
        target = urlsplit(redirect_uri)
        if target.scheme not in ("http", "https") or not target.netloc or target.fragment:
            return _page(call, 400, "Invalid redirect URI", f"{redirect_uri!r} is not usable.")
        if self.allowed_redirects and redirect_uri not in self.allowed_redirects:
            call.error = "invalid_redirect_uri"
            return _page(
                call,
                400,
                "Invalid redirect URI",
                f"{redirect_uri!r} is not one of this application's redirect URIs.",
            )

        state = query.get("state")

        def refuse(error: str, description: str) -> Answer:
            call.error, call.error_description = error, description
            params = {"error": error, "error_description": description}
            return _redirect(redirect_uri, params, state)

        response_type = query.get("response_type")
        if response_type != "code":
            if response_type is None:
                return refuse("invalid_request", "response_type is required.")
            return refuse("unsupported_response_type", "response_type must be code.")
        provider = query.get("provider")
        if provider is None and not query.get("connection_id") and not query.get("organization_id"):
            return refuse(
                "invalid_request",
                "One of provider, connection_id or organization_id is required: "
                "pass provider=authkit.",
            )
        if provider != "authkit":
            return refuse(
                "invalid_request", "The fake WorkOS signs in only through provider=authkit."
            )
        challenge = query.get("code_challenge")
        challenge_method = query.get("code_challenge_method")
        if challenge is not None or challenge_method is not None:
            if challenge_method != "S256":
                return refuse("invalid_request", "code_challenge_method must be S256.")
            if challenge is None or not _PKCE_VALUE.fullmatch(challenge):
                return refuse("invalid_request", "code_challenge is missing or malformed.")
        if self.authorize_mode == "deny":
            return refuse("access_denied", "The user denied the authorization request.")

        user = self._user_for(query.get("login_hint"))
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            user=user.label,
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=challenge,
            issued_at=self._clock(),
        )
        call.user = user.label
        return _redirect(redirect_uri, {"code": code}, state)

    def _user_for(self, login_hint: str | None) -> User:
        world = self._world()
        if login_hint:
            for user in world.users.values():
                if user.email.lower() == login_hint.strip().lower():
                    return user
        return world.user(self.login_user)

    # -- POST /user_management/authenticate ----------------------------------------------------

    def _authenticate(self, call: WorkOSCall, request: _Request) -> Answer:
        if request.method != "POST":
            return _api_error(call, 405, "method_not_allowed", "Use POST.", allow="POST")
        if request.body_error is not None:
            return _oauth_error(call, 400, "invalid_request", request.body_error)
        body = request.body
        grant_type = body.get("grant_type")
        if not grant_type:
            return _oauth_error(call, 400, "invalid_request", "grant_type is required.")
        client_id = body.get("client_id")
        if not client_id:
            return _oauth_error(call, 400, "invalid_request", "client_id is required.")
        if client_id != self.client_id:
            return _oauth_error(call, 401, "invalid_client", "Invalid client ID.")
        secret = body.get("client_secret")
        if secret is not None and secret != self.api_key:
            return _oauth_error(call, 401, "invalid_client", "Invalid client secret.")
        if grant_type == "authorization_code":
            return self._exchange_code(call, body, has_secret=secret is not None)
        if grant_type == "refresh_token":
            return self._refresh(call, body)
        return _oauth_error(
            call, 400, "unsupported_grant_type", f"Unsupported grant_type {grant_type!r}."
        )

    def _exchange_code(self, call: WorkOSCall, body: Mapping[str, Any], has_secret: bool) -> Answer:
        code = body.get("code")
        if not isinstance(code, str) or not code:
            return _oauth_error(call, 400, "invalid_request", "code is required.")
        record = self._codes.get(code)
        if record is None:
            return _oauth_error(call, 400, "invalid_grant", "The code is invalid.")
        call.user = record.user
        # Spent by the first exchange that presents it, whether or not that one succeeds.
        if record.used:
            return _oauth_error(call, 400, "invalid_grant", "The code has already been used.")
        record.used = True
        if self._clock() - record.issued_at >= self.code_ttl:
            return _oauth_error(call, 400, "invalid_grant", "The code has expired.")
        if record.client_id != body["client_id"]:
            return _oauth_error(
                call, 400, "invalid_grant", "The code was issued to another client."
            )
        verifier = body.get("code_verifier")
        if record.code_challenge is not None:
            if not isinstance(verifier, str) or not verifier:
                return _oauth_error(
                    call, 400, "invalid_grant", "code_verifier is required for this code."
                )
            if _s256(verifier) != record.code_challenge:
                return _oauth_error(
                    call,
                    400,
                    "invalid_grant",
                    "The code_verifier does not match the code_challenge.",
                )
        elif verifier is not None:
            return _oauth_error(
                call, 400, "invalid_grant", "code_verifier was sent for a code issued without PKCE."
            )
        elif not has_secret:
            return _oauth_error(
                call, 401, "invalid_client", "client_secret is required for a code without PKCE."
            )
        return self._sign_in(call, self._world().user(record.user), record.client_id)

    def _sign_in(self, call: WorkOSCall, user: User, client_id: str) -> Answer:
        now = self._clock()
        session_id = "session_" + _ulid(now)
        access_token, claims = self._tokens.issue_session_token(
            sub=user.sub, sid=session_id, expires_in=self.access_token_ttl
        )
        refresh_token = self._new_refresh_token(session_id)
        self.sessions[session_id] = WorkOSSession(
            id=session_id,
            user=user.label,
            sub=user.sub,
            client_id=client_id,
            refresh_token=refresh_token,
            created_at=now,
            access_token_expires_at=claims["exp"],
        )
        self._signed_in_at[user.sub] = now
        call.session_id = session_id
        return _json(call, 200, self._tokens_payload(user, access_token, refresh_token))

    def _refresh(self, call: WorkOSCall, body: Mapping[str, Any]) -> Answer:
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            return _oauth_error(call, 400, "invalid_request", "refresh_token is required.")
        if body.get("organization_id") is not None:
            return _oauth_error(
                call, 400, "invalid_request", "The fake WorkOS has no organizations to switch to."
            )
        record = self._refresh_tokens.get(token)
        if record is None:
            return _oauth_error(call, 400, "invalid_grant", REFRESH_TOKEN_UNKNOWN)
        session = self.sessions[record.session_id]
        call.session_id, call.user = session.id, session.user
        if not session.active:
            return _oauth_error(call, 400, "invalid_grant", SESSION_ENDED)
        if session.client_id != body["client_id"]:
            return _oauth_error(
                call, 400, "invalid_grant", "The token was issued to another client."
            )
        now = self._clock()
        if record.spent_at is not None:
            if (
                record.reply is not None
                and record.successor == session.refresh_token
                and now - record.spent_at <= self.refresh_grace
            ):
                # A replay within the grace period, before the new token was used: same answer.
                call.status = 200
                return Answer(200, record.reply)
            if self.reuse_revokes_session:
                self._end(session, "refresh_token_reused")
            return _oauth_error(call, 400, "invalid_grant", REFRESH_TOKEN_REUSED)

        user = self._world().user(session.sub)
        access_token, claims = self._tokens.issue_session_token(
            sub=session.sub, sid=session.id, expires_in=self.access_token_ttl
        )
        successor = self._new_refresh_token(session.id)
        answer = _json(call, 200, self._tokens_payload(user, access_token, successor))
        record.spent_at, record.successor, record.reply = now, successor, answer.body
        session.refresh_token = successor
        session.refreshes += 1
        session.access_token_expires_at = claims["exp"]
        return answer

    def _new_refresh_token(self, session_id: str) -> str:
        token = secrets.token_urlsafe(32)
        self._refresh_tokens[token] = _RefreshToken(session_id=session_id)
        return token

    def _tokens_payload(self, user: User, access_token: str, refresh_token: str) -> dict[str, Any]:
        return {
            "user": self.user_object(user),
            "organization_id": None,
            "access_token": access_token,
            "refresh_token": refresh_token,
            "authentication_method": AUTHENTICATION_METHOD,
        }

    def user_object(self, user: User) -> dict[str, Any]:
        """`user` as WorkOS's User object."""
        first_name, _, last_name = user.name.partition(" ")
        created_at = _ulid_time(user.sub.removeprefix("user_"))
        signed_in_at = self._signed_in_at.get(user.sub)
        return {
            "object": "user",
            "id": user.sub,
            "email": user.email,
            "email_verified": True,
            "first_name": first_name,
            "last_name": last_name or None,
            "profile_picture_url": None,
            "external_id": None,
            "metadata": {},
            "locale": None,
            "last_sign_in_at": None if signed_in_at is None else _iso(signed_in_at),
            "created_at": _iso(created_at),
            "updated_at": _iso(max(created_at, signed_in_at or created_at)),
        }

    # -- the other endpoints ------------------------------------------------------------------

    def _check_api_key(self, call: WorkOSCall, request: _Request) -> Answer | None:
        if request.api_key == self.api_key:
            return None
        call.error = "Unauthorized"
        payload = {"error": "Unauthorized", "message": "Invalid or missing API key."}
        return _json(call, 401, payload)

    def _revoke(self, call: WorkOSCall, request: _Request) -> Answer:
        if request.method != "POST":
            return _api_error(call, 405, "method_not_allowed", "Use POST.", allow="POST")
        refused = self._check_api_key(call, request)
        if refused is not None:
            return refused
        if request.body_error is not None:
            return _api_error(call, 400, "invalid_request_body", request.body_error)
        session_id = request.body.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            return _api_error(
                call,
                422,
                "invalid_request_parameters",
                "session_id is required.",
                missing="session_id",
            )
        session = self.sessions.get(session_id)
        if session is None:
            return _api_error(call, 404, "entity_not_found", f"Session not found: '{session_id}'.")
        call.session_id, call.user = session.id, session.user
        self._end(session, "revoked")
        return _json(call, 200, {})

    def _logout(self, call: WorkOSCall, request: _Request) -> Answer:
        if request.method not in ("GET", "HEAD"):
            return _page(call, 405, "Method not allowed", "Open this page with GET.")
        session_id = request.query.get("session_id")
        if not session_id:
            return _api_error(call, 422, "invalid_request_parameters", "session_id is required.")
        session = self.sessions.get(session_id)
        if session is not None:
            call.session_id, call.user = session.id, session.user
            self._end(session, "signed_out")
        return_to = request.query.get("return_to")
        if not return_to:
            return _page(call, 200, "Signed out", "You have been signed out.")
        if self.allowed_redirects and return_to not in self.allowed_redirects:
            return _page(call, 400, "Invalid return_to", f"{return_to!r} is not allowed.")
        return _redirect(return_to, {}, None)

    def _get_user(self, call: WorkOSCall, request: _Request, user_id: str) -> Answer:
        if request.method not in ("GET", "HEAD"):
            return _api_error(call, 405, "method_not_allowed", "Use GET.", allow="GET")
        refused = self._check_api_key(call, request)
        if refused is not None:
            return refused
        user = self._world().user_by_sub(user_id)
        if user is None:
            return _api_error(call, 404, "entity_not_found", f"User not found: '{user_id}'.")
        call.user = user.label
        return _json(call, 200, self.user_object(user))

    def _jwks(self, call: WorkOSCall, request: _Request, client_id: str) -> Answer:
        if request.method not in ("GET", "HEAD"):
            return _api_error(call, 405, "method_not_allowed", "Use GET.", allow="GET")
        if client_id != self.client_id:
            return _api_error(call, 404, "entity_not_found", f"Client not found: '{client_id}'.")
        return _json(call, 200, self._tokens.workos_jwks())


# -- helpers ----------------------------------------------------------------------------------


def _endpoint(path: str) -> str:
    if path == AUTHORIZE_PATH:
        return "authorize"
    if path == AUTHENTICATE_PATH:
        return "authenticate"
    if path == REVOKE_SESSION_PATH:
        return "revoke_session"
    if path == LOGOUT_PATH:
        return "logout"
    if path.startswith(USERS_PREFIX):
        return "get_user"
    if path.startswith(JWKS_PREFIX):
        return "jwks"
    return "unknown"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    """The body as a dict (JSON, or a form as OAuth clients may send), or an error message."""
    if not body.strip():
        return {}, None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}, "The request body is not UTF-8."
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True)), None
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}, "Problems parsing JSON."
    if not isinstance(parsed, dict):
        return {}, "The request body must be a JSON object."
    return parsed, None


def _json(call: WorkOSCall, status: int, payload: Any, **headers: str) -> Answer:
    call.status = status
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Answer(
        status, body, headers=tuple((name.title(), value) for name, value in headers.items())
    )


def _oauth_error(call: WorkOSCall, status: int, error: str, description: str) -> Answer:
    call.error, call.error_description = error, description
    return _json(call, status, {"error": error, "error_description": description})


def _api_error(
    call: WorkOSCall,
    status: int,
    code: str,
    message: str,
    *,
    allow: str | None = None,
    missing: str | None = None,
) -> Answer:
    call.error, call.error_description = code, message
    payload: dict[str, Any] = {"code": code, "message": message}
    if missing is not None:
        payload["errors"] = [{"field": missing, "code": f"{missing}_required"}]
    headers = {"allow": allow} if allow else {}
    return _json(call, status, payload, **headers)


def _page(call: WorkOSCall, status: int, title: str, detail: str) -> Answer:
    """An HTML page, as a browser on the authorize or logout URL is shown."""
    call.status = status
    if status >= 400 and call.error_description is None:
        call.error_description = detail
    body = (
        "<!DOCTYPE html>\n<html><head><title>"
        f"{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(detail)}</p></body></html>\n"
    ).encode()
    return Answer(status, body, "text/html; charset=utf-8")


def _redirect(uri: str, params: Mapping[str, str], state: str | None) -> Answer:
    """302 to `uri` with `params` (and `state`, when the client sent one) added to its query."""
    split = urlsplit(uri)
    query = parse_qsl(split.query, keep_blank_values=True)
    query.extend(params.items())
    if state is not None:
        query.append(("state", state))
    location = urlunsplit(split._replace(query=urlencode(query)))
    body = f'<a href="{html.escape(location)}">Redirecting</a>\n'.encode()
    return Answer(302, body, "text/html; charset=utf-8", (("Location", location),))


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _ulid(now: float) -> str:
    """A ULID for `now`: 48 bits of milliseconds, 80 random bits, in Crockford's base32."""
    number = int(now * 1000) << 80 | secrets.randbits(80)
    return "".join(_ULID_ALPHABET[(number >> (5 * (25 - i))) & 31] for i in range(26))


def _ulid_time(ulid: str) -> float:
    """When a ULID was made, in seconds (the epoch if it is not one)."""
    try:
        millis = 0
        for char in ulid[:10]:
            millis = millis * 32 + _ULID_ALPHABET.index(char)
    except ValueError:
        return 0.0
    return millis / 1000


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
