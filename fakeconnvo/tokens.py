"""User tokens for the fake deployment: RS256 JWTs shaped like WorkOS access tokens.

Connvo's Convex deployment trusts WorkOS as its OIDC provider. The fake plays both parts: it signs
tokens with an RSA key of its own and verifies them the way Convex would.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

DEFAULT_ISSUER: Final = "https://auth.fake-connvo.test"


class TokenRejected(Exception):
    """Convex could not verify the bearer token (bad signature, expired, unknown issuer...)."""


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# A 2,048-bit RSA key takes about 60 ms of CPU to make, and a test run starts a fake for most of
# its tests. The key of a fake that is gone (its TokenAuthority collected) is handed to the next
# fake made in the process: fakes alive at the same time still have keys of their own, so one
# deployment never accepts another's tokens.
_spare_keys: list[rsa.RSAPrivateKey] = []
_spare_keys_lock = threading.Lock()


def _take_key() -> rsa.RSAPrivateKey:
    with _spare_keys_lock:
        if _spare_keys:
            return _spare_keys.pop()
    return _new_key()


def _give_back(key: rsa.RSAPrivateKey) -> None:
    with _spare_keys_lock:
        _spare_keys.append(key)


def _key_id(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


class TokenAuthority:
    """Signs tokens for the fake's users and checks the bearer tokens it receives."""

    def __init__(self, issuer: str = DEFAULT_ISSUER) -> None:
        self.issuer = issuer
        self._key = _take_key()
        weakref.finalize(self, _give_back, self._key)
        self.key_id = _key_id(self._key)
        # Made on first use: a token signed by a key the deployment has never heard of.
        self._foreign_key: rsa.RSAPrivateKey | None = None
        # Made on first use: WorkOS's JWKS carries the key's certificate too (x5c).
        self._certificate: bytes | None = None

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

    def issue_session_token(
        self, *, sub: str, sid: str, expires_in: float
    ) -> tuple[str, dict[str, Any]]:
        """A WorkOS AuthKit access token for session `sid`, and its claims. Issued now and expiring
        `expires_in` seconds from now (rounded down to a whole second, as `exp` is): zero or less
        gives a token that is already expired."""
        now = time.time()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "sid": sid,
            "jti": secrets.token_hex(16),
            "iat": int(now),
            "exp": int(now + expires_in),
        }
        return jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self.key_id}
        ), claims

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

    def workos_jwks(self) -> dict[str, Any]:
        """The JWKS as WorkOS serves it at /sso/jwks/<client id>: with the key's certificate."""
        if self._certificate is None:
            self._certificate = _self_signed(self._key, self.issuer)
        jwks = self.jwks()
        digest = hashlib.sha256(self._certificate).digest()
        jwks["keys"][0]["x5c"] = [base64.b64encode(self._certificate).decode()]
        jwks["keys"][0]["x5t#S256"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return jwks

    def public_key_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


def _self_signed(key: rsa.RSAPrivateKey, issuer: str) -> bytes:
    """A self-signed certificate (DER) for `key`, good for a year from now."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer.removeprefix("https://"))])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)
