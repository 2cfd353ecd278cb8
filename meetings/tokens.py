"""Staff members' Connvo tokens: checking what an agent pastes, encrypting it at rest, and handing
the plaintext to the Connvo client only at lookup time. Nothing here logs a token."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from .connvo import NoToken
from .models import StaffToken

MAX_TOKEN_LENGTH = 16_384


class TokenNotAccepted(ValueError):
    """What the agent pasted cannot be saved; the message says why, without repeating it."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    subject: str
    expires_at: datetime | None
    last4: str


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS must name at least one Fernet key.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, binascii.Error) as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64-encoded bytes); "
            "make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from exc


def cipher() -> MultiFernet:
    """The first key encrypts; every listed key decrypts, so keys can be rotated."""
    return _cipher(tuple(settings.TOKEN_ENCRYPTION_KEYS))


def _b64url_json(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def inspect_token(raw: str) -> tuple[str, TokenInfo]:
    """Clean up a pasted token and read its claims. The signature is not checked here (only
    Connvo can); this catches pastes that cannot possibly work, before they are saved."""
    token = (raw or "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise TokenNotAccepted("Paste your Connvo token.")
    if len(token) > MAX_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise TokenNotAccepted(
            "That does not look like a Connvo token: it contains spaces or line breaks. Copy the "
            "token again, as one piece."
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenNotAccepted(
            "That does not look like a Connvo token: a token has three parts separated by dots "
            "(it starts with “eyJ”). Copy the whole token again."
        )
    try:
        claims = _b64url_json(parts[1])
    except (ValueError, UnicodeError, binascii.Error):
        claims = None
    if not isinstance(claims, dict):
        raise TokenNotAccepted(
            "That does not look like a Connvo token: its middle part cannot be read. Copy the "
            "whole token again."
        )
    expires_at = None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        expires_at = datetime.fromtimestamp(exp, tz=UTC)
        if expires_at <= timezone.now():
            raise TokenNotAccepted(
                f"That token expired on {timezone.localtime(expires_at):%d %b %Y at %H:%M}. "
                "Sign in to Connvo again and copy a fresh one."
            )
    subject = claims.get("sub")
    return token, TokenInfo(
        subject=subject if isinstance(subject, str) else "",
        expires_at=expires_at,
        last4=token[-4:],
    )


def save_token(*, user: AbstractBaseUser, deployment: str, raw_token: str) -> StaffToken:
    """Save or replace the agent's token for a deployment. Raises TokenNotAccepted."""
    token, info = inspect_token(raw_token)
    with transaction.atomic():
        stored, _ = StaffToken.objects.update_or_create(
            user=user,
            deployment=deployment,
            defaults={
                "ciphertext": cipher().encrypt(token.encode()),
                "last4": info.last4,
                "subject": info.subject[:255],
                "expires_at": info.expires_at,
            },
        )
    return stored


def remove_token(*, user: AbstractBaseUser, deployment: str) -> bool:
    deleted, _ = StaffToken.objects.filter(user=user, deployment=deployment).delete()
    return bool(deleted)


def no_token(deployment: str) -> NoToken:
    return NoToken(
        f"You have no Connvo token saved for {deployment}. Add it on the Tokens page, then "
        "look up the meeting again."
    )


@lru_cache(maxsize=1024)
def _decrypt(keys: tuple[str, ...], ciphertext: bytes) -> str:
    # Every refresh of an open meeting page reads the same ciphertext: decrypt it once per process
    # (for these keys; a failure is not remembered). The plaintext stays in this process's memory
    # only, like the token it sends to Connvo; the database keeps only ciphertext.
    return _cipher(keys).decrypt(ciphertext).decode()


def reveal(stored: StaffToken, *, refresh: bool = False) -> str:
    """The plaintext of a stored access token (or, with `refresh`, refresh token)."""
    ciphertext = bytes(stored.refresh_ciphertext if refresh else stored.ciphertext)
    try:
        return _decrypt(tuple(settings.TOKEN_ENCRYPTION_KEYS), ciphertext)
    except InvalidToken:
        # The key that encrypted it was removed from TOKEN_ENCRYPTION_KEYS.
        raise NoToken(
            f"Your saved token for {stored.deployment} can no longer be read (the console's "
            "encryption keys changed). Save your token again on the Tokens page."
        ) from None


def token_for(*, user: AbstractBaseUser, deployment: str) -> str:
    """The plaintext token to send to Connvo, or NoToken with what the agent should do."""
    stored = StaffToken.objects.filter(user=user, deployment=deployment).first()
    if stored is None:
        raise no_token(deployment)
    return reveal(stored)


def expires_soon(stored: StaffToken) -> bool:
    if stored.expires_at is None:
        return False
    remaining = (stored.expires_at - timezone.now()).total_seconds()
    return remaining < settings.CONNVO_TOKEN_EXPIRY_WARNING
