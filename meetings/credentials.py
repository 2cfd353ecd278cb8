"""Each agent's Connvo session: "a valid access token for this agent on this deployment".

Connvo's tokens are WorkOS AuthKit access tokens that live about five minutes. For deployments
with WorkOS configured, the console holds the agent's session (access token + refresh token, both
encrypted) and renews the access token shortly before it expires, with WorkOS's official SDK.
WorkOS refresh tokens are single-use: renewals of one credential are serialised with a row lock
(SELECT … FOR UPDATE; SQLite's writer lock), and whoever waited re-reads what the winner stored.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import workos
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from audit.models import Action
from audit.services import Origin, record

from .connvo import ConnvoError, NoToken, Outcome
from .models import StaffToken
from .tokens import cipher, no_token, reveal

logger = logging.getLogger(__name__)

DEFAULT_WORKOS_URL = "https://api.workos.com"


class SessionEnded(ConnvoError):
    """WorkOS refused the refresh token: the agent's Connvo session was revoked or expired."""

    outcome = Outcome.SESSION_ENDED
    title = "Your Connvo session has ended"


class WorkOSUnavailable(ConnvoError):
    """WorkOS could not be reached (or failed) while renewing the access token."""

    outcome = Outcome.AUTH_UNAVAILABLE
    title = "Your Connvo session could not be renewed"


