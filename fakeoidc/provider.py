"""FakeOIDC: the authorization code flow of an OpenID Connect provider, on a loopback port.

`/authorize` approves at once, as the person chosen with `sign_in_as()`, and sends the browser
back with a code; it requires PKCE (S256), refusing an authorization request without a challenge.
`/token` checks the client secret, the redirect URI and the PKCE verifier, and
issues an access token and an RS256 identity token (nonce, audience, expiry). `/jwks` publishes
the signing key; `/userinfo` answers for an access token; `/logout` (the end-session endpoint)
sends the browser back to the client's post-logout URI. Every request is recorded (path and
method only). It shares no code with the console's OIDC backend (accounts/oidc.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_CLIENT_ID = "connvo-console"
DEFAULT_CLIENT_SECRET = "fake-oidc-client-secret"
TOKEN_TTL = 300


@dataclass(frozen=True, slots=True)
class Person:
    username: str
    email: str = ""
    groups: tuple[str, ...] = ()
    given_name: str = ""
    family_name: str = ""
    # The provider's stable identifier for the person; by default derived from the username.
    subject: str = ""

    def claims(self) -> dict[str, Any]:
        return {
            "sub": self.subject or "sub-" + hashlib.sha256(self.username.encode()).hexdigest()[:16],
            "preferred_username": self.username,
            "email": self.email or f"{self.username}@example.com",
            "email_verified": True,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "groups": list(self.groups),
        }


@dataclass
class _Grant:
    person: Person
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str


@dataclass
class FakeOIDC:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    person: Person = field(default_factory=lambda: Person("alice", groups=("support",)))
    # Misbehaviour for tests: identity tokens for another application, or refusal at /authorize.
    audience: str | None = None
    deny: bool = False
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(4)
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- Control ------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        provider = self

        class Handler(_Handler):
            fake = provider

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        # Checked for shutdown every 50 ms, not serve_forever's 500: stop() waits for it.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def sign_in_as(self, username: str, *, groups: tuple[str, ...] = (), **details: str) -> None:
        """Who /authorize approves next."""
        self.person = Person(username, groups=tuple(groups), **details)

    def settings(self) -> dict[str, str]:
        """The console's OIDC_* settings for this provider (environment variable names)."""
        return {
            "OIDC_RP_CLIENT_ID": self.client_id,
            "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.url}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/jwks",
            "OIDC_OP_ISSUER": self.url,
        }

    # --- Endpoints ----------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri.startswith("http"):
            return 400, {}, b"unknown client or redirect_uri"
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return 400, {}, b"only the openid authorization code flow"
        state = query.get("state", "")
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            # Like a provider whose client is set to require PKCE: a plain code flow is refused.
            params = {
                "error": "invalid_request",
                "error_description": "PKCE (code_challenge, method S256) is required",
                "state": state,
            }
        elif self.deny:
            params = {"error": "access_denied", "state": state}
        else:
            code = secrets.token_urlsafe(16)
            with self._lock:
                self._grants[code] = _Grant(
                    person=self.person,
                    client_id=self.client_id,
                    redirect_uri=redirect_uri,
                    nonce=query.get("nonce"),
                    code_challenge=query["code_challenge"],
                )
            params = {"code": code, "state": state}
        separator = "&" if "?" in redirect_uri else "?"
        return 302, {"Location": redirect_uri + separator + urlencode(params)}, b""

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # a code works once
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if challenge != grant.code_challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = grant.person.claims()
        id_claims = {
            **claims,
            "iss": self.url,
            "aud": self.audience or grant.client_id,
            "iat": now,
            "exp": now + TOKEN_TTL,
        }
        if grant.nonce is not None:
            id_claims["nonce"] = grant.nonce
        id_token = jwt.encode(id_claims, self._key, algorithm="RS256", headers={"kid": self._kid})
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._access[access_token] = claims
        return 200, {
            "access_token": access_token,
            "id_token": id_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL,
        }

    def userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
        with self._lock:
            claims = self._access.get(token)
        if claims is None:
            return 401, {"error": "invalid_token"}
        return 200, claims

    def end_session(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """RP-initiated logout: back to the client's post-logout URI when the client is known."""
        back = query.get("post_logout_redirect_uri", "")
        if query.get("client_id") != self.client_id or not back.startswith("http"):
            return 400, {}, b"unknown client or post_logout_redirect_uri"
        return 302, {"Location": back}, b""

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**jwk, "kid": self._kid, "alg": "RS256", "use": "sig"}]}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOIDC

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.fake.calls.append(f"GET {parts.path}")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if parts.path == "/authorize":
            status, headers, body = self.fake.authorize(query)
            self._send(status, body, "text/plain", headers)
        elif parts.path == "/jwks":
            self._json(200, self.fake.jwks())
        elif parts.path == "/userinfo":
            self._json(*self.fake.userinfo(self.headers.get("Authorization", "")))
        elif parts.path == "/logout":
            status, headers, body = self.fake.end_session(query)
            self._send(status, body, "text/plain", headers)
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        self.fake.calls.append(f"POST {parts.path}")
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if parts.path == "/token":
            self._json(*self.fake.token(form, self.headers.get("Authorization", "")))
        else:
            self._json(404, {"error": "not_found"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", {})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `calls` instead."""
