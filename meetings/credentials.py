"""The agent's Connvo credential for a deployment, one `StaffToken` row: a pasted access token
(meetings/pasted_tokens.py) or a WorkOS-connected session (meetings/connect.py). Here it is
encrypted at rest, its claims are read, and `access_token_for()` hands the Connvo client a valid
access token at lookup time. Nothing here logs a token.

Connvo's tokens are WorkOS AuthKit access tokens that live about five minutes. For deployments
with WorkOS configured, the console holds the agent's session (access token + refresh token, both
encrypted) and renews the access token shortly before it expires, with WorkOS's official SDK.
WorkOS refresh tokens are single-use: renewals of one credential are serialised with a row lock
(SELECT … FOR UPDATE; SQLite's writer lock), and whoever waited re-reads what the winner stored.
"""

from __future__ import annotations

import binascii
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
import workos
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit.models import Action
from audit.services import Origin, record
from connvo_admin.outcomes import LookupFailed, Outcome

from .connvo import NoToken
from .models import StaffToken
from .workos_auth import describe_error, is_session_over, is_workos_deployment, workos_client

logger = logging.getLogger(__name__)


# --- Encryption at rest -------------------------------------------------------------------------


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


def seal(plaintext: str) -> bytes:
    return cipher().encrypt(plaintext.encode())


def reveal(stored: StaffToken, *, refresh: bool = False) -> str:
    """The plaintext of a stored access token (or, with `refresh`, refresh token)."""
    try:
        return (
            cipher()
            .decrypt(bytes(stored.refresh_ciphertext if refresh else stored.ciphertext))
            .decode()
        )
    except InvalidToken:
        # The key that encrypted it was removed from TOKEN_ENCRYPTION_KEYS.
        raise NoToken(
            f"Your saved token for {stored.deployment} can no longer be read (the console's "
            "encryption keys changed). Save your token again on the Tokens page."
        ) from None


# --- Claims -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str = ""
    session_id: str = ""
    expires_at: datetime | None = None


