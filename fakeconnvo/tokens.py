"""User tokens for the fake deployment: RS256 JWTs shaped like WorkOS access tokens.

Connvo's Convex deployment trusts WorkOS as its OIDC provider. The fake plays both parts: it signs
tokens with an RSA key it makes at start-up and verifies them the way Convex would.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_ISSUER: Final = "https://auth.fake-connvo.test"


class TokenRejected(Exception):
    """Convex could not verify the bearer token (bad signature, expired, unknown issuer...)."""


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_id(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


class TokenAuthority:
    """Signs tokens for the fake's users and checks the bearer tokens it receives."""

    def __init__(self, issuer: str = DEFAULT_ISSUER) -> None:
        self.issuer = issuer
        self._key = _new_key()
        self.key_id = _key_id(self._key)
        # Made on first use: a token signed by a key the deployment has never heard of.
        self._foreign_key: rsa.RSAPrivateKey | None = None

    def issue(
        self,
        *,
        sub: str,
        expires_in: float = 3600,
        include_sub: bool = True,
        issuer: str | None = None,
        foreign_key: bool = False,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        expires_at = now + int(expires_in)
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": sub,
            # An already-expired token was still issued before it expired.
            "iat": min(now, expires_at - 60),
            "exp": expires_at,
            "sid": "session_" + secrets.token_hex(13).upper(),
            "jti": secrets.token_hex(16),
        }
        if not include_sub:
            del claims["sub"]
        claims.update(extra_claims or {})
        if foreign_key:
            if self._foreign_key is None:
                self._foreign_key = _new_key()
            key = self._foreign_key
        else:
            key = self._key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": _key_id(key)})

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or TokenRejected. A missing `sub` is left to the function."""
        try:
            return jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                issuer=self.issuer,
                # WorkOS access tokens carry no audience, so Convex is configured not to check one.
                options={"require": ["iss", "exp", "iat"], "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise TokenRejected(str(error)) from error

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def public_key_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
