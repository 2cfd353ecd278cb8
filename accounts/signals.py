"""Receivers: a sign-in starts the session's clocks; a lockout goes to the audit log."""

from __future__ import annotations

import time

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from . import lockouts, sessions


@receiver(user_logged_in, dispatch_uid="accounts_session_start")
def start_session_clocks(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        sessions.start(request.session, now=time.time())


@receiver(user_locked_out, dispatch_uid="accounts_lockout_audit")
def audit_lockout(sender, request, username=None, **kwargs) -> None:
    if request is not None:
        lockouts.record_lockout(request=request, username=username)
