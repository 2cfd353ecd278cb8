"""Tokens an agent pastes (deployments without WorkOS): checking a paste before it is saved, and
saving or removing it together with its audit entry."""

from __future__ import annotations

import re
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from audit.models import Action
from audit.services import Origin, record

from .connvo import NoToken
from .credentials import Claims, read_claims, reveal, store_credential
from .models import StaffToken

MAX_TOKEN_LENGTH = 16_384
# `"value":` before a token copied out of JSON (Connvo's answer, a browser's storage).
_JSON_KEY = re.compile(r'^"value"\s*:\s*')


class TokenNotAccepted(ValueError):
    """What the agent pasted cannot be saved; the message says why, without repeating it."""


def _unwrapped(raw: str) -> str:
    """A paste without what is often copied around a token: spaces and line breaks at either end,
    "Bearer ", and the JSON it was copied from (`"value": "eyJ…",` — the quotes, the key, a
    trailing comma). Only what surrounds it: nothing inside the token is changed."""
    token = (raw or "").strip()
    while True:
        before = token
        token = _JSON_KEY.sub("", token).removesuffix(",").strip()
        if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
            token = token[1:-1].strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        if token == before:
            return token


def inspect_token(raw: str) -> tuple[str, Claims]:
    """Clean up a pasted token and read its claims. The signature is not checked here (only
    Connvo can); this catches pastes that cannot possibly work, before they are saved."""
    token = _unwrapped(raw)
    if not token:
        raise TokenNotAccepted("Paste your Connvo token.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenNotAccepted(
            f"That is longer than any Connvo token: {len(token):,} characters, where a token has "
            f"at most {MAX_TOKEN_LENGTH:,}. Copy only the token (it starts with “eyJ”)."
        )
    if any(c.isspace() for c in token):
        raise TokenNotAccepted(
            "That does not look like a Connvo token: it contains spaces or line breaks. Copy the "
            "token again, as one piece."
        )
    if len(token.split(".")) != 3:
        raise TokenNotAccepted(
            "That does not look like a Connvo token: a token has three parts separated by dots "
            "(it starts with “eyJ”). Copy the whole token again."
        )
    claims = read_claims(token)
    if claims is None:
        raise TokenNotAccepted(
            "That does not look like a Connvo token: its parts cannot be read. Copy the whole "
            "token again."
        )
    if claims.expires_at is not None and claims.expires_at <= timezone.now():
        raise TokenNotAccepted(
            f"That token expired on {timezone.localtime(claims.expires_at):%d %b %Y at %H:%M}. "
            "Sign in to Connvo again and copy a fresh one."
        )
    return token, claims


def save_token(
    *, user: AbstractBaseUser, deployment_name: str, raw_token: str, origin: Origin
) -> StaffToken:
    """Save or replace the agent's token for a deployment, and its audit entry, as one write.
    Raises TokenNotAccepted (nothing written), or DatabaseError (nothing written either)."""
    with transaction.atomic():
        existed = StaffToken.objects.filter(user=user, deployment=deployment_name).exists()
        stored = store_token(user=user, deployment_name=deployment_name, raw_token=raw_token)
        record(
            origin=origin,
            action=Action.TOKEN_REPLACED if existed else Action.TOKEN_SAVED,
            deployment=deployment_name,
        )
    return stored


def store_token(*, user: AbstractBaseUser, deployment_name: str, raw_token: str) -> StaffToken:
    """Store a token without an audit entry: for setting up the demo and tests, never for an
    agent's own action (that is `save_token`). Raises TokenNotAccepted."""
    token, _ = inspect_token(raw_token)
    return store_credential(user=user, deployment_name=deployment_name, access_token=token)


def token_lifetime(token: str) -> timedelta | None:
    """How long a token lasts from when it was issued: its `exp` less its `iat`, as the token
    itself says (read, not verified). None when it does not say both, or says nonsense."""
    claims = read_claims(token)
    if claims is None or claims.issued_at is None or claims.expires_at is None:
        return None
    if claims.expires_at <= claims.issued_at:
        return None
    return claims.expires_at - claims.issued_at


def stored_lifetime(stored: StaffToken) -> timedelta | None:
    """The lifetime of an agent's saved pasted token (see `token_lifetime`); None when it cannot
    be read (the console's keys changed)."""
    try:
        return token_lifetime(reveal(stored))
    except NoToken:
        return None
