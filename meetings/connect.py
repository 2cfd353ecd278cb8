"""Connecting an agent's Connvo account through WorkOS AuthKit: the OAuth authorization-code flow
with PKCE, done with WorkOS's official SDK. The resulting session lives in meetings/credentials.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import workos
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from audit.models import Action
from audit.services import Origin, record

from .credentials import (
    ConnectFailed,
    describe_error,
    is_session_over,
    store_session,
    workos_client,
)
from .models import StaffToken


@dataclass(frozen=True, slots=True)
class PendingConnect:
    """What the callback needs to finish the flow; kept in the agent's session, never in a URL
    except `state`."""

    url: str
    state: str
    code_verifier: str


def begin_connect(*, deployment: str, redirect_uri: str) -> PendingConnect:
    started = workos_client(deployment).user_management.get_authorization_url_with_pkce(
        redirect_uri=redirect_uri, provider="authkit"
    )
    return PendingConnect(
        url=started["url"], state=started["state"], code_verifier=started["code_verifier"]
    )


def finish_connect(
    *, user: AbstractBaseUser, deployment: str, code: str, code_verifier: str, origin: Origin
) -> StaffToken:
    """Exchange the authorization code for the agent's tokens and store them. Raises
    ConnectFailed with a message for the agent (and an audit entry) when it does not work."""
    try:
        answer = workos_client(deployment).user_management.authenticate_with_code_pkce(
            code=code, code_verifier=code_verifier
        )
    except (workos.WorkOSError, OSError) as exc:
        fail(origin, deployment, describe_error(exc))
        if is_session_over(exc):
            message = (
                "WorkOS did not accept the sign-in (the link may have expired or been used "
                "already). Press Connect again."
            )
        elif isinstance(exc, workos.AuthenticationError):
            message = (
                "WorkOS refused the console's own credentials, so no account can be connected. "
                "Tell the console's administrators (WorkOS client id or API key)."
            )
        else:
            message = (
                "The console could not reach WorkOS to finish connecting your account. Try "
                "again in a minute."
            )
        raise ConnectFailed(message) from None
    with transaction.atomic():
        stored = store_session(
            user=user,
            deployment=deployment,
            access_token=answer.access_token,
            refresh_token=answer.refresh_token,
            email=answer.user.email,
        )
        record(
            origin=origin,
            action=Action.CONNVO_CONNECTED,
            deployment=deployment,
            detail=f"as {answer.user.email}",
        )
    return stored


def fail(origin: Origin, deployment: str, detail: str) -> None:
    record(origin=origin, action=Action.CONNVO_CONNECT_FAILED, deployment=deployment, detail=detail)


def disconnect(*, user: AbstractBaseUser, deployment: str, origin: Origin) -> bool:
    """End the agent's Connvo session at WorkOS (best effort) and forget it here."""
    stored = StaffToken.objects.filter(user=user, deployment=deployment).first()
    if stored is None:
        return False
    detail = ""
    if stored.is_connected_session and stored.session_id and not stored.session_ended:
        try:
            workos_client(deployment).user_management.revoke_session(session_id=stored.session_id)
        except (workos.WorkOSError, OSError, KeyError) as exc:
            # Forgetting the tokens here is what matters; the session then simply expires.
            detail = f"revoking at WorkOS failed: {describe_error(exc)}"
    with transaction.atomic():
        stored.delete()
        record(
            origin=origin, action=Action.CONNVO_DISCONNECTED, deployment=deployment, detail=detail
        )
    return True
