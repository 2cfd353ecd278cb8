"""A staff member's lookup, end to end: check the id, find their token, ask Connvo, write the
audit entry. The meeting page, its live refresh and `manage.py connvo_lookup` all come through
`audited_lookup()`, so they behave and are audited alike."""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError

from audit.models import Action, Via
from audit.services import Origin, record
from connvo_admin.capacity import waiting_on_upstream
from connvo_admin.meeting_ids import parse_meeting_id
from connvo_admin.outcomes import LookupFailed, Outcome

from . import connvo, credentials, ratelimit
from .deployments import get_deployment

logger = logging.getLogger(__name__)


class AuditUnavailable(LookupFailed):
    """The audit entry could not be written, so the lookup's result must not be shown."""

    outcome = Outcome.AUDIT_UNAVAILABLE

    def __init__(self) -> None:
        super().__init__(
            "The console could not record this lookup in the audit log, so it will not show the "
            "meeting. Try again in a moment; if it persists, tell the console's administrators."
        )


def audited_lookup(
    *,
    user: AbstractBaseUser,
    origin: Origin,
    deployment_name: str,
    meeting_ref: str,
    via: Via,
) -> connvo.Lookup:
    """Return the lookup, or raise `LookupFailed`: audited, or `AuditUnavailable`."""
    outcome: connvo.Lookup | LookupFailed
    meeting_id = meeting_ref.strip()[:64]
    try:
        meeting_id = parse_meeting_id(meeting_ref)
        deployment = get_deployment(deployment_name)
        token = credentials.access_token_for(
            user=user, deployment_name=deployment.name, origin=origin
        )
        ratelimit.count_lookup(user=user)
        with waiting_on_upstream():
            outcome = connvo.get_meeting(deployment=deployment, token=token, meeting_id=meeting_id)
    except LookupFailed as failure:
        outcome = failure
    except DatabaseError:
        # Renewing the session could not be recorded (or stored): show nothing.
        logger.exception("credential for a lookup by %s could not be prepared", origin.username)
        raise AuditUnavailable from None

    failed = isinstance(outcome, LookupFailed)
    try:
        # Not inside a transaction of ours: the entry is committed before record() returns,
        # together with other lookups' entries written at the same moment (audit/chain.py), and
        # a failed write leaves the request's connection usable.
        record(
            origin=origin,
            action=Action.LOOKUP,
            via=via,
            deployment=deployment_name[:64],
            meeting_id=meeting_id,
            outcome=outcome.kind if failed else Outcome.FOUND,
            http_status=outcome.http_status,
            latency_ms=outcome.latency_ms,
            connvo_request_id=outcome.request_id if failed else None,
            detail=outcome.detail if failed else _drift_note(outcome.meeting),
        )
    except DatabaseError:
        # Fail closed: an unrecorded lookup must not show anything.
        logger.exception("audit entry for a lookup by %s could not be written", origin.username)
        raise AuditUnavailable from None

    logger.info(
        "lookup user=%s deployment=%s meeting=%s outcome=%s status=%s latency_ms=%s",
        origin.username,
        deployment_name,
        meeting_id,
        outcome.kind if failed else "found",
        outcome.http_status,
        outcome.latency_ms,
    )
    if failed:
        raise outcome
    return outcome


def _drift_note(meeting) -> str:
    """Found, but not quite as the contract says (a new state, a missing field): noted for the
    auditors and the console team."""
    return f"contract drift: {meeting.describe_drift()}" if meeting.drift else ""
