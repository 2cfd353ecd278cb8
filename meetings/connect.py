"""Connecting (and disconnecting) an agent's Connvo account through WorkOS AuthKit: the OAuth
authorization-code flow with PKCE, done with WorkOS's official SDK, and the connections started
but not yet finished, kept in the agent's session. What it stores is a credential
(meetings/credentials.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import workos
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.db.models import QuerySet

from audit.models import Action
from audit.services import Origin, record

from .credentials import store_credential
from .models import StaffToken
from .workos_auth import (
    NotWorkOSAnswer,
    describe_error,
    is_session_over,
    session_answer,
    workos_client,
)

SESSION_PENDING_CONNECTS = "connvo_pending_connects"
PENDING_CONNECT_LIFETIME = 15 * 60


class ConnectFailed(Exception):
    """Connecting a Connvo account did not work; `message` says why, for the agent. Not a
    `LookupFailed`: no lookup is involved."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class PendingConnect:
    """What the callback needs to finish the flow; kept in the agent's session, never in a URL
    except `state`."""

    deployment_name: str
    url: str
    state: str
    code_verifier: str


def begin_connect(*, deployment_name: str, redirect_uri: str) -> PendingConnect:
    started = workos_client(deployment_name).user_management.get_authorization_url_with_pkce(
        redirect_uri=redirect_uri, provider="authkit"
    )
    return PendingConnect(
        deployment_name=deployment_name,
        url=started["url"],
        state=started["state"],
        code_verifier=started["code_verifier"],
    )


def remember_pending(session: SessionBase, pending: PendingConnect) -> None:
    """Keep a started connection in the agent's session, keyed by state: several tabs may connect
    several deployments at once. Connections older than PENDING_CONNECT_LIFETIME are dropped."""
    now = time.time()
    started = {
        state: entry
        for state, entry in session.get(SESSION_PENDING_CONNECTS, {}).items()
        if now - entry["at"] < PENDING_CONNECT_LIFETIME
    }
    started[pending.state] = {
        "deployment": pending.deployment_name,
        "verifier": pending.code_verifier,
        "at": now,
    }
    session[SESSION_PENDING_CONNECTS] = started


def take_pending(session: SessionBase, state: str) -> PendingConnect | None:
    """The connection this callback's `state` belongs to, once (a replayed state finds nothing),
    or None when it is unknown or too old."""
    started = session.get(SESSION_PENDING_CONNECTS, {})
    entry = started.pop(state, None)
    session[SESSION_PENDING_CONNECTS] = started
    if entry is None or time.time() - entry["at"] > PENDING_CONNECT_LIFETIME:
        return None
    return PendingConnect(
        deployment_name=entry["deployment"], url="", state=state, code_verifier=entry["verifier"]
    )


def finish_connect(
    *, user: AbstractBaseUser, deployment_name: str, code: str, code_verifier: str, origin: Origin
) -> StaffToken:
    """Exchange the authorization code for the agent's tokens and store them. Raises
    ConnectFailed with a message for the agent (and an audit entry) when it does not work."""
    try:
        answer = session_answer(
            workos_client(deployment_name).user_management.authenticate_with_code_pkce(
                code=code, code_verifier=code_verifier
            )
        )
    except (workos.WorkOSError, OSError, NotWorkOSAnswer) as exc:
        fail(origin, deployment_name, describe_error(exc))
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
        stored = store_credential(
            user=user,
            deployment_name=deployment_name,
            access_token=answer.access_token,
            refresh_token=answer.refresh_token,
            email=answer.user.email,
        )
        record(
            origin=origin,
            action=Action.CONNVO_CONNECTED,
            deployment=deployment_name,
            detail=f"as {answer.user.email}",
        )
    return stored


def fail(origin: Origin, deployment_name: str, detail: str) -> None:
    record(
        origin=origin,
        action=Action.CONNVO_CONNECT_FAILED,
        deployment=deployment_name,
        detail=detail,
    )


def forget(
    *, user: AbstractBaseUser, deployment_name: str, origin: Origin, detail: str = ""
) -> bool:
    """Forget the agent's credential for a deployment, as `forget_every` does: the Tokens page's
    Remove and Disconnect, and `connvo_token remove`. `detail` is added to the entry's. False if
    there was none (and nothing is recorded)."""
    credentials = StaffToken.objects.filter(user=user, deployment=deployment_name)
    return forget_every(credentials, origin=origin, detail=lambda stored: detail) > 0


def forget_every(
    credentials: QuerySet[StaffToken], *, origin: Origin, detail: Callable[[StaffToken], str]
) -> int:
    """Forget these credentials, each with its audit entry, whatever its kind: a connected
    session is ended at WorkOS and recorded as a disconnection, a pasted token as removed. The
    one way a credential goes (`forget`, the admin's delete of a credential or an account, an
    account deleted anywhere). Every session is ended first, best effort, and only then are the
    rows removed and recorded: WorkOS is never waited for while this holds the audit chain's
    lock (taken by the first entry, held to the end of the caller's transaction), which every
    lookup's entry waits on. `detail(credential)` is added to its entry's. How many were
    forgotten (one forgotten meanwhile by another request is not: its entry says so)."""
    stored = list(credentials.select_related("user"))
    notes = {credential.pk: _end_session(credential) for credential in stored}
    forgotten = 0
    for credential in stored:
        said = [detail(credential), *notes[credential.pk]]
        with transaction.atomic():
            deleted, _ = StaffToken.objects.filter(pk=credential.pk).delete()
            if not deleted:
                continue
            record(
                origin=origin,
                action=(
                    Action.CONNVO_DISCONNECTED
                    if credential.is_connected_session
                    else Action.TOKEN_REMOVED
                ),
                deployment=credential.deployment,
                detail="; ".join(note for note in said if note),
            )
        forgotten += 1
    return forgotten


def _end_session(stored: StaffToken) -> list[str]:
    """End a connected session at WorkOS (nothing for a pasted token, or a session that ended
    already); what to note on the entry when WorkOS could not be asked."""
    if not (stored.is_connected_session and stored.session_id and not stored.session_ended):
        return []
    try:
        workos_client(stored.deployment).user_management.revoke_session(
            session_id=stored.session_id
        )
    except (workos.WorkOSError, OSError, KeyError) as exc:
        # Forgetting the tokens here is what matters; the session then simply expires.
        return [f"revoking at WorkOS failed: {describe_error(exc)}"]
    return []
