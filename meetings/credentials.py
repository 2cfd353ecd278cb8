"""The agent's Connvo credential for a deployment, one `StaffToken` row: a pasted access token
(meetings/pasted_tokens.py) or a WorkOS-connected session (meetings/connect.py). Here it is
encrypted at rest, its claims are read, and `access_token_for()` hands the Connvo client a valid
access token at lookup time. Nothing here logs a token.

Connvo's tokens are WorkOS AuthKit access tokens that live about five minutes. For deployments
with WorkOS configured, the console holds the agent's session (access token + refresh token, both
encrypted) and renews the access token shortly before it expires, with WorkOS's official SDK.
WorkOS refresh tokens are single-use: one request claims a credential's renewal in a short
transaction, calls WorkOS outside any transaction, and stores the answer; the others wait for that
answer and use it (see `_refresh`).
"""

from __future__ import annotations

import binascii
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
import workos
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit.models import Action
from audit.services import Origin, fit, record
from connvo_admin.outcomes import LookupFailed, Outcome

from .connvo import NoToken, missing_token
from .deployments import get_deployment
from .models import StaffToken
from .templatetags.meeting_format import instant
from .workos_auth import (
    NotWorkOSAnswer,
    describe_error,
    is_session_over,
    is_workos_deployment,
    session_answer,
    takes_pasted_tokens,
    workos_client,
)

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
        raise missing_token(stored.deployment, unreadable=True) from None


# --- Claims -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str = ""
    session_id: str = ""
    issued_at: datetime | None = None
    expires_at: datetime | None = None


