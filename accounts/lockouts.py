"""Sign-in lockouts (django-axes): what is written to the audit log, and what the person sees."""

from __future__ import annotations

import dataclasses

from django.http import HttpRequest

from audit.models import Action
from audit.services import Origin, record_or_log

LOCKED_OUT = "locked out"


def record_lockout(*, request: HttpRequest, username: str | None) -> None:
    """One audit entry for a sign-in refused (or failed) while its account or address is locked
    out, under the username that was tried."""
    origin = dataclasses.replace(Origin.from_request(request), user=None, username=username or "")
    # Refusing to show the lockout page because the log is down would help nobody.
    record_or_log(origin=origin, action=Action.SIGN_IN_FAILED, detail=LOCKED_OUT)