def read_claims(access_token: str) -> Claims | None:
    """The claims the console shows and schedules by, or None when the token cannot be read as a
    JWT. Not a verification: only Connvo can verify its tokens."""
    try:
        payload = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return Claims(
        subject=_text(payload.get("sub")),
        session_id=_text(payload.get("sid")),
        expires_at=_timestamp(payload.get("exp")),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None  # out of any calendar's range (or NaN): as good as no expiry date


def expires_within(stored: StaffToken, *, seconds: float) -> bool:
    """Whether the stored access token ends within `seconds` from now (or has ended: 0)."""
    if stored.expires_at is None:
        return False
    return stored.expires_at - timedelta(seconds=seconds) <= timezone.now()


def stored_credentials(user: AbstractBaseUser) -> dict[str, StaffToken]:
    """The agent's stored credentials, by deployment name (for the Tokens page)."""
    return {stored.deployment: stored for stored in StaffToken.objects.filter(user=user)}


# --- The access token for a lookup --------------------------------------------------------------


class SessionEnded(LookupFailed):
    """WorkOS refused the refresh token: the agent's Connvo session was revoked or expired."""

    outcome = Outcome.SESSION_ENDED
    title = "Your Connvo session has ended"


class WorkOSUnavailable(LookupFailed):
    """WorkOS could not be reached (or failed) while renewing the access token."""

    outcome = Outcome.AUTH_UNAVAILABLE
    title = "Your Connvo session could not be renewed"


def no_token(deployment_name: str) -> NoToken:
    return NoToken(
        f"You have no Connvo token saved for {deployment_name}. Add it on the Tokens page, then "
        "look up the meeting again."
    )


def _renewal_due(stored: StaffToken) -> bool:
    return expires_within(stored, seconds=settings.CONNVO_REFRESH_MARGIN)


def access_token_for(*, user: AbstractBaseUser, deployment_name: str, origin: Origin) -> str:
    """A Connvo access token for this agent on this deployment, renewed first if it is about to
    expire. Raises NoToken, SessionEnded or WorkOSUnavailable."""
    stored = StaffToken.objects.filter(user=user, deployment=deployment_name).first()
    if stored is None:
        raise no_token(deployment_name)
    if stored.session_ended:
        raise _session_ended(stored)
    if not stored.is_connected_session or not _renewal_due(stored):
        return reveal(stored)
    if not is_workos_deployment(deployment_name):
        raise NoToken(
            f"Your Connvo session for {deployment_name} needs renewing, but the console no longer "
            "has WorkOS settings for it. Ask the console's administrators."
        )
    return _refresh(user=user, deployment_name=deployment_name, origin=origin)


def _refresh(*, user: AbstractBaseUser, deployment_name: str, origin: Origin) -> str:
    with transaction.atomic():
        # Waits here while another worker (or host) renews this same credential.
        stored = (
            StaffToken.objects.select_for_update()
            .filter(user=user, deployment=deployment_name)
            .first()
        )
        if stored is None:
            raise NoToken(f"You have no Connvo account connected for {deployment_name}.")
        if stored.session_ended:
            # It ended while we waited (another request learnt it first): the same answer.
            raise _session_ended(stored)
        if not _renewal_due(stored):
            # Someone renewed it while we waited: use theirs, keep the refresh token unspent.
            return reveal(stored)
        refresh_token = reveal(stored, refresh=True)
        failure: LookupFailed
        try:
            answer = workos_client(deployment_name).user_management.authenticate_with_refresh_token(
                refresh_token=refresh_token
            )
            if not _is_session_answer(answer):
                raise _NotJSON
        except _NotJSON:
            # A 2xx that is not WorkOS's JSON (a proxy's or captive portal's page): the SDK
            # gives back None. Nothing was renewed, and the session is as fine as before.
            failure = WorkOSUnavailable(
                f"The console could not reach WorkOS to renew your Connvo session for "
                f"{deployment_name}. Try again in a minute; you stay connected.",
                detail="WorkOS answered with something that is not JSON (a proxy page?)",
            )
            _audit_refresh(origin, deployment_name, ok=False, detail=failure.detail)
        except (workos.WorkOSError, OSError) as exc:
            if is_session_over(exc):
                # The refresh token is spent, revoked or expired: the session is over for good.
                # Remember that (and why) rather than forget the credential, so that every
                # request until the agent reconnects or removes it says so.
                stored.ciphertext = b""
                stored.refresh_ciphertext = b""
                stored.session_ended_at = timezone.now()
                stored.session_end_reason = describe_error(exc)[:500]
                stored.save()
                failure = _session_ended(stored)
            else:
                # Unreachable, slow, overloaded or misconfigured: the session itself is fine, so
                # the refresh token is kept for the next attempt.
                failure = WorkOSUnavailable(
                    f"The console could not reach WorkOS to renew your Connvo session for "
                    f"{deployment_name}. Try again in a minute; you stay connected.",
                    detail=describe_error(exc),
                )
            _audit_refresh(origin, deployment_name, ok=False, detail=failure.detail)
        else:
            claims = read_claims(answer.access_token) or Claims()
            stored.ciphertext = seal(answer.access_token)
            stored.refresh_ciphertext = seal(answer.refresh_token)
            stored.last4 = answer.access_token[-4:]
            stored.subject = claims.subject[:255] or stored.subject
            stored.session_id = claims.session_id[:255] or stored.session_id
            stored.expires_at = claims.expires_at
            stored.save()
            _audit_refresh(origin, deployment_name, ok=True, detail=f"expires {claims.expires_at}")
            return answer.access_token
    # Raised outside the atomic block, so what was recorded about the failure is kept.
    raise failure


def _session_ended(stored: StaffToken) -> SessionEnded:
    return SessionEnded(
        f"Your Connvo session for {stored.deployment} has ended (signed out, revoked, or "
        "expired). Reconnect your Connvo account on the Tokens page.",
        detail=stored.session_end_reason,
    )


class _NotJSON(Exception):
    pass


def _is_session_answer(answer: object) -> bool:
    return all(
        isinstance(getattr(answer, name, None), str) and getattr(answer, name)
        for name in ("access_token", "refresh_token")
    )


def _audit_refresh(origin: Origin, deployment_name: str, *, ok: bool, detail: str) -> None:
    record(
        origin=origin,
        action=Action.TOKEN_REFRESHED if ok else Action.TOKEN_REFRESH_FAILED,
        deployment=deployment_name,
        detail=detail,
    )


def store_credential(
    *,
    user: AbstractBaseUser,
    deployment_name: str,
    access_token: str,
    refresh_token: str | None = None,
    email: str = "",
) -> StaffToken:
    """Save (or replace) the agent's credential for a deployment: a pasted access token, or, with
    `refresh_token`, a WorkOS-connected session. No audit entry: the callers write theirs."""
    claims = read_claims(access_token) or Claims()
    fields = {
        "ciphertext": seal(access_token),
        "last4": access_token[-4:],
        "subject": claims.subject[:255],
        "expires_at": claims.expires_at,
        # Saving a credential again (reconnecting) ends an ended session's notice.
        "session_ended_at": None,
        "session_end_reason": "",
    }
    if refresh_token is not None:
        fields |= {
            "refresh_ciphertext": seal(refresh_token),
            "session_id": claims.session_id[:255],
            "email": email[:254],
        }
    stored, _ = StaffToken.objects.update_or_create(
        user=user, deployment=deployment_name, defaults=fields
    )
    return stored