class ConnectFailed(Exception):
    """Connecting a Connvo account did not work; `message` says why, for the agent."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    session_id: str
    expires_at: datetime | None


def read_claims(access_token: str) -> Claims:
    """The claims the console shows and schedules by. Not a verification: only Connvo can."""
    try:
        segment = access_token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeError):
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    exp = payload.get("exp")
    valid_exp = isinstance(exp, int | float) and not isinstance(exp, bool)
    return Claims(
        subject=str(payload.get("sub") or ""),
        session_id=str(payload.get("sid") or ""),
        expires_at=datetime.fromtimestamp(exp, tz=UTC) if valid_exp else None,
    )


def is_workos_deployment(deployment: str) -> bool:
    return deployment in settings.CONNVO_WORKOS


@lru_cache(maxsize=8)
def _client(client_id: str, api_key: str, base_url: str, timeout: int) -> workos.WorkOSClient:
    # No SDK retries: retrying a refresh whose answer was lost would spend the single-use
    # refresh token twice, and WorkOS would end the agent's session.
    return workos.WorkOSClient(
        client_id=client_id,
        api_key=api_key,
        base_url=base_url or None,
        request_timeout=timeout,
        max_retries=0,
    )


def workos_client(deployment: str) -> workos.WorkOSClient:
    config = settings.CONNVO_WORKOS[deployment]
    return _client(
        config["client_id"], config["api_key"], config.get("base_url", ""), settings.WORKOS_TIMEOUT
    )


def workos_origins() -> list[str]:
    """Where the Connect buttons send the agent's browser (for the page's CSP form-action)."""
    origins = set()
    for config in settings.CONNVO_WORKOS.values():
        parts = urlsplit(config.get("base_url") or DEFAULT_WORKOS_URL)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return sorted(origins)


def _needs_refresh(stored: StaffToken) -> bool:
    if stored.expires_at is None:
        return False
    margin = timedelta(seconds=settings.CONNVO_REFRESH_MARGIN)
    return stored.expires_at - margin <= timezone.now()


def store_session(
    *, user: AbstractBaseUser, deployment: str, access_token: str, refresh_token: str, email: str
) -> StaffToken:
    """Save (or replace) a WorkOS-connected session for the agent."""
    claims = read_claims(access_token)
    box = cipher()
    stored, _ = StaffToken.objects.update_or_create(
        user=user,
        deployment=deployment,
        defaults={
            "ciphertext": box.encrypt(access_token.encode()),
            "refresh_ciphertext": box.encrypt(refresh_token.encode()),
            "session_id": claims.session_id[:255],
            "email": email[:254],
            "last4": access_token[-4:],
            "subject": claims.subject[:255],
            "expires_at": claims.expires_at,
            "session_ended_at": None,
            "session_end_reason": "",
        },
    )
    return stored


def _session_ended(stored: StaffToken) -> SessionEnded:
    return SessionEnded(
        f"Your Connvo session for {stored.deployment} has ended (signed out, revoked, or "
        "expired). Reconnect your Connvo account on the Tokens page.",
        detail=stored.session_end_reason,
    )


def access_token_for(*, user: AbstractBaseUser, deployment: str, origin: Origin) -> str:
    """A Connvo access token for this agent on this deployment, renewed first if it is about to
    expire. Raises NoToken, SessionEnded or WorkOSUnavailable."""
    stored = StaffToken.objects.filter(user=user, deployment=deployment).first()
    if stored is None:
        raise no_token(deployment)
    if stored.session_ended:
        raise _session_ended(stored)
    if not stored.is_connected_session or not _needs_refresh(stored):
        return reveal(stored)
    if not is_workos_deployment(deployment):
        raise NoToken(
            f"Your Connvo session for {deployment} needs renewing, but the console no longer has "
            "WorkOS settings for it. Ask the console's administrators."
        )
    return _refresh(user=user, deployment=deployment, origin=origin)


def _refresh(*, user: AbstractBaseUser, deployment: str, origin: Origin) -> str:
    box = cipher()
    with transaction.atomic():
        # Waits here while another worker (or host) renews this same credential.
        stored = (
            StaffToken.objects.select_for_update().filter(user=user, deployment=deployment).first()
        )
        if stored is None:
            raise NoToken(f"You have no Connvo account connected for {deployment}.")
        if stored.session_ended:
            # It ended while we waited (another request learnt it first): the same answer.
            raise _session_ended(stored)
        if not _needs_refresh(stored):
            # Someone renewed it while we waited: use theirs, keep the refresh token unspent.
            return reveal(stored)
        refresh_token = reveal(stored, refresh=True)
        failure: ConnvoError
        try:
            answer = workos_client(deployment).user_management.authenticate_with_refresh_token(
                refresh_token=refresh_token
            )
            if not _is_session_answer(answer):
                raise _NotJSON
        except _NotJSON:
            # A 2xx that is not WorkOS's JSON (a proxy's or captive portal's page): the SDK
            # gives back None. Nothing was renewed, and the session is as fine as before.
            failure = WorkOSUnavailable(
                f"The console could not reach WorkOS to renew your Connvo session for "
                f"{deployment}. Try again in a minute; you stay connected.",
                detail="WorkOS answered with something that is not JSON (a proxy page?)",
            )
            _audit_refresh(origin, deployment, ok=False, detail=failure.detail)
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
                    f"{deployment}. Try again in a minute; you stay connected.",
                    detail=describe_error(exc),
                )
            _audit_refresh(origin, deployment, ok=False, detail=failure.detail)
        else:
            claims = read_claims(answer.access_token)
            stored.ciphertext = box.encrypt(answer.access_token.encode())
            stored.refresh_ciphertext = box.encrypt(answer.refresh_token.encode())
            stored.last4 = answer.access_token[-4:]
            stored.subject = claims.subject[:255] or stored.subject
            stored.session_id = claims.session_id[:255] or stored.session_id
            stored.expires_at = claims.expires_at
            stored.save()
            _audit_refresh(origin, deployment, ok=True, detail=f"expires {claims.expires_at}")
            return answer.access_token
    # Raised outside the atomic block, so what was recorded about the failure is kept.
    raise failure


class _NotJSON(Exception):
    pass


def _is_session_answer(answer: object) -> bool:
    return all(
        isinstance(getattr(answer, name, None), str) and getattr(answer, name)
        for name in ("access_token", "refresh_token")
    )


def _audit_refresh(origin: Origin, deployment: str, *, ok: bool, detail: str) -> None:
    record(
        origin=origin,
        action=Action.TOKEN_REFRESHED if ok else Action.TOKEN_REFRESH_FAILED,
        deployment=deployment,
        detail=detail,
    )


def is_session_over(exc: BaseException) -> bool:
    """WorkOS answers `invalid_grant` for a refresh token (or code) that is spent, revoked or
    expired. Anything else (network, 5xx, 429, our own credentials) says nothing about the
    agent's session."""
    return (
        isinstance(exc, workos.BadRequestError) and getattr(exc, "error", None) == "invalid_grant"
    )


def describe_error(exc: BaseException) -> str:
    """What WorkOS said, for escalation; never the tokens we sent."""
    parts: list[Any] = [type(exc).__name__]
    for attribute in ("status_code", "error", "code"):
        value = getattr(exc, attribute, None)
        if value:
            parts.append(f"{attribute}={value}")
    description = getattr(exc, "error_description", None) or getattr(exc, "message", "")
    if description:
        parts.append(str(description)[:200])
    return " ".join(str(part) for part in parts)[:500]