def read_claims(access_token: str) -> Claims | None:
    """The claims the console shows and schedules by, or None when the token cannot be read as a
    JWT: the one reading of a token's claims. Not a verification: only Connvo can verify its
    tokens. A time that is not a date every agent's page can show (past any calendar, or within a
    day of its ends) counts as none: as good as no expiry date."""
    try:
        payload = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return Claims(
        subject=_text(payload.get("sub")),
        session_id=_text(payload.get("sid")),
        issued_at=instant(payload.get("iat")),
        expires_at=instant(payload.get("exp")),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def expires_within(stored: StaffToken, *, seconds: float) -> bool:
    """Whether the stored access token ends within `seconds` from now (or has ended: 0)."""
    if stored.expires_at is None:
        return False
    # Added to now, not taken from the expiry: that may be the calendar's first day.
    return stored.expires_at <= timezone.now() + timedelta(seconds=seconds)


def stored_credentials(user: AbstractBaseUser) -> dict[str, StaffToken]:
    """The agent's stored credentials, by deployment name (for the Tokens page)."""
    return {stored.deployment: stored for stored in StaffToken.objects.filter(user=user)}


# --- The access token for a lookup --------------------------------------------------------------


class SessionEnded(LookupFailed):
    """WorkOS refused the refresh token: the agent's Connvo session was revoked or expired."""

    outcome = Outcome.SESSION_ENDED


class WorkOSUnavailable(LookupFailed):
    """WorkOS could not be reached (or failed) while renewing the access token."""

    outcome = Outcome.AUTH_UNAVAILABLE


def _renewal_due(stored: StaffToken) -> bool:
    return expires_within(stored, seconds=settings.CONNVO_REFRESH_MARGIN)


def access_token_for(*, user: AbstractBaseUser, deployment_name: str, origin: Origin) -> str:
    """A Connvo access token for this agent on this deployment, renewed first if it is about to
    expire. Raises NoToken, SessionEnded or WorkOSUnavailable."""
    stored = StaffToken.objects.of(user, deployment_name)
    if stored is None:
        raise missing_token(get_deployment(deployment_name))
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


# Between looks at a renewal another request is making.
_WAIT_STEP_SECONDS = 0.05


def _claim_lifetime() -> timedelta:
    """How long a claimed renewal may take before others take it over (its worker was killed
    mid-call): WorkOS's own timeout, plus a margin."""
    return timedelta(seconds=settings.WORKOS_TIMEOUT + 5)


def _refresh(*, user: AbstractBaseUser, deployment_name: str, origin: Origin) -> str:
    """Renew the access token, exactly once however many requests need it at the same moment.

    No database lock is held while WorkOS answers (on SQLite that would be the database-wide
    write lock, stalling every other write, every agent's audit entries included): the renewal is
    claimed in a short transaction, WorkOS is called outside any, and the answer is stored in
    another short one. Whoever finds the renewal claimed waits for its result and uses it."""
    deadline = timezone.now() + _claim_lifetime() + timedelta(seconds=5)
    while True:
        claim, token = _claim_renewal(user=user, deployment_name=deployment_name)
        if claim is not None:
            break
        if token is not None:
            return token  # renewed by someone else meanwhile, or no longer due
        if timezone.now() > deadline:
            raise WorkOSUnavailable(
                f"Your Connvo session for {deployment_name} is being renewed by another request "
                "that has not finished. Try again in a minute; you stay connected.",
                detail="waited for another renewal of this credential",
            )
        time.sleep(_WAIT_STEP_SECONDS)

    failure: LookupFailed | None = None
    answer = None
    session_over = ""
    try:
        answer = session_answer(
            workos_client(deployment_name).user_management.authenticate_with_refresh_token(
                refresh_token=token
            )
        )
    except (workos.WorkOSError, OSError, NotWorkOSAnswer) as exc:
        if is_session_over(exc):
            session_over = fit(describe_error(exc), "session_end_reason", StaffToken)
        else:
            # Unreachable, slow, overloaded, misconfigured or answered by a proxy's page: the
            # session itself is fine, so the refresh token is kept for the next attempt.
            failure = WorkOSUnavailable(
                f"The console could not reach WorkOS to renew your Connvo session for "
                f"{deployment_name}. Try again in a minute; you stay connected.",
                detail=describe_error(exc),
            )
    return _settle_renewal(
        user=user,
        deployment_name=deployment_name,
        origin=origin,
        claim=claim,
        answer=None if failure or session_over else answer,
        failure=failure,
        session_over=session_over,
    )


def _claim_renewal(
    *, user: AbstractBaseUser, deployment_name: str
) -> tuple[str | None, str | None]:
    """(claim, refresh token) when this request is to renew; (None, access token) when there is
    nothing to renew (any more); (None, None) while another request is renewing."""
    with transaction.atomic():
        stored = (
            StaffToken.objects.select_for_update()
            .filter(user=user, deployment=deployment_name)
            .first()
        )
        if stored is None:
            raise missing_token(get_deployment(deployment_name))  # removed meanwhile
        if stored.session_ended:
            # It ended while we waited (another request learnt it first): the same answer.
            raise _session_ended(stored)
        if not _renewal_due(stored):
            # Someone renewed it while we waited: use theirs, keep the refresh token unspent.
            return None, reveal(stored)
        now = timezone.now()
        if stored.renewal_claim and stored.renewal_claimed_at > now - _claim_lifetime():
            return None, None
        refresh_token = reveal(stored, refresh=True)
        stored.renewal_claim = uuid.uuid4().hex
        stored.renewal_claimed_at = now
        stored.save(update_fields=["renewal_claim", "renewal_claimed_at"])
        return stored.renewal_claim, refresh_token


def _settle_renewal(
    *,
    user: AbstractBaseUser,
    deployment_name: str,
    origin: Origin,
    claim: str,
    answer: Any,
    failure: LookupFailed | None,
    session_over: str,
) -> str:
    """Store what WorkOS answered and release the claim, in one short transaction with its audit
    entry. Raises the failure after the transaction, so what was recorded about it is kept."""
    with transaction.atomic():
        stored = (
            StaffToken.objects.select_for_update()
            .filter(user=user, deployment=deployment_name, renewal_claim=claim)
            .first()
        )
        if stored is None:
            # Removed or reconnected while WorkOS answered: nothing of ours to update.
            if answer is not None:
                return answer.access_token
            raise failure or SessionEnded(
                f"Your Connvo session for {deployment_name} has ended. Reconnect your Connvo "
                "account on the Tokens page.",
                detail=session_over,
            )
        stored.renewal_claim = ""
        stored.renewal_claimed_at = None
        if answer is not None:
            claims = read_claims(answer.access_token) or Claims()
            stored.ciphertext = seal(answer.access_token)
            stored.refresh_ciphertext = seal(answer.refresh_token)
            stored.last4 = answer.access_token[-4:]
            stored.subject = fit(claims.subject, "subject", StaffToken) or stored.subject
            stored.session_id = (
                fit(claims.session_id, "session_id", StaffToken) or stored.session_id
            )
            stored.expires_at = claims.expires_at
            stored.save()
            _audit_refresh(origin, deployment_name, ok=True, detail=f"expires {claims.expires_at}")
            return answer.access_token
        if session_over:
            # The refresh token is spent, revoked or expired: the session is over for good.
            # Remember that (and why) rather than forget the credential, so that every request
            # until the agent reconnects or removes it says so.
            stored.ciphertext = b""
            stored.refresh_ciphertext = b""
            stored.session_ended_at = timezone.now()
            stored.session_end_reason = session_over
            failure = _session_ended(stored)
        stored.save()
        _audit_refresh(origin, deployment_name, ok=False, detail=failure.detail)
    raise failure


def _session_ended(stored: StaffToken) -> SessionEnded:
    return SessionEnded(
        f"Your Connvo session for {stored.deployment} has ended (signed out, revoked, or "
        "expired). Reconnect your Connvo account on the Tokens page.",
        detail=stored.session_end_reason,
    )


def _audit_refresh(origin: Origin, deployment_name: str, *, ok: bool, detail: str) -> None:
    record(
        origin=origin,
        action=Action.TOKEN_REFRESHED if ok else Action.TOKEN_REFRESH_FAILED,
        deployment=deployment_name,
        detail=detail,
    )


# --- Storing a credential -----------------------------------------------------------------------


class PasteNotTaken(Exception):
    """A token pasted for a deployment that takes none (see `takes_pasted_tokens`). Nothing was
    stored: a connected session stays as it was."""

    def __init__(self, deployment_name: str) -> None:
        super().__init__(
            f"Connvo tokens for {deployment_name} are not pasted: Connvo accounts there are "
            "connected through WorkOS (Connect your Connvo account, on the Tokens page), and the "
            "console renews their tokens itself. Nothing was changed."
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
    `refresh_token`, a WorkOS-connected session. No audit entry: the callers write theirs. Raises
    PasteNotTaken for a paste where accounts are connected instead."""
    pasted = refresh_token is None
    if pasted and not takes_pasted_tokens(deployment_name):
        raise PasteNotTaken(deployment_name)
    claims = read_claims(access_token) or Claims()
    stored, _ = StaffToken.objects.update_or_create(
        user=user,
        deployment=deployment_name,
        # Every field of a credential, so that one replaces another whole: a paste left beside
        # an old session's refresh token would look like a session to renew. The claims and the
        # email are anyone's text (JSON carries "\u0000"): fitted, so that a NUL is stored as
        # U+FFFD rather than refused by the database.
        defaults={
            "ciphertext": seal(access_token),
            "refresh_ciphertext": None if pasted else seal(refresh_token),
            "session_id": "" if pasted else fit(claims.session_id, "session_id", StaffToken),
            "email": "" if pasted else fit(email, "email", StaffToken),
            "last4": access_token[-4:],
            "subject": fit(claims.subject, "subject", StaffToken),
            "expires_at": claims.expires_at,
            # Saving a credential again (reconnecting) ends an ended session's notice.
            "session_ended_at": None,
            "session_end_reason": "",
            # A renewal of the old session still waiting for WorkOS settles on nothing.
            "renewal_claim": "",
            "renewal_claimed_at": None,
            # A credential replaced whole is a new one: the Tokens page's "Connected" is when
            # this one was (renewing a session keeps it; reconnecting does not).
            "created_at": timezone.now(),
        },
    )
    return stored
